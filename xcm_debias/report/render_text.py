"""Terminal rendering: grouped plain-text tables (``str(report)``, ``str(comparison)``)."""

from __future__ import annotations

import textwrap

from xcm_debias.report.bias_report import BiasReport
from xcm_debias.report.blocks import VERDICT_MARKS, Block, FigureRef, Heading, Paragraph, Table
from xcm_debias.report.document import build_document
from xcm_debias.report.registry import implements

WIDTH = 100


def _table_lines(table: Table) -> list[str]:
    rows = [
        [
            cell.text + (f" {VERDICT_MARKS[cell.verdict]}" if cell.verdict and i else "")
            for i, cell in enumerate(row)
        ]
        for row in table.rows
    ]
    widths = [max(len(text) for text in column) for column in zip(table.header, *rows, strict=True)]

    def line(cells: list[str] | tuple[str, ...]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [text.rjust(width) for text, width in zip(cells[1:], widths[1:], strict=True)]
        return "  " + "  ".join([first, *rest]).rstrip()

    lines = [f"  {table.title}"] if table.title else []
    lines.append(line(table.header))
    lines.append("  " + "  ".join("-" * w for w in widths))
    lines.extend(line(row) for row in rows)
    return lines


def format_blocks(blocks: list[Block]) -> str:
    lines: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            rule = "=" if block.level == 1 else "-"
            lines.extend(["", block.text, rule * len(block.text)])
        elif isinstance(block, Paragraph):
            lines.extend(textwrap.wrap(block.text, WIDTH))
        elif isinstance(block, Table):
            lines.extend(_table_lines(block))
            lines.append("")
        elif not isinstance(block, FigureRef):  # figures exist in the HTML page only
            raise TypeError(f"block: expected a document block, got {type(block).__name__}")
    text = "\n".join(lines).strip("\n")
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text + "\n"


@implements("text")
def render_text(
    before: BiasReport,
    after: BiasReport | None = None,
    labels: tuple[str, str] = ("before", "after"),
) -> str:
    """Plain-text tables of one report, or of a before/after comparison."""
    return format_blocks(build_document(before, after, labels))
