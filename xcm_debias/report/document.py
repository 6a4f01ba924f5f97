"""The content of a report page as renderer-neutral blocks (:mod:`xcm_debias.report.blocks`).

The terminal, Markdown and HTML renderers all format the same :func:`build_document` output,
so the three show the same numbers in the same places. One report: a value per metric. Two
reports (a comparison): before, after, Δ = after − before and a verdict per metric.

Page order: title and a one-line summary per report (its pipeline as a chain spec); the
headline (:mod:`xcm_debias.report.headline`); the sections of :data:`EXTRA_SECTIONS` that a
report's ``provenance`` holds data for; one section per metric family; the full configuration;
the definitions of the headline metrics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from xcm_debias.report import families, headline, inferred_labels, layout, plots, selection
from xcm_debias.report.bias_report import BiasReport
from xcm_debias.report.blocks import (
    Block,
    Cell,
    ExtraSection,
    FigureRef,
    Heading,
    Paragraph,
    Sides,
    Table,
    fmt,
    fmt_delta,
)
from xcm_debias.report.comparison import Comparison

#: Sections built from ``report.provenance[section.key]``, shown after the headline, in order.
#: A new kind of provenance adds its module's section here.
EXTRA_SECTIONS: tuple[ExtraSection, ...] = (selection.SECTION, inferred_labels.SECTION)

_BETTER_WORDS = {
    families.HIGHER: "higher",
    families.LOWER: "lower",
    families.ABS_LOWER: "|x| lower",
    families.NEUTRAL: "",
}
LEGEND = (
    "Δ = after − before. ✓ better, ✗ worse, = unchanged (direction per metric family: recall "
    "higher; language TV, MRV, hubness lower; own-culture share and language share closer to "
    "their chance/gallery level; |own-culture excess| lower; neutral metrics unmarked); "
    "≈ within noise, for the metrics with a standard error (see the headline)."
)


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


def compact_summary(config: Mapping[str, object]) -> str:
    """``pipeline: <chain spec> · k=10 · 200 images, 800 texts · 4 languages · 4 cultures``."""
    pipeline = config.get("pipeline")
    retriever = str(config.get("retriever", ""))
    if isinstance(pipeline, str):
        what = f"pipeline: {pipeline or '(identity)'}"
    elif len(retriever) > 80:
        what = f"retriever: {retriever[:77]}… (in full under Configuration)"
    else:
        what = f"retriever: {retriever or '(not recorded)'}"
    parts = [what]
    if "k" in config:
        parts.append(f"k={config['k']}")
    if "n_images" in config and "n_texts" in config:
        parts.append(f"{config['n_images']} images, {config['n_texts']} texts")
    for name in ("languages", "cultures"):
        values = config.get(name)
        if isinstance(values, Sequence) and not isinstance(values, str) and values:
            parts.append(f"{len(values)} {name}")
    return " · ".join(parts)


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
        verdict = self.comparison.noise_verdict(key)
        return Cell(f"{fmt(entry.before)} → {fmt(entry.after)}", verdict)

    def scalar_row(self, key: str) -> tuple[Cell, ...]:
        if self.comparison is None:
            return (Cell(key), Cell(fmt(self.report.metrics.get(key))), Cell(better_word(key)))
        e = self.comparison[key]
        verdict = self.comparison.noise_verdict(key)
        return (
            Cell(key),
            Cell(fmt(e.before)),
            Cell(fmt(e.after)),
            Cell(fmt_delta(e.delta)),
            Cell(verdict if verdict != families.NO_DIRECTION else "", verdict),
        )


def build_document(
    before: BiasReport,
    after: BiasReport | None = None,
    labels: tuple[str, str] = ("before", "after"),
) -> list[Block]:
    """Blocks of a single report (``after=None``) or of a before/after comparison."""
    comparison = None if after is None else Comparison(before, after, labels)
    reports = [before] if after is None else [before, after]
    sides: Sides = [("", before)] if after is None else list(zip(labels, reports, strict=True))
    values = _Values(before, comparison)
    blocks: list[Block] = []
    if comparison is None:
        blocks.append(Heading("Bias report", 1))
        blocks.append(Paragraph(compact_summary(before.config)))
        scalar_header: tuple[str, ...] = ("metric", "value", "better")
    else:
        blocks.append(Heading(f"Bias report: {labels[0]} vs {labels[1]}", 1))
        for label, report in sides:
            blocks.append(Paragraph(f"{label}: {compact_summary(report.config)}"))
        scalar_header = ("metric", labels[0], labels[1], "Δ", "verdict")
    blocks.extend(headline.headline_blocks(sides, comparison))

    figures = {spec.name: spec for spec in plots.available(before, after)}
    for extra in EXTRA_SECTIONS:
        if any(extra.key in report.provenance for report in reports):
            blocks.append(Heading(extra.title, 2))
            blocks.extend(extra.build(sides))
            blocks.extend(_figures(extra.key, figures, show_missing=False))

    pending: list[Block] = []  # the comparison's overall count, under the first metric section
    if comparison is not None:
        better = len(comparison.with_verdict(families.BETTER))
        worse = len(comparison.with_verdict(families.WORSE))
        noisy = sum(comparison.noise_verdict(k) == families.WITHIN_NOISE for k in comparison.keys())
        pending.append(
            Paragraph(
                f"All {len(comparison)} metrics: {better} better, {worse} worse ({noisy} of "
                f"these within noise), {len(comparison.missing)} in one report only. {LEGEND}"
            )
        )
    keys = comparison.keys() if comparison is not None else list(before.metrics)
    sections = {s.name: s for s in layout.layout(keys, _group_order(reports))}
    for name, title in families.SECTIONS:
        section = sections.get(name)
        specs = [spec for spec in plots.FIGURES if spec.section == name]
        if section is None and not any(spec.name in figures for spec in specs):
            continue
        blocks.append(Heading(title, 2))
        blocks.extend(pending)
        pending = []
        if section is not None:
            if section.scalars:
                rows = tuple(values.scalar_row(key) for key in section.scalars)
                blocks.append(Table(None, scalar_header, rows))
            blocks.extend(_group_table(t, values) for t in section.tables)
            for matrix in section.matrices:
                blocks.extend(_matrix_tables(matrix, reports, labels))
        blocks.extend(_figures(name, figures, show_missing=section is not None))

    if comparison is not None and comparison.missing:
        blocks.append(Heading("Metrics in one report only", 2))
        rows = tuple(
            (Cell(key), Cell(labels[0] if side == "before" else labels[1]))
            for key, side in comparison.missing.items()
        )
        blocks.append(Table(None, ("metric", "present in"), rows))
    blocks.append(Heading("Configuration", 2))
    for label, report in sides:
        prefix = f"{label}: " if label else ""
        blocks.append(Paragraph(prefix + config_summary(report.config)))
    blocks.extend(headline.definition_blocks(sides))
    return blocks


def _figures(
    section: str, available: dict[str, plots.FigureSpec], show_missing: bool
) -> list[Block]:
    """The section's figures that have data; a line for each one that has none."""
    blocks: list[Block] = []
    for spec in plots.FIGURES:
        if spec.section != section:
            continue
        if spec.name in available:
            blocks.append(FigureRef(spec.name, spec.caption))
        elif show_missing:
            blocks.append(Paragraph(f"Figure {spec.name}: {plots.missing_reason(spec)}."))
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
