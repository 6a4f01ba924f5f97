"""The renderer-neutral pieces of a report page: headings, paragraphs, tables, figure references.

The document modules (``document``, ``headline``, ``selection``) build lists of these blocks; the
terminal, Markdown and HTML renderers format them, so the three show the same numbers in the
same places.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from xcm_debias.report import families
from xcm_debias.report.bias_report import BiasReport

VERDICT_MARKS = {
    families.BETTER: "✓",
    families.WORSE: "✗",
    families.UNCHANGED: "=",
    families.WITHIN_NOISE: "≈",
    families.NO_DIRECTION: "",
    families.UNDEFINED: "?",
    families.MISSING: "",
}


@dataclass(frozen=True)
class Cell:
    text: str
    verdict: str | None = None  # comparison verdict of the cell's metric
    own: bool = False  # the language's own culture (heat-map tables)
    href: str | None = None  # a link target ("#anchor" in the page, or a document)
    strong: bool = False  # emphasised (the chosen row of a table)
    code: bool = False  # code-like text that may wrap (a chain spec)


@dataclass(frozen=True)
class Heading:
    text: str
    level: int


@dataclass(frozen=True)
class Paragraph:
    text: str
    anchor: str | None = None  # an id to link to (HTML)


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
Sides = list[tuple[str, BiasReport]]  # (label, report); one side for a single report


@dataclass(frozen=True)
class ExtraSection:
    """A page section built from plain data a report carries (``report.provenance[key]``),
    shown after the headline when at least one side has that key. ``build`` returns the
    section's blocks (figures of the section come from ``plots.FIGURES`` entries whose
    ``section`` is ``key``)."""

    key: str
    title: str
    build: Callable[[Sides], list[Block]]


def anchor(text: str) -> str:
    """An HTML id made of the text's lower-case letters and digits (``-`` between runs)."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


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


def fmt_se(value: float | None, se: float | None) -> str:
    """``0.412 ± 0.011`` (± one standard error), or the value alone without an SE."""
    if se is None or value is None or not math.isfinite(value):
        return fmt(value)
    return f"{fmt(value)} ± {se:.3f}"
