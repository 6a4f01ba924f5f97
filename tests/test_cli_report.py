"""``xcm-debias report``: outputs on a tiny saved corpus, parity with BiasReport.evaluate, and
one-line errors with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from xcm_debias import EmbeddingSet, ExactRetriever
from xcm_debias.cli import main
from xcm_debias.report import BiasReport
from xcm_debias.report.families import family_of

LANGUAGES = ["de", "en", "sw"]


def tiny_corpus() -> EmbeddingSet:
    """6 items, one image each (culture de/en/sw twice) and a caption per language. Images are
    one-hot; captions point at their own image, except item 5's, which point at image 0: so
    text→image recall@1 is 5/6 in every language."""
    n_items, dim = 6, 8
    images = np.eye(n_items, dim, dtype=np.float32)
    captions, item, language = [], [], []
    for i in range(n_items):
        for j, lang in enumerate(LANGUAGES):
            target = 0 if i == 5 else i
            vector = (
                images[target] + 0.05 * (j + 1) * np.eye(1, dim, 6 + j % 2, dtype=np.float32)[0]
            )
            captions.append(vector)
            item.append(f"item{i}")
            language.append(lang)
    return EmbeddingSet.concat(
        [
            EmbeddingSet(
                images,
                modality="image",
                item=[f"item{i}" for i in range(n_items)],
                culture=[LANGUAGES[i % 3] for i in range(n_items)],
            ),
            EmbeddingSet(np.stack(captions), modality="text", item=item, language=language),
        ]
    )


@pytest.fixture(scope="module")
def corpus_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "corpus.npz"
    tiny_corpus().save(path)
    return path


def test_report_writes_every_output_and_prints_the_table(corpus_path, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["report", str(corpus_path), "--k", "3", "--out", str(out), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "Retrieval" in captured.out and "Cultural tugging (text→image)" in captured.out
    assert f"to {out}" in captured.err
    assert {p.name for p in out.iterdir()} == {"report.json", "report.md", "report.html", "plots"}
    assert (out / "plots" / "recall_by_language.png").read_bytes().startswith(b"\x89PNG")
    assert "## Retrieval" in (out / "report.md").read_text(encoding="utf-8")
    report = BiasReport.from_json(out / "report.json")
    assert report.metrics["t2i/recall@1"] == pytest.approx(5 / 6)
    for lang in LANGUAGES:
        assert report.metrics[f"t2i/recall@1/lang={lang}"] == pytest.approx(5 / 6)
    # every key evaluate writes belongs to a known family (none falls into "Other metrics")
    assert [key for key in report.metrics if family_of(key).section == "other"] == []
    assert "Other metrics" not in captured.out
    direct = BiasReport.evaluate(ExactRetriever(), tiny_corpus(), k=3)
    assert report.metrics == pytest.approx(direct.metrics, nan_ok=True)


def test_culture_map_and_baseline(corpus_path, tmp_path, capsys):
    first, second = tmp_path / "first", tmp_path / "second"
    assert main(["report", str(corpus_path), "--out", str(first), "--quiet"]) == 0
    argv = ["report", str(corpus_path), "--out", str(second), "--quiet"]
    argv += ["--culture-map", "de=en", "en=de", "--baseline", str(first / "report.json")]
    assert main(argv) == 0
    assert "baseline" in capsys.readouterr().out
    data = json.loads((second / "comparison.json").read_text(encoding="utf-8"))
    assert data["format"] == "xcm_debias.Comparison"
    assert set(data["delta"]) <= set(data["before"]["metrics"])


def test_corpus_after_culture_map_pairs_is_not_swallowed(corpus_path, tmp_path):
    """``--culture-map en=en de=de CORPUS``: CORPUS is read as CORPUS, the pairs as the map."""
    after, before = tmp_path / "after", tmp_path / "before"
    pairs = ["--culture-map", "de=en", "en=de"]
    assert main(["report", "--out", str(after), "--quiet", *pairs, str(corpus_path)]) == 0
    assert main(["report", str(corpus_path), "--out", str(before), "--quiet", *pairs]) == 0
    got, expected = (json.loads((p / "report.json").read_text()) for p in (after, before))
    assert got["metrics"] == expected["metrics"]
    assert got["config"] == expected["config"]
    plain = tmp_path / "plain"
    assert main(["report", str(corpus_path), "--out", str(plain), "--quiet"]) == 0
    unmapped = json.loads((plain / "report.json").read_text())["metrics"]
    assert unmapped != got["metrics"]  # the map took effect


def test_a_missing_corpus_after_culture_map_is_named(capsys):
    assert main(["report", "--culture-map", "de=en", "en=de"]) == 2
    assert "CORPUS: expected a saved EmbeddingSet" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--k", "0"], "--k: expected a positive integer, got 0"),
        (["--culture-map", "de"], "--culture-map: expected LANG=CULTURE, got 'de'"),
        (["--culture-map", "de=a", "de=b"], "expected one culture per language"),
        (["--culture-map", "xx=a"], "languages ['xx'] are not caption languages"),
        (["--baseline", "no/such.json"], "no such JSON file"),
    ],
)
def test_bad_arguments_fail_with_one_line(corpus_path, tmp_path, capsys, extra, message):
    argv = ["report", str(corpus_path), "--out", str(tmp_path / "o"), "--quiet", *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("xcm-debias report: error: ")
    assert message in err


def test_missing_corpus_exits_2_with_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "xcm_debias", "report", str(tmp_path / "missing.npz")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no such file or folder" in lines[0]


def test_help_lists_every_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["report", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("CORPUS", "--k", "--out", "--culture-map", "--baseline", "--quiet"):
        assert option in text
    assert "report.html" in text and "xcm_debias_report" in text
