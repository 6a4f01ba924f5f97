"""The report's plots, drawn with matplotlib's Agg canvas (no display, no pyplot state).

=========================  ===============================================================
figure                     data
=========================  ===============================================================
``recall_by_language``     ``t2i/recall@1/lang=<l>``: bars per query language (before/after)
``culture_heatmap``        ``t2i/culture_share@1/lang=<l>/culture=<c>``: query language ×
                           culture of the top-1 image; own culture outlined, chance in the
                           row label (``t2i/own_culture_chance/lang=<l>``)
``k_occurrence``           ``details["t2i|i2t/k_occurrence@<k>"]``: histogram of N_k over the
                           gallery, log count, before/after overlaid
``language_share``         ``i2t/language_share@1/lang=<l>`` bars against the gallery's share
                           ``i2t/gallery_language_share/lang=<l>``
``selection_tradeoff``     ``provenance["selection"]``: the recall guard's candidates, bias
                           against recall@1 (:mod:`xcm_debias.report.selection`)
=========================  ===============================================================

A figure whose data is absent from both reports is not drawn; :func:`missing_reason` says
which keys it needed. matplotlib is imported when a figure is drawn, not with the package.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from xcm_debias.atomic import write_bytes
from xcm_debias.report import families, selection
from xcm_debias.report.bias_report import BiasReport
from xcm_debias.report.blocks import Sides
from xcm_debias.report.registry import implements

if TYPE_CHECKING:
    from matplotlib.figure import Figure

COLORS = ("#9aa5b1", "#1f6fb4")  # before (grey), after (blue); a single report is blue
RECALL_BASE = "t2i/recall@1"
SHARE_BASE = "t2i/culture_share@1"
CHANCE_BASE = "t2i/own_culture_chance"
LANGUAGE_SHARE_BASE = "i2t/language_share@1"
GALLERY_SHARE_BASE = "i2t/gallery_language_share"
_K_OCCURRENCE = re.compile(r"(t2i|i2t)/k_occurrence@(\d+)")


def _by_group(report: BiasReport, base: str, qualifier: str) -> dict[str, float]:
    prefix = f"{base}/{qualifier}="
    return {
        key[len(prefix) :]: float(value)
        for key, value in report.metrics.items()
        if key.startswith(prefix) and "/" not in key[len(prefix) :]
    }


def _matrix(report: BiasReport, base: str) -> dict[tuple[str, str], float]:
    cells = {}
    for key, value in report.metrics.items():
        key_base, qualifiers = families.split_key(key)
        if key_base == base and [q for q, _ in qualifiers] == ["lang", "culture"]:
            cells[(qualifiers[0][1], qualifiers[1][1])] = float(value)
    return cells


def _order(values: set[str], reports: list[BiasReport], config_key: str) -> list[str]:
    preferred: list[str] = []
    for report in reports:
        for value in report.config.get(config_key, []) or []:
            if str(value) in values and str(value) not in preferred:
                preferred.append(str(value))
    return preferred + sorted(values - set(preferred), key=families.natural_key)


def own_culture(report: BiasReport, language: str) -> str:
    """The culture associated with ``language``: ``config["culture_of_language"]`` or the
    language code itself (the default of ``BiasReport.evaluate``)."""
    mapping = report.config.get("culture_of_language") or {}
    return str(mapping.get(language, language))


def k_occurrence_keys(report: BiasReport) -> dict[str, str]:
    """Task -> the details key of its N_k list (the report's k if present, else the largest)."""
    found: dict[str, list[tuple[int, str]]] = {}
    for key in report.details:
        match = _K_OCCURRENCE.fullmatch(key)
        if match:
            found.setdefault(match.group(1), []).append((int(match.group(2)), key))
    k = report.config.get("k")
    chosen = {}
    for task, options in found.items():
        exact = [key for kk, key in options if kk == k]
        chosen[task] = exact[0] if exact else max(options)[1]
    return chosen


def _bar_groups(
    ax, sides: Sides, values: list[dict[str, float]], groups: list[str], single: str
) -> None:
    """Grouped bars, one series per side; a lone unlabelled series is called ``single``."""
    width = 0.8 / len(sides)
    x = np.arange(len(groups))
    for i, ((label, _), data) in enumerate(zip(sides, values, strict=True)):
        heights = [data.get(g, math.nan) for g in groups]
        color = COLORS[1] if len(sides) == 1 else COLORS[i]
        bars = ax.bar(
            x + (i - (len(sides) - 1) / 2) * width,
            heights,
            width,
            label=label or single,
            color=color,
        )
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
    ax.set_xticks(x, groups)
    ax.set_ylim(0, 1.12)
    ax.spines[["top", "right"]].set_visible(False)


def _draw_recall(fig: Figure, sides: Sides) -> None:
    values = [_by_group(r, RECALL_BASE, "lang") for _, r in sides]
    groups = _order(set().union(*values), [r for _, r in sides], "languages")
    ax = fig.add_subplot()
    _bar_groups(ax, sides, values, groups, "recall@1")
    ax.set_ylim(0, 1.25)
    ax.set_xlabel("query language")
    ax.set_ylabel("recall@1 (text→image)")
    ax.set_title("Text→image recall@1 per query language")
    if len(sides) > 1:
        ax.legend(frameon=False, fontsize=8, loc="upper right", ncols=len(sides))


def _draw_heatmap(fig: Figure, sides: Sides) -> None:
    from matplotlib.patches import Rectangle

    cells = [_matrix(r, SHARE_BASE) for _, r in sides]
    reports = [r for _, r in sides]
    rows = _order({row for c in cells for row, _ in c}, reports, "languages")
    cols = _order({col for c in cells for _, col in c}, reports, "cultures")
    axes = fig.subplots(1, len(sides), squeeze=False)[0]
    image = None
    for ax, (label, report), data in zip(axes, sides, cells, strict=True):
        grid = np.array([[data.get((r, c), math.nan) for c in cols] for r in rows])
        image = ax.imshow(np.ma.masked_invalid(grid), vmin=0, vmax=1, cmap="Blues", aspect="auto")
        chance = _by_group(report, CHANCE_BASE, "lang")
        ax.set_yticks(
            range(len(rows)),
            [f"{r}  (chance {chance[r]:.2f})" if r in chance else r for r in rows],
            fontsize=8,
        )
        ax.set_xticks(range(len(cols)), cols, fontsize=8, rotation=45, ha="right")
        ax.set_xlabel("culture of the top-1 image")
        ax.set_title(label)
        for i, r in enumerate(rows):
            for j in range(len(cols)):
                if not math.isnan(grid[i, j]):
                    ax.text(
                        j,
                        i,
                        f"{grid[i, j]:.2f}",
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if grid[i, j] > 0.55 else "#222222",
                    )
            own = own_culture(report, r)
            if own in cols:
                j = cols.index(own)
                ax.add_patch(
                    Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="#d62728", lw=2)
                )
    axes[0].set_ylabel("query language")
    fig.colorbar(image, ax=list(axes), shrink=0.8, label="share of top-1 images")
    fig.suptitle(
        "Text→image: culture of the top-1 image (red box = the language's own culture)",
        fontsize=10,
    )


