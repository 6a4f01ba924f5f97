"""Terminal rendering and layout: grouped sections, compact per-language rows, no key dropped."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st
from report_fixtures import after_report, before_report

from xcm_debias.report import BiasReport
from xcm_debias.report.layout import layout

SECTION_TITLES = [
    "Retrieval",
    "Language prevalence (image→text)",
    "Cultural tugging (text→image)",
    "Consistency",
    "Hubness and geometry",
]


def _row(text: str, first_cell: str) -> list[str]:
    """Cells of the first table row of ``text`` starting with ``first_cell`` (split on 2+
    spaces)."""
    for line in text.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if cells[0] == first_cell:
            return cells
    raise AssertionError(f"no row {first_cell!r}")


def test_report_str_has_the_sections_in_order():
    text = str(before_report())
    positions = [text.index(f"\n{title}\n") for title in SECTION_TITLES]
    assert positions == sorted(positions)
    assert text.startswith("Bias report\n===========\n")


def test_report_str_shows_values_and_compact_per_language_rows():
    text = str(before_report())
    assert _row(text, "t2i/recall@1") == ["t2i/recall@1", "0.750", "higher"]
    assert _row(text, "i2t/language_tv@1") == ["i2t/language_tv@1", "0.417", "lower"]
    assert _row(text, "t2i/own_culture_excess@1")[1] == "0.667"
    # one row per language: own-culture share and its chance, side by side
    tugging = text[text.index("Cultural tugging") :]
    assert _row(tugging, "sw") == ["sw", "1.000", "0.250"]
    # heat-map rows: culture shares, own culture starred, chance last
    heat = tugging[tugging.index("culture_share@1 by lang × culture") :]
    assert _row(heat, "en") == ["en", "0.125", "0.750*", "0.125", "0.000", "0.250"]


def test_comparison_str_shows_before_after_delta_and_verdict():
    text = str(before_report().compare(after_report()))
    assert _row(text, "i2t/language_tv@1") == [
        "i2t/language_tv@1",
        "0.417",
        "0.083",
        "-0.333",
        "better ✓",
    ]
    assert _row(text, "i2t/recall@1") == ["i2t/recall@1", "0.812", "0.750", "-0.062", "worse ✗"]
    assert _row(text, "t2i/mrr") == ["t2i/mrr", "—", "0.800", "—", "missing"]
    tugging = text[text.index("Cultural tugging") :]
    assert _row(tugging, "de") == ["de", "1.000 → 0.250 ✓", "0.250 → 0.250"]
    assert "Metrics in one report only" in text
    assert "All 45 metrics: 15 better, 4 worse (0 of these within noise), 2 in one report" in text


keys = st.builds(
    lambda task, name, quals: "/".join([task, name, *quals]),
    st.sampled_from(["t2i", "i2t"]),
    st.sampled_from(["recall@1", "own_culture@1", "language_share@1", "mrv", "x_y@3"]),
    st.lists(st.sampled_from(["lang=de", "lang=sw", "culture=ja", "zz=1"]), max_size=3),
)


@given(st.lists(keys | st.sampled_from(["modality_gap", "odd"]), min_size=1, max_size=30))
def test_layout_places_every_key_exactly_once(metric_keys):
    sections = layout(metric_keys)
    shown = [key for section in sections for key in section.keys()]
    assert sorted(shown) == sorted(set(metric_keys))


def test_every_metric_value_is_printed():
    report = BiasReport({"t2i/recall@1/lang=de": 0.123, "odd/key/a=1/b=2/c=3": 0.456})
    text = str(report)
    assert "0.123" in text and "odd/key/a=1/b=2/c=3" in text and "0.456" in text
