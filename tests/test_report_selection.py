"""A retriever's ``selection_`` (the recall guard's candidate table) rides in the report as plain
data, round-trips through JSON and renders as the "How the configuration was chosen" section."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image
from test_evaluate import hand_corpus
from test_report_html import _parse

from xcm_debias import ExactRetriever
from xcm_debias.report import BiasReport
from xcm_debias.report.plots import render_png

CANDIDATES = [
    {
        "name": "identity",
        "spec": "",
        "metrics": {
            "t2i/recall@1": 0.80,
            "i2t/recall@1": 0.95,
            "i2t/language_tv@1": 0.26,
            "t2i/own_culture_excess@1": 0.40,
        },
        "admissible": True,
        "reasons": [],
    },
    {
        "name": "balance",
        "spec": "GroupBalance()",
        "metrics": {
            "t2i/recall@1": 0.81,
            "i2t/recall@1": 0.945,
            "i2t/language_tv@1": 0.05,
            "t2i/own_culture_excess@1": 0.02,
            "t2i/mrv": float("nan"),
        },
        "admissible": True,
        "reasons": [],
    },
    {
        "name": "aggressive",
        "spec": "LanguageProjection() | GroupBalance(temperature=0.005)",
        "metrics": {
            "t2i/recall@1": 0.70,
            "i2t/recall@1": 0.80,
            "i2t/language_tv@1": 0.01,
            "t2i/own_culture_excess@1": -0.01,
        },
        "admissible": False,
        "reasons": ["i2t/recall@1 falls 0.150 > 0.010"],
    },
]


class FakeSelection:
    def to_dict(self) -> dict[str, object]:
        return {"chosen": "balance", "max_recall_loss": 0.01, "candidates": CANDIDATES}


class GuardedRetriever(ExactRetriever):
    """An exact retriever that says how it was chosen."""

    selection_ = FakeSelection()


@pytest.fixture(scope="module")
def guarded() -> BiasReport:
    return BiasReport.evaluate(GuardedRetriever(), hand_corpus())


def test_evaluate_keeps_the_selection_as_plain_data(guarded):
    selection = guarded.provenance["selection"]
    assert selection["chosen"] == "balance" and selection["max_recall_loss"] == 0.01
    assert [c["name"] for c in selection["candidates"]] == ["identity", "balance", "aggressive"]
    assert selection["candidates"][1]["metrics"]["t2i/mrv"] is None  # NaN as JSON's null
    assert selection["candidates"][2]["reasons"] == ["i2t/recall@1 falls 0.150 > 0.010"]
    plain = BiasReport.evaluate(ExactRetriever(), hand_corpus())
    assert plain.provenance == {}
    np.testing.assert_equal(guarded.metrics, plain.metrics)  # the selection changes no metric


def test_selection_round_trips_through_json(guarded, tmp_path):
    path = tmp_path / "report.json"
    guarded.to_json(path)
    back = BiasReport.from_json(path)
    assert back.provenance == guarded.provenance
    assert back.uncertainty == guarded.uncertainty
    # a report written before provenance existed still loads
    old = guarded.to_dict()
    del old["provenance"], old["uncertainty"]
    legacy = BiasReport.from_json(json.dumps(old))
    assert legacy.provenance == {} and legacy.uncertainty == {}


def test_html_section_marks_the_chosen_candidate_and_draws_both_scatter_plots(guarded):
    comparison = BiasReport.evaluate(ExactRetriever(), hand_corpus()).compare(guarded)
    html = comparison.to_html()
    page = _parse(html)
    assert page.headings["h2"][:2] == ["Headline", "How the configuration was chosen"]
    assert ("strong", "★ balance") in page.cells
    assert ("", "identity") in page.cells and ("", "aggressive") in page.cells
    assert ("code", "LanguageProjection() | GroupBalance(temperature=0.005)") in page.cells
    assert ("code", "i2t/recall@1 falls 0.150 > 0.010") in page.cells
    assert 'id="fig-selection_tradeoff"' in html
    start = html.index('id="fig-selection_tradeoff"')
    src = html[start:].split('src="', 1)[1].split('"', 1)[0]
    data = base64.b64decode(src.removeprefix("data:image/png;base64,"))
    with Image.open(io.BytesIO(data)) as image:
        assert image.width > 2 * image.height  # two panels side by side


def test_markdown_and_text_show_the_candidate_table(guarded):
    markdown = guarded.to_markdown()
    assert "## How the configuration was chosen" in markdown
    row = next(line for line in markdown.splitlines() if "★ balance" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:7] == [
        "**★ balance**",
        "`GroupBalance()`",
        "0.810",
        "0.945",
        "0.050",
        "0.020",
        "—",
    ]
    assert cells[-2:] == ["yes", ""]
    text = str(guarded)
    assert "3 candidate pipelines were scored out-of-fold" in " ".join(text.split())


@pytest.fixture
def seen(monkeypatch) -> list[tuple[list[float], list[float]]]:
    """The (x, y) of every Axes.scatter call while the test runs."""
    from matplotlib.axes import Axes

    calls: list[tuple[list[float], list[float]]] = []
    original = Axes.scatter

    def record(self, x, y, *args, **kwargs):
        calls.append(([float(v) for v in x], [float(v) for v in y]))
        return original(self, x, y, *args, **kwargs)

    monkeypatch.setattr(Axes, "scatter", record)
    return calls


def test_the_scatter_plot_puts_each_candidate_at_its_metrics(guarded, seen):
    render_png("selection_tradeoff", guarded)
    # panel 1 (i2t R@1, TV): admissible, rejected, chosen; panel 2 (t2i R@1, excess): same
    assert seen == [
        ([0.95, 0.945], [0.26, 0.05]),
        ([0.80], [0.01]),
        ([0.945], [0.05]),
        ([0.80, 0.81], [0.40, 0.02]),
        ([0.70], [-0.01]),
        ([0.81], [0.02]),
    ]


def test_a_selection_without_to_dict_mapping_is_refused():
    class Broken(ExactRetriever):
        selection_ = ["not", "a", "mapping"]

    with pytest.raises(TypeError, match="retriever.selection_: expected an object whose to_dict"):
        BiasReport.evaluate(Broken(), hand_corpus())


def test_without_a_selection_the_section_is_absent():
    report = BiasReport.evaluate(ExactRetriever(), hand_corpus())
    assert "How the configuration was chosen" not in report.to_html()
    assert "selection_tradeoff" not in report.to_html()


PER_DIRECTION = {
    "chosen": "align/t2i/balance + align/i2t/none",
    "max_recall_loss": 0.01,
    "n_folds": 5,
    "notes": ["t2i: GroupBalance options dropped: no image cultures"],
    "candidates": [
        {
            "name": "align/t2i/balance",
            "spec": "LanguageAlignment(); t2i: GroupBalance()",
            "direction": "t2i",
            "metrics": {"t2i/recall@1": 0.8, "t2i/own_culture_excess@1": 0.05},
            "admissible": True,
            "reasons": [],
        },
        {
            "name": "align/i2t/none",
            "spec": "LanguageAlignment()",
            "direction": "i2t",
            "metrics": {"i2t/recall@1": 0.9, "i2t/language_tv@1": 0.1},
            "admissible": True,
            "reasons": [],
        },
        {
            "name": "align/i2t/invsoftmax",
            "spec": "LanguageAlignment(); i2t: InvertedSoftmax()",
            "direction": "i2t",
            "metrics": {"i2t/recall@1": 0.7, "i2t/language_tv@1": 0.02},
            "admissible": False,
            "reasons": ["i2t recall@1 overall: loss 0.200 > 0.010"],
        },
    ],
}


def test_a_choice_per_direction_marks_each_chosen_candidate():
    report = BiasReport({"t2i/recall@1": 0.8}, provenance={"selection": PER_DIRECTION})
    page = _parse(report.to_html())
    assert ("strong", "★ align/t2i/balance") in page.cells
    assert ("strong", "★ align/i2t/none") in page.cells
    assert ("", "align/i2t/invsoftmax") in page.cells and ("", "i2t") in page.cells
    text = " ".join(str(report).split())
    assert "t2i: GroupBalance options dropped: no image cultures" in text
    assert "(each fold's rows scored by stages fitted on the other folds; 5 folds)" in text


def test_each_panel_shows_the_candidates_of_its_direction(seen):
    render_png("selection_tradeoff", BiasReport({}, provenance={"selection": PER_DIRECTION}))
    assert seen == [
        ([0.9], [0.1]),  # i2t panel: admissible
        ([0.7], [0.02]),  # rejected
        ([0.9], [0.1]),  # chosen
        ([0.8], [0.05]),  # t2i panel: admissible, chosen
        ([0.8], [0.05]),
    ]
