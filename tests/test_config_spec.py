"""Chain specs and TOML files -> the config dicts of ``xcm_debias.configs``: equality with
hand-written dicts, round trips, and errors that name the bad token."""

from __future__ import annotations

import pytest
from spec_fixtures import RECOMMENDED_SPEC, RECOMMENDED_TOML

from xcm_debias.config_spec import (
    SpecError,
    format_spec,
    load_config_file,
    parse_spec,
    resolve_config,
)
from xcm_debias.configs import build, get_config, list_configs


def test_spec_of_the_recommended_pipeline_equals_its_registered_config():
    assert parse_spec(RECOMMENDED_SPEC) == get_config("recommended")


def test_spec_values_are_json_literals_words_and_lists():
    config = parse_spec(
        "LanguageProjection(method='leace', apply_to=[text, image], rank=2, shrinkage=0.1, "
        'normalize=false) | OTRecenter(method="diag", tol=1e-5) | CSLS(k=5); seed=3'
    )
    assert config == {
        "processors": [
            {
                "class": "LanguageProjection",
                "params": {
                    "method": "leace",
                    "apply_to": ["text", "image"],
                    "rank": 2,
                    "shrinkage": 0.1,
                    "normalize": False,
                },
            },
            {"class": "OTRecenter", "params": {"method": "diag", "tol": 1e-5}},
        ],
        "scoring": [{"class": "CSLS", "params": {"k": 5}}],
        "seed": 3,
    }
    assert isinstance(config["processors"][0]["params"]["rank"], int)
    numbers = parse_spec("InvertedSoftmax(beta=20.) | CSLS(k=.5e1)")["scoring"]
    assert numbers == [
        {"class": "InvertedSoftmax", "params": {"beta": 20.0}},
        {"class": "CSLS", "params": {"k": 5.0}},
    ]
    assert isinstance(numbers[1]["params"]["k"], float)
    build(config)  # a config build() accepts


@pytest.mark.parametrize("name", list_configs())
def test_every_registered_config_round_trips_through_its_spec(name):
    spec = format_spec(name)
    assert parse_spec(spec) == get_config(name)
    assert format_spec(parse_spec(spec)) == spec


def test_format_spec_of_a_hand_written_config():
    config = {
        "processors": [{"class": "LanguageProjection", "params": {"method": "center"}}],
        "scoring": [{"class": "InvertedSoftmax", "params": {"beta": 10.0}}],
        "cross_fit": False,
    }
    spec = format_spec(config)
    assert spec == "LanguageProjection(method=center) | InvertedSoftmax(beta=10.0); cross_fit=false"
    assert parse_spec(spec) == config


def test_strings_that_are_not_bare_words_are_quoted_and_round_trip():
    config = {
        "processors": [],
        "scoring": [
            {"class": "GroupBalance", "params": {"query_group": "my group", "target": "true"}}
        ],
    }
    assert parse_spec(format_spec(config)) == config


def test_empty_spec_is_the_identity_pipeline():
    assert parse_spec("  ") == get_config("identity")


def test_toml_file_equals_the_registered_config(tmp_path):
    path = tmp_path / "recommended.toml"
    path.write_text(RECOMMENDED_TOML, encoding="utf-8")
    assert load_config_file(path) == get_config("recommended")
    assert resolve_config(str(path)) == get_config("recommended")


def test_toml_without_params_or_scoring_is_completed(tmp_path):
    path = tmp_path / "eraser.toml"
    path.write_text('[[processors]]\nclass = "LanguageProjection"\n', encoding="utf-8")
    assert load_config_file(path) == {
        "processors": [{"class": "LanguageProjection", "params": {}}],
        "scoring": [],
    }


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            '[[processors]]\nclass = "LanguageProjecton"\n',
            r"processors\[0\]: unknown class 'LanguageProjecton'",
        ),
        (
            '[[scoring.t2i]]\nclass = "GroupBalance"\nparams = { temprature = 0.1 }\n',
            r"scoring.t2i\[0\]: GroupBalance has no parameter 'temprature'",
        ),
        ('[[scoring.x2y]]\nclass = "CSLS"\n', r"scoring.x2y: expected a direction"),
        ("cross_fits = 5\n", r"unknown keys \['cross_fits'\]"),
        ("processors = [\n", "not valid TOML"),
    ],
)
def test_bad_toml_names_the_entry(tmp_path, toml, message):
    path = tmp_path / "bad.toml"
    path.write_text(toml, encoding="utf-8")
    with pytest.raises(SpecError, match=message):
        load_config_file(path)


def test_resolve_config_takes_names_specs_and_toml(tmp_path):
    assert resolve_config("hubness") == get_config("hubness")
    assert resolve_config("GroupBalance") == get_config("balance")
    with pytest.raises(FileNotFoundError, match="no such TOML file"):
        resolve_config(str(tmp_path / "missing.toml"))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("LanguageProjection(methd=leace)", "has no parameter 'methd' at column 20"),
        (
            "LangProjection",
            "unknown stage 'LangProjection' at column 1 .did you mean 'LanguageProjection'",
        ),
        ("LanguageProjection(method=leace", "expected ',' or '\\)' .* at column 32, got the end"),
        ("t2i: LanguageProjection", "'LanguageProjection' at column 6 is a processor"),
        (
            "GroupBalance | LanguageProjection",
            "processor 'LanguageProjection' at column 16 after a score",
        ),
        ("x2y: GroupBalance", "unknown direction 'x2y' at column 1"),
        ("folds=5", "unknown option 'folds' at column 1"),
        ("GroupBalance;", "expected a part after ';' at column 14"),
        (
            "LanguageProjection GroupBalance",
            "expected '\\|', ';' or the end of the spec at column 20, got 'GroupBalance'",
        ),
        ("InvertedSoftmax(beta=@)", "unexpected character '@' at column 22"),
        ("InvertedSoftmax(beta=)", "expected a value .* at column 22, got '\\)'"),
        ("CSLS(k=1, k=2)", "parameter 'k' of CSLS given twice"),
        ("cross_fit=5; cross_fit=3", "option 'cross_fit' given twice"),
        ("GroupBalance; t2i: CSLS", "both directions and per direction"),
        ("LanguageProjection; OTRecenter", "a second part without a direction at column 21"),
        ("t2i: CSLS; t2i: GroupBalance", "direction 't2i' given twice"),
        ("Chain", "unknown stage 'Chain'"),
    ],
)
def test_bad_specs_name_the_token_and_column(spec, message):
    with pytest.raises(SpecError, match=message) as info:
        parse_spec(spec)
    assert "\n" not in str(info.value)
