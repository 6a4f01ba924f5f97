"""``xcm-debias fit`` (name, chain spec, TOML -> saved pipeline) and the commands that consume
its file: ``report --pipeline`` and ``transform``. Rankings and metrics of the saved pipeline
equal those of the same pipeline fitted in-process."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from spec_fixtures import RECOMMENDED_SPEC, RECOMMENDED_TOML
from synthetic_processors import make_world

from xcm_debias import Debiased, EmbeddingSet, ExactRetriever
from xcm_debias.cli import main
from xcm_debias.configs import build, get_config
from xcm_debias.report import BiasReport

SPEC = "LanguageProjection(method=center); t2i: InvertedSoftmax(beta=10) | GroupBalance; i2t: CSLS(k=3)"


@pytest.fixture(scope="module")
def corpus_path(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("fit") / "corpus.npz"
    make_world(n_items=40, dim=16, tug=0.5, seed=0).save(path)
    return str(path)


def fit_cli(corpus: str, pipeline: str, out, *extra: str) -> None:
    assert main(["fit", corpus, pipeline, "--out", str(out), *extra]) == 0


def assert_same_rankings(saved: Debiased, fitted: Debiased, data: EmbeddingSet) -> None:
    for queries, gallery in ((data.texts, data.images), (data.images, data.texts)):
        a = saved.search(queries, gallery, k=5)
        b = fitted.search(queries, gallery, k=5)
        assert torch.equal(a.indices, b.indices)
        torch.testing.assert_close(a.scores, b.scores, atol=1e-5, rtol=0)


@pytest.mark.parametrize("pipeline", ["recommended", RECOMMENDED_SPEC, SPEC])
def test_saved_pipeline_ranks_as_the_one_fitted_in_process(corpus_path, tmp_path, pipeline):
    out = tmp_path / "pipeline.safetensors"
    fit_cli(corpus_path, pipeline, out)
    corpus = EmbeddingSet.load(corpus_path)
    config = get_config(pipeline) if pipeline == "recommended" else None
    fitted = build(config or pipeline_config(pipeline)).fit(corpus)
    assert_same_rankings(Debiased.load(out), fitted, corpus)


def pipeline_config(spec: str) -> dict:
    from xcm_debias.config_spec import parse_spec

    return parse_spec(spec)


def test_toml_file_fits_the_same_pipeline_as_its_name(corpus_path, tmp_path):
    toml = tmp_path / "recommended.toml"
    toml.write_text(RECOMMENDED_TOML, encoding="utf-8")
    fit_cli(corpus_path, str(toml), tmp_path / "from_toml.safetensors")
    fit_cli(corpus_path, "recommended", tmp_path / "from_name.safetensors")
    corpus = EmbeddingSet.load(corpus_path)
    assert_same_rankings(
        Debiased.load(tmp_path / "from_toml.safetensors"),
        Debiased.load(tmp_path / "from_name.safetensors"),
        corpus,
    )


def test_test_size_holds_out_disjoint_items_and_fits_on_the_rest(corpus_path, tmp_path):
    out, test_out = tmp_path / "p.safetensors", tmp_path / "test.npz"
    fit_cli(
        corpus_path, SPEC, out, "--test-size", "0.25", "--test-out", str(test_out), "--seed", "1"
    )
    corpus = EmbeddingSet.load(corpus_path)
    calibration, test = corpus.split_items(test_size=0.25, seed=1)
    held_out = EmbeddingSet.load(test_out)
    assert held_out.id.tolist() == test.id.tolist()
    assert not set(held_out.item.tolist()) & set(calibration.item.tolist())
    assert_same_rankings(Debiased.load(out), build(pipeline_config(SPEC)).fit(calibration), test)


def test_dry_run_prints_the_config_and_its_spec(corpus_path, capsys):
    assert main(["fit", corpus_path, RECOMMENDED_SPEC, "--dry-run"]) == 0
    printed = capsys.readouterr().out
    body, spec_line = printed.rsplit("spec: ", 1)
    assert json.loads(body) == get_config("recommended")
    assert pipeline_config(spec_line.strip()) == get_config("recommended")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["LanguageProjection(methd=leace)"], "has no parameter 'methd' at column 20"),
        (["t2i: LangProjection"], "unknown stage 'LangProjection' at column 6"),
        (["recommended", "--out", "p.pt"], "--out: expected a .safetensors file"),
        (["recommended", "--test-size", "0.5"], "--test-size and --test-out: expected both"),
        (
            ["recommended", "--test-size", "1.5", "--test-out", "t.npz"],
            "--test-size: expected a fraction in",
        ),
        (["missing.toml"], "no such TOML file"),
    ],
)
def test_bad_pipelines_and_options_are_one_line_errors(
    corpus_path, tmp_path, capsys, argv, message
):
    argv = [a if a != "p.pt" else str(tmp_path / a) for a in argv]
    assert main(["fit", corpus_path, *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("xcm-debias fit: error: ") and message in err
    assert err.count("\n") == 1


# ----------------------------------------------------------- consumers of the pipeline file
def test_report_pipeline_measures_the_saved_pipeline_against_exact(corpus_path, tmp_path, capsys):
    pipeline = tmp_path / "p.safetensors"
    test_out = tmp_path / "test.npz"
    fit_cli(corpus_path, SPEC, pipeline, "--test-size", "0.5", "--test-out", str(test_out))
    out = tmp_path / "report"
    argv = ["report", str(test_out), "--pipeline", str(pipeline), "--k", "3", "--out", str(out)]
    assert main([*argv, "--quiet"]) == 0
    test = EmbeddingSet.load(test_out)
    expected = BiasReport.evaluate(Debiased.load(pipeline), test, k=3).metrics
    written = json.loads((out / "report.json").read_text(encoding="utf-8"))["metrics"]
    assert written.keys() == expected.keys()
    for key, value in expected.items():
        if np.isnan(value):
            assert written[key] is None, key  # JSON has no NaN: written as null
        else:
            assert written[key] == pytest.approx(value, abs=1e-9), key
    comparison = json.loads((out / "comparison.json").read_text(encoding="utf-8"))
    exact = BiasReport.evaluate(ExactRetriever(), test, k=3).metrics["t2i/recall@1"]
    assert comparison["before"]["metrics"]["t2i/recall@1"] == pytest.approx(exact)
    assert "exact" in capsys.readouterr().out


def test_report_pipeline_rejects_a_file_that_is_not_a_pipeline(corpus_path, tmp_path, capsys):
    bogus = tmp_path / "bogus.safetensors"
    build("language_eraser").fit(EmbeddingSet.load(corpus_path)).processors.save(bogus)
    assert main(["report", corpus_path, "--pipeline", str(bogus), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--pipeline: " in err and "not a saved Debiased pipeline" in err


def test_transform_applies_the_processors_of_a_fit_file(corpus_path, tmp_path, capsys):
    pipeline = tmp_path / "p.safetensors"
    fit_cli(corpus_path, SPEC, pipeline)
    out = tmp_path / "debiased.parquet"
    assert main(["transform", str(pipeline), corpus_path, str(out)]) == 0
    assert "3 score stage(s)" in capsys.readouterr().err
    corpus = EmbeddingSet.load(corpus_path)
    expected = Debiased.load(pipeline).processors.transform(corpus)
    got = EmbeddingSet.load(out)
    assert got.id.tolist() == corpus.id.tolist()
    np.testing.assert_allclose(got.embeddings.numpy(), expected.embeddings.numpy(), atol=1e-6)
    assert not np.allclose(got.texts.embeddings.numpy(), corpus.texts.embeddings.numpy())


def test_transform_of_a_scores_only_pipeline_is_a_one_line_error(corpus_path, tmp_path, capsys):
    pipeline = tmp_path / "p.safetensors"
    fit_cli(corpus_path, "hubness", pipeline)
    assert main(["transform", str(pipeline), corpus_path, str(tmp_path / "o.npz")]) == 2
    err = capsys.readouterr().err
    assert "has no embedding-level processors" in err and err.count("\n") == 1
