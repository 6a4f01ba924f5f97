"""The "How the configuration was chosen" section: the recall guard's candidate table.

Shown when a report's ``provenance["selection"]`` holds the ``to_dict()`` of the evaluated
retriever's ``selection_``::

    {"chosen": name, "max_recall_loss": float,
     "candidates": [{"name": str, "spec": str, "metrics": {key: float, ...},
                     "admissible": bool, "reasons": [str, ...]}, ...]}

(metrics are out-of-fold estimates on the calibration data), optionally with ``n_folds``,
``notes`` (lines shown under the table) and, per candidate, the ``direction`` its score stages
act on (``"t2i"``, ``"i2t"`` or ``"both"``). ``chosen`` names one candidate, or one per direction
joined by ``" + "``. The section holds one table (the chosen rows marked) and the figure
``selection_tradeoff``: language TV against image→text R@1 and own-culture excess against
text→image R@1 (each panel shows the candidates of its direction), admissible candidates filled,
rejected ones crossed, the chosen one circled.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from xcm_debias.report.bias_report import BiasReport
from xcm_debias.report.blocks import Block, Cell, ExtraSection, Paragraph, Sides, Table, fmt

if TYPE_CHECKING:
    from matplotlib.figure import Figure

KEY = "selection"
TITLE = "How the configuration was chosen"
COLUMNS = ("t2i/recall@1", "i2t/recall@1", "i2t/language_tv@1", "t2i/own_culture_excess@1")
# (x: recall, y: bias) per panel of the trade-off figure
PANELS = (
    ("i2t/recall@1", "i2t/language_tv@1"),
    ("t2i/recall@1", "t2i/own_culture_excess@1"),
)
COLORS = {"admissible": "#1f6fb4", "rejected": "#9aa5b1", "chosen": "#d62728"}


def selection_of(report: BiasReport) -> Mapping[str, Any] | None:
    """The report's selection record, if it has a well-formed one."""
    data = report.provenance.get(KEY)
    if not isinstance(data, Mapping) or not isinstance(data.get("candidates"), list):
        return None
    return data


