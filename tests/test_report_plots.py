"""save_plots writes one decodable PNG per figure that has data."""

from __future__ import annotations

import pytest
from PIL import Image
from report_fixtures import after_report, before_report

from xcm_debias.report import BiasReport
from xcm_debias.report.plots import FIGURE_NAMES, render_png


def test_comparison_save_plots_writes_every_figure_with_data(tmp_path):
    paths = before_report().compare(after_report()).save_plots(tmp_path / "plots")
    metric_figures = [name for name in FIGURE_NAMES if name != "selection_tradeoff"]
    assert sorted(p.name for p in paths) == sorted(f"{name}.png" for name in metric_figures)
    for path in paths:
        with Image.open(path) as image:
            assert image.format == "PNG"
    with Image.open(tmp_path / "plots" / "culture_heatmap.png") as image:
        heat_width = image.width
    # the before/after heat map has two panels: wider than the single report's
    single = before_report().save_plots(tmp_path / "single")
    with Image.open(next(p for p in single if p.name == "culture_heatmap.png")) as image:
        assert heat_width > 1.5 * image.width


def test_only_figures_with_data_are_written(tmp_path):
    report = BiasReport({"t2i/recall@1/lang=de": 0.5, "t2i/recall@1/lang=en": 1.0})
    assert [p.name for p in report.save_plots(tmp_path)] == ["recall_by_language.png"]
    assert BiasReport({"t2i/recall@1": 0.5}).save_plots(tmp_path / "none") == []


def test_plot_errors_name_the_argument(tmp_path):
    report = BiasReport({"t2i/recall@1": 0.5})
    with pytest.raises(ValueError, match="name: expected a figure with data"):
        render_png("culture_heatmap", report)
    file = tmp_path / "file.txt"
    file.write_text("x")
    with pytest.raises(ValueError, match="folder: expected a folder"):
        report.save_plots(file)
