"""The report's record and section of inferred labels: counts, classifier numbers, gold against
inferred metrics, in every renderer and through JSON."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from test_label_models import corpus

from xcm_debias import BiasReport, ExactRetriever
from xcm_debias.configs import build
from xcm_debias.report.inferred_labels import differences
from xcm_debias.report.label_free import LabelFreeRetriever, label_record
from xcm_debias.soft_labels import strip_labels


def fitted(strength: float):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build("world_tuned").fit(corpus(strength=strength))


def evaluate(retriever, data, **options) -> BiasReport:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return BiasReport.evaluate(retriever, data, k=5, **options)


SHARP = fitted(12.0)  # languages and cultures identified without error
TEST = corpus(strength=12.0, seed=1)
# weak group offsets: some test captions' languages are misidentified
BLURRED, BLURRED_TEST = fitted(1.0), corpus(strength=1.0, seed=1)


def test_the_record_counts_inferred_rows_and_keeps_the_classifier_numbers() -> None:
    record = label_record(SHARP, TEST, label_free=True)
    summary = SHARP.label_models_.summary()
    assert record["label_free"] is True
    for label, modality, rows in (("language", "text", 90), ("culture", "image", 30)):
        entry = record["labels"][label]
        assert (entry["modality"], entry["rows"], entry["inferred"]) == (modality, rows, rows)
        assert (entry["unconfident"], entry["accuracy"], entry["wrong"]) == (0, 1.0, 0)
        assert entry["classifier"] == summary[label]


def test_the_record_without_label_free_counts_only_rows_lacking_a_label() -> None:
    """Ten captions without a language: 10 inferred; nothing missing: no record at all."""
    language = TEST.language.copy()
    language[np.flatnonzero(TEST.modality == "text")[:10]] = ""
    record = label_record(SHARP, TEST.with_labels(language=language), label_free=False)
    assert record["label_free"] is False
    assert (record["labels"]["language"]["inferred"], record["labels"]["culture"]["inferred"]) == (
        10,
        0,
    )
    assert label_record(SHARP, TEST, label_free=False) is None
    assert label_record(ExactRetriever(), TEST, label_free=True) is None
    assert "labels" not in evaluate(SHARP, TEST).provenance


def test_infer_labels_pairs_each_metric_of_the_labelled_and_the_label_free_search() -> None:
    """The report's metrics are the label-free run's (scored with the corpus's labels); the
    record pairs each with the labelled run's value, computed here independently."""
    report = evaluate(BLURRED, BLURRED_TEST, infer_labels=True)
    gold = evaluate(BLURRED, BLURRED_TEST).metrics
    free = evaluate(LabelFreeRetriever(BLURRED), BLURRED_TEST).metrics
    np.testing.assert_equal(report.metrics, free)  # NaN where a metric is undefined
    pairs = report.provenance["labels"]["gold"]
    assert set(pairs) == set(gold)
    for key, pair in pairs.items():
        assert pair == {
            "gold": pytest.approx(gold[key], nan_ok=True),
            "inferred": pytest.approx(free[key], nan_ok=True),
        }
    entry = report.provenance["labels"]["labels"]["language"]
    assert 0.0 < entry["accuracy"] < 1.0  # weak offsets: some captions misidentified
    languages = BLURRED_TEST.texts.language
    filled = BLURRED.label_models_.fill(strip_labels(BLURRED_TEST.texts))
    assert entry["wrong"] == int((filled.language != languages).sum()) > 0
    assert entry["accuracy"] == pytest.approx(1 - entry["wrong"] / len(languages))
    diffs = differences(report.provenance["labels"])
    assert max(abs(d) for d in diffs.values()) > 0.0
    assert report.config["retriever"] == repr(BLURRED)


def test_sharp_labels_give_no_difference() -> None:
    report = evaluate(SHARP, TEST, infer_labels=True)
    diffs = differences(report.provenance["labels"])
    assert len(diffs) == sum(np.isfinite(v) for v in report.metrics.values())
    assert max(abs(d) for d in diffs.values()) < 1e-4


def test_without_gold_labels_the_record_has_no_comparison() -> None:
    report = evaluate(SHARP, strip_labels(TEST), infer_labels=True)
    record = report.provenance["labels"]
    assert "gold" not in record and "accuracy" not in record["labels"]["language"]
    assert record["labels"]["language"]["inferred"] == 90
    assert "gold against inferred" not in str(report)


def test_the_section_shows_the_numbers_in_every_renderer() -> None:
    report = evaluate(BLURRED, BLURRED_TEST, infer_labels=True)
    record = report.provenance["labels"]
    entry = record["labels"]["language"]
    diffs = differences(record)
    worst = max(diffs, key=lambda key: abs(diffs[key]))
    expected = [
        "Inferred labels",
        f"{entry['accuracy']:.4f} ({entry['wrong']} wrong)",
        f"{entry['classifier']['accuracy']:.3f}",
        f"{entry['classifier']['ece']:.3f}",
        f"{diffs[worst]:+.4f} ({worst})",
        f"over all {len(diffs)} metrics",
    ]
    for page in (str(report), report.to_markdown(), report.to_html()):
        for text in expected:
            assert text in page
    again = BiasReport.from_json(report.to_json())
    assert json.loads(again.to_json())["provenance"] == json.loads(report.to_json())["provenance"]
    assert str(again) == str(report)


def test_infer_labels_needs_a_pipeline_with_label_models() -> None:
    with pytest.raises(ValueError, match="infer_labels: expected a retriever with label models"):
        evaluate(ExactRetriever(), TEST, infer_labels=True)
    with pytest.raises(TypeError, match="infer_labels: expected a bool, got str"):
        evaluate(SHARP, TEST, infer_labels="yes")
    with pytest.raises(ValueError, match="retriever: expected a fitted pipeline with label"):
        LabelFreeRetriever(ExactRetriever())
    with pytest.raises(TypeError, match="corpus: expected an EmbeddingSet, got list"):
        label_record(SHARP, [], label_free=True)
    with pytest.raises(TypeError, match="data: expected an EmbeddingSet, got ndarray"):
        LabelFreeRetriever(SHARP).search(np.zeros((2, 12)), TEST.images, 1)


def test_cli_report_infer_labels(tmp_path, capsys) -> None:
    """``xcm-debias report --pipeline P --infer-labels``: the section on the page and the
    record in report.json, equal to the library's."""
    from xcm_debias.cli import main

    corpus_file, pipeline_file = tmp_path / "test.npz", tmp_path / "fair.safetensors"
    BLURRED_TEST.save(corpus_file)
    BLURRED.save(pipeline_file)
    out = tmp_path / "out"
    argv = ["report", str(corpus_file), "--pipeline", str(pipeline_file), "--out", str(out)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main([*argv, "--k", "5", "--quiet", "--infer-labels"]) == 0
    assert "Inferred labels" in capsys.readouterr().out
    saved = json.loads((out / "report.json").read_text(encoding="utf-8"))["provenance"]
    expected = json.loads(evaluate(BLURRED, BLURRED_TEST, infer_labels=True).to_json())
    assert saved["labels"] == expected["provenance"]["labels"]
    assert saved["labels"]["labels"]["language"]["wrong"] > 0
    assert main(["report", str(corpus_file), "--out", str(out), "--infer-labels"]) == 2
    assert "--infer-labels: expected --pipeline" in capsys.readouterr().err
