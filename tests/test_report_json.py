"""BiasReport / Comparison JSON: exact round trips, strict JSON, clear errors."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from report_fixtures import after_report, before_report

from xcm_debias.report import BiasReport, Comparison


def test_report_json_round_trip_is_equal(tmp_path):
    report = before_report()
    path = tmp_path / "sub" / "report.json"
    text = report.to_json(path)
    assert path.read_text(encoding="utf-8") == text
    assert BiasReport.from_json(path) == report
    assert BiasReport.from_json(str(path)) == report
    assert BiasReport.from_json(text) == report


def test_report_json_holds_the_flat_metrics_and_details():
    data = json.loads(before_report().to_json())
    assert data["format"] == "xcm_debias.BiasReport"
    assert data["metrics"]["t2i/recall@1"] == 0.75
    assert data["metrics"]["t2i/culture_share@1/lang=en/culture=ja"] == 0.125
    assert data["details"]["t2i/k_occurrence@10"][-1] == 18
    assert data["config"]["languages"] == ["de", "en", "sw"]


def test_non_finite_values_are_strict_json_and_restored():
    report = BiasReport(
        metrics={"a": math.nan, "b": math.inf, "c": -math.inf, "d": 0.5},
        details={"t2i/k_occurrence@10": [1.0, math.nan]},
    )
    text = report.to_json()
    assert "NaN" not in text and "Infinity" in text
    json.loads(text, parse_constant=lambda name: pytest.fail(f"non-strict token {name}"))
    back = BiasReport.from_json(text)
    assert math.isnan(back.metrics["a"])
    assert back.metrics["b"] == math.inf and back.metrics["c"] == -math.inf
    assert back.metrics["d"] == 0.5
    assert back.details["t2i/k_occurrence@10"][0] == 1.0
    assert math.isnan(back.details["t2i/k_occurrence@10"][1])


finite = st.floats(allow_nan=False, allow_infinity=False)


@given(st.dictionaries(st.text(min_size=1, max_size=20), finite, max_size=20))
def test_report_round_trip_preserves_every_finite_float(metrics):
    report = BiasReport(metrics=metrics, details={}, config={"k": 3})
    assert BiasReport.from_json(report.to_json()) == report


def test_comparison_json_holds_before_after_and_delta(tmp_path):
    comparison = before_report().compare(after_report())
    path = tmp_path / "comparison.json"
    data = json.loads(comparison.to_json(path))
    assert data["before"]["metrics"]["t2i/own_culture@1/lang=de"] == 1.0
    assert data["after"]["metrics"]["t2i/own_culture@1/lang=de"] == 0.25
    assert data["delta"]["t2i/own_culture@1/lang=de"] == -0.75
    assert data["verdict"]["t2i/own_culture@1/lang=de"] == "better"
    assert data["missing"] == {"i2t/lbkl@1": "before", "t2i/mrr": "after"}
    assert "i2t/lbkl@1" not in data["delta"]
    back = Comparison.from_json(path)
    assert back.before == comparison.before and back.after == comparison.after
    assert back.delta == comparison.delta


@pytest.mark.parametrize(
    ("source", "error", "message"),
    [
        ('{"format": "other", "metrics": {}}', ValueError, "expected format"),
        ('{"format": "xcm_debias.BiasReport", "metrics": []}', ValueError, "metrics"),
        ('{"format": "xcm_debias.BiasReport", "metrics": {"a": "x"}}', ValueError, "'a'"),
        ("{not json", ValueError, "parse error"),
        ("no/such/report.json", FileNotFoundError, "no such JSON file"),
    ],
)
def test_from_json_errors_name_the_problem(source, error, message):
    with pytest.raises(error, match=message):
        BiasReport.from_json(source)


def test_to_json_refuses_a_folder_path(tmp_path):
    with pytest.raises(ValueError, match="expected a file path"):
        before_report().to_json(tmp_path)
