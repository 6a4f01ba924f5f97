"""HTML rendering: one self-contained page (inline CSS, plots as inline base64 PNG, no script,
no external resource), usable offline and as an e-mail attachment."""

from __future__ import annotations

import base64
from html import escape

from xcm_debias.report import families
from xcm_debias.report.bias_report import BiasReport
from xcm_debias.report.blocks import (
    VERDICT_MARKS,
    Block,
    Cell,
    FigureRef,
    Heading,
    Paragraph,
    Table,
    anchor,
)
from xcm_debias.report.document import build_document
from xcm_debias.report.plots import render_png
from xcm_debias.report.registry import implements

CSS = """
body { font: 14px/1.45 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: #1d2329; margin: 0; background: #f6f7f9; }
main { max-width: 1120px; margin: 0 auto; padding: 24px 32px 48px; background: #fff; }
h1 { font-size: 24px; margin: 0 0 8px; }
h2 { font-size: 18px; margin: 32px 0 10px; padding-bottom: 4px; border-bottom: 2px solid #e3e6ea; }
p.meta { color: #56606b; font-size: 12.5px; margin: 4px 0; word-break: break-word; }
nav { font-size: 13px; margin: 12px 0 4px; }
nav a { margin-right: 14px; color: #1f6fb4; text-decoration: none; }
div.tables { display: flex; flex-wrap: wrap; gap: 4px 36px; align-items: flex-start; }
h3 { font-size: 13px; margin: 10px 0 2px; color: #394450; }
table { border-collapse: collapse; margin: 4px 0 14px; font-size: 13px; }
th, td { padding: 3px 10px; border-bottom: 1px solid #eceef1; white-space: nowrap; }
th { background: #f1f3f5; text-align: right; font-weight: 600; }
th:first-child, td:first-child { text-align: left; }
td { text-align: right; font-variant-numeric: tabular-nums; }
td.better { background: #e6f4ea; color: #1e6b34; }
td.worse { background: #fde8e8; color: #a11d1d; }
td.noise { background: #f1f3f5; color: #56606b; }
td.own { font-weight: 700; outline: 2px solid #d62728; outline-offset: -2px; }
td.strong { font-weight: 700; }
td.code { white-space: normal; text-align: left; max-width: 380px; word-break: break-word;
          font: 11.5px/1.35 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
td.name { text-align: left; }
td a { color: #1f6fb4; text-decoration: none; }
p.meta:target { background: #fff6d6; }
figure { margin: 8px 0 20px; }
figure img { max-width: 100%; height: auto; border: 1px solid #eceef1; }
figcaption { color: #56606b; font-size: 12.5px; max-width: 900px; }
"""


def _cell(cell: Cell, tag: str, first: bool) -> str:
    classes = []
    if cell.verdict in (families.BETTER, families.WORSE):
        classes.append(cell.verdict)
    if cell.verdict == families.WITHIN_NOISE:
        classes.append("noise")
    flags = ((cell.own, "own"), (cell.strong, "strong"), (cell.code, "code"), (cell.href, "name"))
    for flag, name in flags:
        if flag:
            classes.append(name)
    attr = f' class="{" ".join(classes)}"' if classes else ""
    mark = VERDICT_MARKS.get(cell.verdict or "", "")
    text = escape(cell.text)
    if cell.href is not None:
        text = f'<a href="{escape(cell.href)}">{text}</a>'
    text += f" {mark}" if mark and not first else ""
    return f"<{tag}{attr}>{text}</{tag}>"


def _table(table: Table) -> str:
    parts = ['<div class="table">']
    if table.title:
        parts.append(f"<h3>{escape(table.title)}</h3>")
    parts.append("<table>")
    parts.append("<thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in table.header))
    parts.append("</tr></thead><tbody>")
    for row in table.rows:
        parts.append("<tr>" + "".join(_cell(c, "td", i == 0) for i, c in enumerate(row)) + "</tr>")
    parts.append("</tbody></table></div>")
    return "".join(parts)


def format_blocks(blocks: list[Block], images: dict[str, bytes]) -> str:
    body: list[str] = []
    title = "Bias report"
    sections = [b.text for b in blocks if isinstance(b, Heading) and b.level == 2]
    for block in blocks:
        if isinstance(block, Heading) and block.level == 1:
            title = block.text
            body.append(f"<h1>{escape(block.text)}</h1>")
        elif isinstance(block, Heading):
            body.append(f'<h2 id="{anchor(block.text)}">{escape(block.text)}</h2>')
        elif isinstance(block, Paragraph):
            target = f' id="{block.anchor}"' if block.anchor else ""
            body.append(f'<p class="meta"{target}>{escape(block.text)}</p>')
        elif isinstance(block, Table):  # consecutive tables share one wrapping row
            if body and body[-1].startswith('<div class="tables">'):
                body[-1] = body[-1].removesuffix("</div>") + _table(block) + "</div>"
            else:
                body.append(f'<div class="tables">{_table(block)}</div>')
        elif isinstance(block, FigureRef):
            data = base64.b64encode(images[block.name]).decode("ascii")
            body.append(
                f'<figure id="fig-{block.name}"><img alt="{escape(block.name)}" '
                f'src="data:image/png;base64,{data}"><figcaption>{escape(block.caption)}'
                "</figcaption></figure>"
            )
        else:
            raise TypeError(f"block: expected a document block, got {type(block).__name__}")
    nav = "".join(f'<a href="#{anchor(s)}">{escape(s)}</a>' for s in sections)
    if body and body[0].startswith("<h1>"):
        body.insert(1, f"<nav>{nav}</nav>")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head>\n"
        "<body><main>\n" + "\n".join(body) + "\n</main></body></html>\n"
    )


@implements("html")
def render_html(
    before: BiasReport,
    after: BiasReport | None = None,
    labels: tuple[str, str] = ("before", "after"),
) -> str:
    """The self-contained HTML page of one report or a comparison."""
    blocks = build_document(before, after, labels)
    images = {
        block.name: render_png(block.name, before, after, labels)
        for block in blocks
        if isinstance(block, FigureRef)
    }
    return format_blocks(blocks, images)
