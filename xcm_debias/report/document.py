"""The content of a report page as renderer-neutral blocks (headings, tables, figures).

The terminal, Markdown and HTML renderers all format the same :func:`build_document` output,
so the three show the same numbers in the same places. One report: a value per metric. Two
reports (a comparison): before, after, Δ = after − before and a verdict per metric.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from xcm_debias.report import families, layout, plots
from xcm_debias.report.bias_report import BiasReport
from xcm_debias.report.comparison import Comparison

_BETTER_WORDS = {
    families.HIGHER: "higher",
    families.LOWER: "lower",
    families.ABS_LOWER: "|x| lower",
    families.NEUTRAL: "",
}
VERDICT_MARKS = {
    families.BETTER: "✓",
    families.WORSE: "✗",
    families.UNCHANGED: "=",
    families.NO_DIRECTION: "",
    families.UNDEFINED: "?",
    families.MISSING: "",
}
LEGEND = (
    "Δ = after − before. ✓ better, ✗ worse, = unchanged (direction per metric family: recall "
    "higher; language TV, MRV, hubness lower; own-culture share and language share closer to "
    "their chance/gallery level; |own-culture excess| lower; neutral metrics unmarked)."
)


@dataclass(frozen=True)
class Cell:
    text: str
    verdict: str | None = None  # comparison verdict of the cell's metric
    own: bool = False  # the language's own culture (heat-map tables)


@dataclass(frozen=True)
class Heading:
    text: str
    level: int


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Table:
    title: str | None
    header: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]


@dataclass(frozen=True)
class FigureRef:
    name: str
    caption: str


Block = Heading | Paragraph | Table | FigureRef


def fmt(value: float | None) -> str:
    """A metric value: 3 decimals; large integral counts without decimals; ``—`` if absent."""
    if value is None:
        return "—"
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if abs(value) >= 1000:
        return f"{value:.0f}" if float(value).is_integer() else f"{value:.4g}"
    return f"{value:.3f}"


def fmt_delta(value: float | None) -> str:
    if value is None:
        return "—"
    if not math.isfinite(value):
        return fmt(value)
    return f"{value:+.3f}" if abs(value) < 1000 else f"{value:+.4g}"


def better_word(key: str) -> str:
    """How to read a metric in a single report: ``higher``, ``lower``, ``near chance``..."""
    family = families.family_of(key)
    if family.better == families.TOWARD:
        return "near " + ("gallery" if "gallery" in (family.reference or "") else "chance")
    return _BETTER_WORDS[family.better]


def config_summary(config: Mapping[str, object]) -> str:
    """``k=10 · retriever=ExactRetriever(...) · languages (7): de, en, ...``."""
    parts = []
    for name, value in config.items():
        if value is None:
            continue
        if isinstance(value, Mapping):
            text = ", ".join(f"{k}→{v}" for k, v in value.items())
            parts.append(f"{name}: {text}")
        elif isinstance(value, Sequence) and not isinstance(value, str):
            parts.append(f"{name} ({len(value)}): {', '.join(str(v) for v in value)}")
        else:
            parts.append(f"{name}={value}")
    return " · ".join(parts) if parts else "(no configuration recorded)"


def _group_order(reports: Sequence[BiasReport]) -> dict[str, list[str]]:
    order: dict[str, list[str]] = {"lang": [], "culture": []}
    for report in reports:
        for qualifier, config_key in (("lang", "languages"), ("culture", "cultures")):
            for value in report.config.get(config_key, []) or []:
                if str(value) not in order[qualifier]:
                    order[qualifier].append(str(value))
    return order


class _Values:
    """Cell text for one report (value) or a comparison (before → after, with verdict)."""

    def __init__(self, report: BiasReport, comparison: Comparison | None) -> None:
        self.report = report
        self.comparison = comparison

    def cell(self, key: str | None) -> Cell:
        if key is None:
            return Cell("—")
        if self.comparison is None:
            return Cell(fmt(self.report.metrics.get(key)))
        entry = self.comparison[key]
        return Cell(f"{fmt(entry.before)} → {fmt(entry.after)}", entry.verdict)

    def scalar_row(self, key: str) -> tuple[Cell, ...]:
        if self.comparison is None:
            return (Cell(key), Cell(fmt(self.report.metrics.get(key))), Cell(better_word(key)))
        e = self.comparison[key]
        return (
            Cell(key),
            Cell(fmt(e.before)),
            Cell(fmt(e.after)),
            Cell(fmt_delta(e.delta)),
            Cell(e.verdict if e.verdict != families.NO_DIRECTION else "", e.verdict),
        )


def build_document(
    before: BiasReport,
    after: BiasReport | None = None,
    labels: tuple[str, str] = ("before", "after"),
) -> list[Block]:
    """Blocks of a single report (``after=None``) or of a before/after comparison."""
    comparison = None if after is None else Comparison(before, after, labels)
    reports = [before] if after is None else [before, after]
    values = _Values(before, comparison)
    blocks: list[Block] = []
    if comparison is None:
        blocks.append(Heading("Bias report", 1))
        blocks.append(Paragraph(config_summary(before.config)))
        scalar_header: tuple[str, ...] = ("metric", "value", "better")
    else:
        blocks.append(Heading(f"Bias report: {labels[0]} vs {labels[1]}", 1))
        for label, report in zip(labels, reports, strict=True):
            blocks.append(Paragraph(f"{label}: {config_summary(report.config)}"))
        better = len(comparison.with_verdict(families.BETTER))
        worse = len(comparison.with_verdict(families.WORSE))
        blocks.append(
            Paragraph(
                f"{len(comparison)} metrics: {better} better, {worse} worse, "
                f"{len(comparison.missing)} in one report only. {LEGEND}"
            )
        )
        scalar_header = ("metric", labels[0], labels[1], "Δ", "verdict")

    keys = comparison.keys() if comparison is not None else list(before.metrics)
    sections = {s.name: s for s in layout.layout(keys, _group_order(reports))}
    figures = {spec.name: spec for spec in plots.available(before, after)}
    for name, title in families.SECTIONS:
        section = sections.get(name)
        specs = [spec for spec in plots.FIGURES if spec.section == name]
        if section is None and not any(spec.name in figures for spec in specs):
            continue
        blocks.append(Heading(title, 2))
        if section is not None:
            if section.scalars:
                rows = tuple(values.scalar_row(key) for key in section.scalars)
                blocks.append(Table(None, scalar_header, rows))
            blocks.extend(_group_table(t, values) for t in section.tables)
            for matrix in section.matrices:
                blocks.extend(_matrix_tables(matrix, reports, labels))
        for spec in specs:
            if spec.name in figures:
                blocks.append(FigureRef(spec.name, spec.caption))
            elif section is not None:
                blocks.append(Paragraph(f"Figure {spec.name}: {plots.missing_reason(spec)}."))

    if comparison is not None and comparison.missing:
        blocks.append(Heading("Metrics in one report only", 2))
        rows = tuple(
            (Cell(key), Cell(labels[0] if side == "before" else labels[1]))
            for key, side in comparison.missing.items()
        )
        blocks.append(Table(None, ("metric", "present in"), rows))
    return blocks


def _group_table(table: layout.GroupTable, values: _Values) -> Table:
    header = (table.qualifier, *layout.column_headers(table.columns))
    rows = tuple(
        (Cell(group), *(values.cell(table.key(group, column)) for column in table.columns))
        for group in table.groups
    )
    return Table(table.title, header, rows)


def _matrix_tables(
    matrix: layout.Matrix, reports: list[BiasReport], labels: tuple[str, str]
) -> list[Table]:
    """A matrix per report (one for a single report, before and after for a comparison). For
    the language × culture heat map, the own-culture cell is starred and the chance column
    (``t2i/own_culture_chance/lang=<l>``) added."""
    heat_map = (matrix.row_qualifier, matrix.column_qualifier) == ("lang", "culture")
    tables = []
    for label, report in zip(labels, reports, strict=False):
        chance = {row: report.metrics.get(f"{plots.CHANCE_BASE}/lang={row}") for row in matrix.rows}
        has_chance = heat_map and any(v is not None for v in chance.values())
        header = (
            f"{matrix.row_qualifier} \\ {matrix.column_qualifier}",
            *matrix.columns,
            *(("chance",) if has_chance else ()),
        )
        rows = []
        for row in matrix.rows:
            own = plots.own_culture(report, row) if heat_map else None
            cells = [Cell(row)]
            for column in matrix.columns:
                key = matrix.key(row, column)
                text = fmt(report.metrics.get(key)) if key is not None else "—"
                is_own = column == own and key is not None
                cells.append(Cell(text + ("*" if is_own else ""), own=is_own))
            if has_chance:
                cells.append(Cell(fmt(chance[row])))
            rows.append(tuple(cells))
        side = f" — {label}" if len(reports) > 1 else ""
        star = " (* = own culture)" if heat_map else ""
        title = (
            f"{layout.TASK_TITLES[layout.task_of(matrix.base)]}: "
            f"{layout.short_name(matrix.base)} by {matrix.row_qualifier} × "
            f"{matrix.column_qualifier}{side}{star}"
        )
        tables.append(Table(title, header, tuple(rows)))
    return tables