def _candidates(selection: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [c for c in selection["candidates"] if isinstance(c, Mapping)]


def _chosen(selection: Mapping[str, Any]) -> set[str]:
    """Names of the chosen candidates: ``chosen`` itself and each of its ``" + "`` parts."""
    chosen = str(selection.get("chosen", ""))
    return {chosen, *chosen.split(" + ")}


def _in_direction(candidate: Mapping[str, Any], direction: str) -> bool:
    return candidate.get("direction", "both") in (direction, "both")


def _metric(candidate: Mapping[str, Any], key: str) -> float | None:
    metrics = candidate.get("metrics")
    value = metrics.get(key) if isinstance(metrics, Mapping) else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _columns(candidates: list[Mapping[str, Any]]) -> list[str]:
    """The four guard metrics first, then any other metric a candidate carries."""
    keys = [k for k in COLUMNS if any(_metric(c, k) is not None for c in candidates)]
    for candidate in candidates:
        metrics = candidate.get("metrics")
        if isinstance(metrics, Mapping):
            keys += [str(k) for k in metrics if str(k) not in keys]
    return keys


def selection_blocks(sides: Sides) -> list[Block]:
    """A paragraph and a table per side that carries a selection record."""
    blocks: list[Block] = []
    for label, report in sides:
        selection = selection_of(report)
        if selection is None:
            continue
        candidates = _candidates(selection)
        chosen = _chosen(selection)
        loss = selection.get("max_recall_loss")
        folds = selection.get("n_folds")
        side = f"{label}: " if label else ""
        blocks.append(
            Paragraph(
                f"{side}{len(candidates)} candidate pipelines were scored out-of-fold on the "
                f"calibration data (each fold's rows scored by stages fitted on the other "
                f"folds{f'; {folds} folds' if isinstance(folds, int) else ''}). A candidate is "
                f"admissible when it loses at most "
                f"{fmt(loss) if isinstance(loss, int | float) else loss} recall@1; the chosen "
                f"configuration is {str(selection.get('chosen', ''))!r} (★). Figure "
                "selection_tradeoff plots the same numbers."
            )
        )
        columns = _columns(candidates)
        directions = any("direction" in c for c in candidates)
        rows = []
        for candidate in candidates:
            name = str(candidate.get("name", ""))
            is_chosen = name in chosen
            reasons = candidate.get("reasons") or []
            rows.append(
                (
                    Cell(("★ " if is_chosen else "") + name, strong=is_chosen),
                    *((Cell(str(candidate.get("direction", ""))),) if directions else ()),
                    Cell(str(candidate.get("spec", "")) or "(identity)", code=True),
                    *(Cell(fmt(_metric(candidate, key))) for key in columns),
                    Cell("yes" if candidate.get("admissible") else "no"),
                    Cell("; ".join(str(r) for r in reasons), code=True),
                )
            )
        header = (
            "candidate",
            *(("direction",) if directions else ()),
            "spec",
            *columns,
            "admissible",
            "reasons",
        )
        blocks.append(Table(f"{side}candidates (out-of-fold on calibration)", header, tuple(rows)))
        blocks.extend(Paragraph(f"{side}{note}") for note in selection.get("notes") or [])
    return blocks


SECTION = ExtraSection(KEY, TITLE, selection_blocks)


# --------------------------------------------------------------------- figure
def has_tradeoff(report: BiasReport) -> bool:
    """Does the report's selection hold a candidate with both metrics of a panel?"""
    selection = selection_of(report)
    return selection is not None and any(_points(_candidates(selection), x, y) for x, y in PANELS)


def _points(
    candidates: list[Mapping[str, Any]], x_key: str, y_key: str
) -> list[tuple[Mapping[str, Any], float, float]]:
    """(candidate, x, y) for the candidates of the panel's direction that have both values."""
    direction = y_key.split("/", 1)[0]
    points = []
    for candidate in candidates:
        x, y = _metric(candidate, x_key), _metric(candidate, y_key)
        if x is not None and y is not None and _in_direction(candidate, direction):
            points.append((candidate, x, y))
    return points


def draw_tradeoff(fig: Figure, sides: Sides) -> None:
    """One panel per (recall, bias) pair of :data:`PANELS` with data, for the last side."""
    label, report = sides[-1]
    selection = selection_of(report)
    if selection is None:
        raise ValueError(f"sides: expected a report with a selection record last, got {label!r}")
    candidates = _candidates(selection)
    chosen = _chosen(selection)
    panels = [(x, y) for x, y in PANELS if _points(candidates, x, y)]
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (x_key, y_key) in zip(axes, panels, strict=True):
        points = _points(candidates, x_key, y_key)
        for admissible, marker, word in ((True, "o", "admissible"), (False, "x", "rejected")):
            group = [(x, y) for c, x, y in points if bool(c.get("admissible")) == admissible]
            if group:
                xs, ys = zip(*group, strict=True)
                ax.scatter(xs, ys, marker=marker, s=36, color=COLORS[word], label=word, zorder=2)
        for candidate, x, y in points:
            name = str(candidate.get("name", ""))
            if name in chosen:
                ax.scatter(
                    [x],
                    [y],
                    s=220,
                    facecolors="none",
                    edgecolors=COLORS["chosen"],
                    lw=2,
                    label="chosen",
                    zorder=3,
                )
            ax.annotate(name, (x, y), fontsize=7, xytext=(4, 4), textcoords="offset points")
        if y_key.endswith("excess@1"):
            ax.axhline(0.0, color="black", lw=0.8, ls=":")
        ax.set_xlabel(f"{x_key} (out-of-fold)")
        ax.set_ylabel(f"{y_key} (out-of-fold)")
        ax.set_title(f"{y_key.split('/')[1].split('@')[0]} vs recall", fontsize=10)
        ax.spines[["top", "right"]].set_visible(False)
        finite = [x for _, x, _ in points if math.isfinite(x)]
        if finite and max(finite) - min(finite) < 1e-9:
            ax.set_xlim(min(finite) - 0.01, max(finite) + 0.01)
        ax.legend(frameon=False, fontsize=8)
    suffix = f" — {label}" if label else ""
    fig.suptitle(
        f"Candidates of the recall guard (lower bias, higher recall is better){suffix}", fontsize=10
    )
