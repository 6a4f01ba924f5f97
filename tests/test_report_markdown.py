"""Markdown rendering: headings per section, well-formed pipe tables, the right numbers."""

from __future__ import annotations

from report_fixtures import after_report, before_report

from xcm_debias.report import BiasReport


def _tables(markdown: str) -> list[list[str]]:
    tables, current = [], []
    for line in markdown.splitlines():
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    return tables + ([current] if current else [])


def _cells(line: str) -> list[str]:
    inner = line.strip()[1:-1]
    return [cell.strip() for cell in inner.replace("\\|", "\0").split("|")]


def test_markdown_tables_are_well_formed():
    markdown = before_report().compare(after_report()).to_markdown()
    tables = _tables(markdown)
    assert len(tables) == 13  # headline, 3 retrieval, 2 prevalence, 4 tugging, 1, 1, 1 missing
    for table in tables:
        widths = {len(_cells(line)) for line in table}
        assert len(widths) == 1, table
        separator = _cells(table[1])
        assert separator[0] == ":---" and all(c == "---:" for c in separator[1:])
        assert len(table) >= 3


def test_markdown_headings_and_values():
    markdown = before_report().compare(after_report()).to_markdown()
    headings = [line for line in markdown.splitlines() if line.startswith("#")]
    assert headings == [
        "# Bias report: before vs after",
        "## Headline",
        "## Retrieval",
        "## Language prevalence (image→text)",
        "## Cultural tugging (text→image)",
        "## Consistency",
        "## Hubness and geometry",
        "## Metrics in one report only",
        "## Configuration",
        "## Headline metrics: definitions",
    ]
    rows = {_cells(line)[0]: _cells(line) for t in _tables(markdown)[1:] for line in t}
    assert rows["t2i/mrv"] == ["t2i/mrv", "2.500", "1.000", "-1.500", "better ✓"]
    assert rows["t2i/own_culture_excess@1"][1:4] == ["0.667", "0.042", "-0.625"]


def test_single_report_markdown_stars_the_own_culture_and_links_figures():
    markdown = before_report().to_markdown(figure_dir="plots")
    assert "| sw | 0.000 | 0.000 | 0.000 | **1.000*** | 0.250 |" in markdown
    for name in ("recall_by_language", "language_share", "culture_heatmap", "k_occurrence"):
        assert f"![{name}](plots/{name}.png)" in markdown
    assert "![" not in before_report().to_markdown()


def test_pipes_in_keys_are_escaped():
    markdown = BiasReport({"odd|key": 1.0}).to_markdown()
    assert "| odd\\|key | 1.000 |  |" in markdown