def _draw_k_occurrence(fig: Figure, sides: Sides) -> None:
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    tasks = [t for t in ("t2i", "i2t") if any(t in k_occurrence_keys(r) for _, r in sides)]
    axes = fig.subplots(1, len(tasks), squeeze=False)[0]
    for ax, task in zip(axes, tasks, strict=True):
        series = []
        for i, (label, report) in enumerate(sides):
            key = k_occurrence_keys(report).get(task)
            if key is None:
                continue
            counts = np.asarray(report.details[key], dtype=float)
            counts = counts[np.isfinite(counts)]
            skew = report.metrics.get(key.replace("k_occurrence", "hubness_skew"))
            text = " ".join(
                part
                for part in (label, None if skew is None else f"(skew {float(skew):.2f})")
                if part
            )
            series.append((text, counts, COLORS[1] if len(sides) == 1 else COLORS[i], key))
        top = max((float(c.max()) for _, c, _, _ in series if c.size), default=1.0)
        edges = np.arange(0, top + 2) - 0.5 if top <= 60 else np.linspace(-0.5, top + 0.5, 61)
        for text, counts, color, _ in series:
            hist, _ = np.histogram(counts, bins=edges)
            ax.stairs(np.where(hist > 0, hist, np.nan), edges, color=color, lw=2, label=text)
        for _, counts, color, _ in series:
            if counts.size:  # mean N_k = k·|Q|/N: the value every item has under no hubness
                ax.axvline(counts.mean(), color=color, ls=":", lw=1)
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("N_k: number of top-k lists holding a gallery item (dotted: mean)")
        ax.set_ylabel("gallery items (log)")
        ax.set_title(f"{'text→image' if task == 't2i' else 'image→text'} ({series[0][3]})")
        if any(text for text, *_ in series):
            ax.legend(frameon=False, fontsize=8)
        ax.spines[["top", "right"]].set_visible(False)


