"""Markdown rendering: one ``##`` section per report section, GitHub pipe tables."""

from __future__ import annotations

from xcm_debias.report.bias_report import BiasReport
from xcm_debias.report.blocks import (
    VERDICT_MARKS,
    Block,
    Cell,
    FigureRef,
    Heading,
    Paragraph,
    Table,
)
from xcm_debias.report.document import build_document
from xcm_debias.report.registry import implements


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|")


def _cell(cell: Cell, first: bool) -> str:
    text = _escape(cell.text)
    if cell.code and text:
        text = f"`{text}`"
    if cell.href is not None:
        text = f"[{text}]({cell.href})"
    if cell.own or cell.strong:
        text = f"**{text}**"
    mark = VERDICT_MARKS.get(cell.verdict or "", "")
    return f"{text} {mark}" if mark and not first else text


def _table(table: Table) -> list[str]:
    lines = [f"**{_escape(table.title)}**", ""] if table.title else []
    lines.append("| " + " | ".join(_escape(h) for h in table.header) + " |")
    lines.append("|" + "|".join([":---", *["---:"] * (len(table.header) - 1)]) + "|")
    for row in table.rows:
        lines.append("| " + " | ".join(_cell(c, i == 0) for i, c in enumerate(row)) + " |")
    return lines


def format_blocks(blocks: list[Block], figure_dir: str | None = None) -> str:
    lines: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            lines.extend(["#" * block.level + " " + block.text, ""])
        elif isinstance(block, Paragraph):
            target = f'<a id="{block.anchor}"></a>' if block.anchor else ""
            lines.extend([target + block.text, ""])
        elif isinstance(block, Table):
            lines.extend([*_table(block), ""])
        elif isinstance(block, FigureRef):
            if figure_dir is not None:
                lines.extend([f"![{block.name}]({figure_dir.rstrip('/')}/{block.name}.png)", ""])
                lines.extend([f"*{block.caption}*", ""])
        else:
            raise TypeError(f"block: expected a document block, got {type(block).__name__}")
    return "\n".join(lines).rstrip("\n") + "\n"


@implements("markdown")
def render_markdown(
    before: BiasReport,
    after: BiasReport | None = None,
    labels: tuple[str, str] = ("before", "after"),
    figure_dir: str | None = None,
) -> str:
    """Markdown of one report or a comparison; ``figure_dir`` (relative to the Markdown file)
    links the PNGs written by ``save_plots`` into their sections."""
    if figure_dir is not None and not isinstance(figure_dir, str):
        raise TypeError(f"figure_dir: expected a str or None, got {type(figure_dir).__name__}")
    return format_blocks(build_document(before, after, labels), figure_dir)
