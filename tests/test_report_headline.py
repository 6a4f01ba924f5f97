"""The headline: standard errors from evaluate, better/worse only beyond noise, why a value is
nan or absent, and metric names linked to their definitions in the page."""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import pytest
from report_fixtures import after_report, before_report
from test_evaluate import hand_corpus
from test_report_html import _parse

from xcm_debias import ExactRetriever
from xcm_debias.report import BiasReport
from xcm_debias.report.families import WITHIN_NOISE
from xcm_debias.report.headline import HEADLINE, METRICS_DOC

SE = {"i2t/language_tv@1": 0.05, "i2t/recall@1": 0.05, "t2i/mrv": 1.0, "t2i/recall@1": 0.01}


def _row(text: str, first_cells: list[str]) -> list[str]:
    for line in text.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if cells[: len(first_cells)] == first_cells:
            return cells
    raise AssertionError(f"no row {first_cells!r}")


def _with_se(report: BiasReport) -> BiasReport:
    return dataclasses.replace(report, uncertainty=dict(SE))


def test_evaluate_gives_hand_computed_standard_errors():
    report = BiasReport.evaluate(ExactRetriever(), hand_corpus())
    se = report.uncertainty
    # t2i recall@1: hits [1, 1, 0, 0] -> binomial SE sqrt(0.5 * 0.5 / 4)
    assert se["t2i/recall@1"] == pytest.approx(0.25)
    assert se["t2i/recall@1/lang=en"] == 0.0 and se["t2i/recall@1/lang=de"] == 0.0
    # own culture@1: [1, 0, 1, 1] (en: A-en -> A is en, B-en -> B is ja; de -> C is de)
    assert se["t2i/own_culture@1"] == pytest.approx(math.sqrt(0.75 * 0.25 / 4))
    # excess per query: en 1 - 1, 0 - 0; de 1 - 0, 1 - 0: no spread within a language
    assert se["t2i/own_culture_excess@1"] == 0.0
    # MRV: both items have per-language ranks (1, 2): spreads [0.5, 0.5]
    assert se["t2i/mrv"] == 0.0
    # k = 10 >= 3 images: N_k is constant, the skewness and its SE are undefined (dropped)
    assert math.isnan(report.metrics["t2i/hubness_skew@10"])
    assert "t2i/hubness_skew@10" not in se
    assert set(se) <= set(report.metrics)
    assert all(math.isfinite(v) and v >= 0 for v in se.values())


def test_bootstrap_standard_errors_are_reproducible():
    first = BiasReport.evaluate(ExactRetriever(), hand_corpus(), k=1).uncertainty
    second = BiasReport.evaluate(ExactRetriever(), hand_corpus(), k=1).uncertainty
    assert first == second
    assert first["t2i/hubness_skew@1"] > 0  # N_1 = [1, 1, 2] varies with the resampled queries
    assert "i2t/language_tv@1" in first


def test_single_report_headline_says_why_the_skew_is_nan():
    text = str(BiasReport.evaluate(ExactRetriever(), hand_corpus()))
    headline = text[text.index("Headline") : text.index("Retrieval")]
    assert _row(headline, ["recall", "t2i/recall@1"])[2:] == ["0.500 ± 0.250", "—", "higher"]
    assert _row(headline, ["language prevalence", "i2t/language_tv@1"])[3:] == ["0", "lower"]
    assert _row(headline, ["hubness", "t2i/hubness_skew@10"])[2] == "nan"
    flat = " ".join(headline.split())
    assert (
        "t2i/hubness_skew@10 is nan: each of the 3 gallery items is in 4 of the 4 top-10 lists: "
        "N_k is constant (k = 10 is at least the gallery size, so every item is in every list)"
    ) in flat


def test_comparison_calls_a_change_only_beyond_its_noise():
    comparison = _with_se(before_report()).compare(_with_se(after_report()))
    # language TV 0.417 -> 0.083: gain 0.333 > 2·√(0.05² + 0.05²) = 0.141
    assert comparison.noise("i2t/language_tv@1") == pytest.approx(2 * math.hypot(0.05, 0.05))
    assert comparison.noise_verdict("i2t/language_tv@1") == "better"
    # i2t recall@1 0.812 -> 0.750: a loss of 0.062 < 0.141, a plain "worse" without SEs
    assert comparison["i2t/recall@1"].verdict == "worse"
    assert comparison.noise_verdict("i2t/recall@1") == WITHIN_NOISE
    # t2i MRV 2.5 -> 1.0: gain 1.5 < 2·√2 = 2.83
    assert comparison.noise_verdict("t2i/mrv") == WITHIN_NOISE
    assert comparison.noise("i2t/mrv") is None  # no SE: the plain verdict stands
    assert comparison.noise_verdict("i2t/mrv") == "worse"
    text = str(comparison)
    assert _row(text, ["recall", "i2t/recall@1"])[2:] == [
        "0.812 ± 0.050",
        "0.750 ± 0.050",
        "-0.062",
        "0.141",
        "within noise ≈",
    ]
    assert _row(text, ["language prevalence", "i2t/language_tv@1"])[-1] == "better ✓"
    retrieval = text[text.index("\nRetrieval\n") :]
    assert _row(retrieval, ["i2t/recall@1"])[-1] == "within noise ≈"


def test_html_headline_links_each_metric_to_its_definition():
    html = _with_se(before_report()).compare(_with_se(after_report())).to_html()
    page = _parse(html)
    assert page.headings["h2"][0] == "Headline"
    assert ("noise", "within noise ≈") in page.cells
    targets = [value for tag, attr, value in page.links if tag == "a" and "def-" in value]
    assert "#def-i2t-language-tv-1" in targets and len(targets) == 8
    for target in targets:
        assert f'id="{target[1:]}"' in html
    definition = html[html.index('id="def-i2t-language-tv-1"') :]
    assert "Full definition: docs/metrics.md#language-share." in definition[:600]


def test_a_headline_metric_absent_from_every_report_is_explained():
    report = before_report()
    report.metrics = {k: v for k, v in report.metrics.items() if "mrv" not in k}
    text = " ".join(str(report).split())
    assert "t2i/mrv: not measured — no item is captioned in two or more languages." in text
    assert "i2t/mrv: not measured — no image has right captions in two or more languages." in text


def test_every_definition_names_an_anchor_of_docs_metrics():
    page = (Path(__file__).resolve().parents[1] / METRICS_DOC).read_text(encoding="utf-8")
    for metric in HEADLINE:
        assert f'<a id="{metric.doc_anchor}"></a>' in page, metric.key