def _draw_language_share(fig: Figure, sides: Sides) -> None:
    values = [_by_group(r, LANGUAGE_SHARE_BASE, "lang") for _, r in sides]
    gallery: dict[str, float] = {}
    for _, report in sides:
        gallery.update(_by_group(report, GALLERY_SHARE_BASE, "lang"))
    groups = _order(set().union(*values, gallery), [r for _, r in sides], "languages")
    ax = fig.add_subplot()
    _bar_groups(ax, sides, values, groups, "top-1 share")
    top = max([*gallery.values(), *(v for d in values for v in d.values())], default=1.0)
    ax.set_ylim(0, min(1.0, top) * 1.15 + 0.02)
    for i, g in enumerate(groups):
        if g in gallery:
            ax.hlines(
                gallery[g],
                i - 0.45,
                i + 0.45,
                color="black",
                lw=2,
                label="gallery share" if i == 0 else None,
            )
    ax.set_xlabel("caption language")
    ax.set_ylabel("share of top-1 captions (image→text)")
    tv = [r.metrics.get("i2t/language_tv@1") for _, r in sides]
    tv_text = ", ".join(
        f"{label} {v:.2f}".strip() for (label, _), v in zip(sides, tv, strict=True) if v is not None
    )
    ax.set_title(
        "Image→text: language of the top-1 caption" + (f"  (TV: {tv_text})" if tv_text else "")
    )
    ax.legend(frameon=False, fontsize=8, loc="upper right")


@dataclass(frozen=True)
class FigureSpec:
    name: str
    section: str
    caption: str
    needs: str
    available: Callable[[BiasReport], bool]
    draw: Callable[[Figure, Sides], None]
    size: Callable[[Sides], tuple[float, float]]


def _has_prefix(prefix: str) -> Callable[[BiasReport], bool]:
    return lambda report: any(key.startswith(prefix) for key in report.metrics)


def _heatmap_size(sides: Sides) -> tuple[float, float]:
    n_rows = max(len({row for row, _ in _matrix(r, SHARE_BASE)}) for _, r in sides)
    return 1.0 + 5.2 * len(sides), 1.8 + 0.42 * max(n_rows, 3)


FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec(
        "recall_by_language",
        "retrieval",
        "Text→image recall@1 per query language. A fair retriever keeps every bar high; a drop "
        "after debiasing is a content cost.",
        f"{RECALL_BASE}/lang=<l>",
        _has_prefix(f"{RECALL_BASE}/lang="),
        _draw_recall,
        lambda sides: (7.5, 3.6),
    ),
    FigureSpec(
        "language_share",
        "prevalence",
        "Image→text: share of each caption language among the top-1 captions (bars) against "
        "its share of the gallery (black line). Bars at the lines = no language prevalence.",
        f"{LANGUAGE_SHARE_BASE}/lang=<l>",
        _has_prefix(f"{LANGUAGE_SHARE_BASE}/lang="),
        _draw_language_share,
        lambda sides: (7.5, 3.6),
    ),
    FigureSpec(
        "culture_heatmap",
        "tugging",
        "Text→image: row = query language, column = culture of the top-1 image, cell = share of "
        "that language's queries. The red box is the language's own culture; its chance level "
        "(the share of own-culture images among the relevant ones) is in the row label. A "
        "tugged language has its red cell far above chance.",
        f"{SHARE_BASE}/lang=<l>/culture=<c>",
        _has_prefix(f"{SHARE_BASE}/lang="),
        _draw_heatmap,
        _heatmap_size,
    ),
    FigureSpec(
        "k_occurrence",
        "hubness",
        "Hubness: histogram of N_k (how many top-k lists hold each gallery item), log count. "
        "A long right tail = hubs; a tall bar at 0 = anti-hubs.",
        "details t2i|i2t/k_occurrence@<k>",
        lambda report: bool(k_occurrence_keys(report)),
        _draw_k_occurrence,
        lambda sides: (11.0, 3.6),
    ),
    FigureSpec(
        "selection_tradeoff",
        selection.KEY,
        "The recall guard's candidates, scored out-of-fold on the calibration data: language "
        "TV@1 against image→text recall@1 (left) and own-culture excess@1 against text→image "
        "recall@1 (right). Filled dots passed the guard, crosses did not; the circled one was "
        "chosen. Down and to the right is better.",
        "provenance['selection'] candidates with recall@1 and a bias metric",
        selection.has_tradeoff,
        selection.draw_tradeoff,
        lambda sides: (11.0, 4.4),
    ),
)
FIGURE_NAMES = tuple(spec.name for spec in FIGURES)


def _sides(before: BiasReport, after: BiasReport | None, labels: tuple[str, str]) -> Sides:
    return [("", before)] if after is None else [(labels[0], before), (labels[1], after)]


def available(before: BiasReport, after: BiasReport | None = None) -> list[FigureSpec]:
    """Figures whose data is in at least one of the reports."""
    reports = [before] if after is None else [before, after]
    return [spec for spec in FIGURES if any(spec.available(r) for r in reports)]


def missing_reason(spec: FigureSpec) -> str:
    return f"not drawn: the report has no {spec.needs} values"


def render_png(
    name: str,
    before: BiasReport,
    after: BiasReport | None = None,
    labels: tuple[str, str] = ("before", "after"),
) -> bytes:
    """PNG bytes of one figure of :data:`FIGURES`."""
    specs = {spec.name: spec for spec in available(before, after)}
    if name not in specs:
        raise ValueError(f"name: expected a figure with data, one of {sorted(specs)}, got {name!r}")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    spec = specs[name]
    sides = [(label, r) for label, r in _sides(before, after, labels) if spec.available(r)]
    fig = Figure(figsize=spec.size(sides), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    spec.draw(fig, sides)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


@implements("plots")
def save_plots(
    folder: str | Path,
    before: BiasReport,
    after: BiasReport | None = None,
    labels: tuple[str, str] = ("before", "after"),
) -> list[Path]:
    """Write every available figure as ``<folder>/<name>.png``; returns the paths."""
    if not isinstance(folder, str | Path):
        raise TypeError(f"folder: expected a str or Path, got {type(folder).__name__}")
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"folder: expected a folder, got the file {str(folder)!r}")
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for spec in available(before, after):
        path = folder / f"{spec.name}.png"
        write_bytes(path, render_png(spec.name, before, after, labels))
        paths.append(path)
    return paths
