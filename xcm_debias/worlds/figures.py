"""Figures of the world for ``docs/world.md``: example scenes per culture, baseline effects.

``xcm-debias world figures --out docs/img`` writes both PNGs and ``world_baseline.json`` (the
per-seed metrics behind the baseline figure).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from xcm_debias.report import BiasReport
from xcm_debias.retrieval import ExactRetriever
from xcm_debias.worlds.captions import CULTURE_OF_LANGUAGE, LANGUAGES
from xcm_debias.worlds.load import load_scenes
from xcm_debias.worlds.scenes import CULTURES, draw_scene, sample_items


def scene_grid(path: str | Path, n_items: int = 6, seed: int = 0) -> Path:
    """A grid: one row per culture, ``n_items`` items per row (the same items in every row)."""
    items = sample_items(n_items, np.random.default_rng(seed))
    cultures = sorted(CULTURES)
    fig = Figure(figsize=(1.35 * n_items + 0.6, 1.35 * len(cultures) + 0.5))
    axes = fig.subplots(len(cultures), n_items)
    for i, culture in enumerate(cultures):
        for j, scene in enumerate(items):
            ax = axes[i, j]
            ax.imshow(draw_scene(scene, culture, rng=np.random.default_rng([seed, i, j])))
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(f"{culture}\n{CULTURES[culture].texture}", fontsize=8)
            if i == 0:
                ax.set_title("\n".join(f"{o.colour} {o.shape}" for o in scene.objects), fontsize=7)
    fig.suptitle("The same items drawn in each culture (32 px)", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def baseline_metrics(seeds: Sequence[int], n_items: int | None = None) -> dict[int, dict]:
    """``BiasReport`` metrics of ``ExactRetriever`` on the test split of each world seed."""
    out = {}
    for seed in seeds:
        test = load_scenes("test", seed=seed, n_items=n_items)
        report = BiasReport.evaluate(
            ExactRetriever(), test, culture_of_language=CULTURE_OF_LANGUAGE
        )
        out[int(seed)] = {k: v for k, v in report.metrics.items() if "/culture=" not in k}
    return out


def baseline_plot(metrics: dict[int, dict], path: str | Path) -> Path:
    """Four panels, mean over seeds with min–max bars: recall@1, own-culture@1 (implicit
    queries), named-culture@1 (queries that name a culture), i2t share."""
    seeds = sorted(metrics)

    def values(key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows = np.array(
            [[metrics[s].get(key.format(lang=lang), np.nan) for lang in LANGUAGES] for s in seeds]
        )
        return rows.mean(0), rows.min(0), rows.max(0)

    panels = (
        ("t2i/recall@1/lang={lang}", "text→image recall@1", None),
        (
            "t2i/own_culture@1/lang={lang}",
            "own-culture share of top-1 images (implicit)",
            1 / len(CULTURES),
        ),
        (
            "t2i/named_culture@1/lang={lang}",
            "named-culture share of top-1 images (explicit)",
            1 / len(CULTURES),
        ),
        (
            "i2t/language_share@1/lang={lang}",
            "share of image→text top-1 captions",
            1 / len(LANGUAGES),
        ),
    )
    fig = Figure(figsize=(17, 3.4))
    axes = fig.subplots(1, len(panels))
    x = np.arange(len(LANGUAGES))
    colours = [
        "#555555" if lang == "en" else "#c0392b" if lang in ("sw", "vi") else "#2e86c1"
        for lang in LANGUAGES
    ]
    for ax, (key, title, chance) in zip(axes, panels, strict=True):
        mean, low, high = values(key)
        ok = ~np.isnan(mean)
        ax.bar(x[ok], mean[ok], color=np.array(colours)[ok])
        ax.errorbar(
            x[ok],
            mean[ok],
            yerr=[mean[ok] - low[ok], high[ok] - mean[ok]],
            fmt="none",
            ecolor="black",
            capsize=2,
        )
        if chance is not None:
            ax.axhline(chance, color="black", ls="--", lw=1, label=f"chance {chance:.3f}")
            ax.legend(fontsize=8, loc="center left" if "own_culture" in key else "upper right")
        ax.set_xticks(x, LANGUAGES)
        ax.set_ylim(0, 1.05)
        ax.set_title(title, fontsize=10)
    fig.suptitle(
        f"Baseline (ExactRetriever) on the world's test split, mean and range over seeds {seeds}",
        fontsize=10,
    )
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def write_figures(out: str | Path, seeds: Sequence[int] = (0, 1, 2)) -> list[Path]:
    """Write ``world_scenes.png``, ``world_baseline.png`` and ``world_baseline.json``."""
    out = Path(out)
    metrics = baseline_metrics(seeds)
    table = out / "world_baseline.json"
    out.mkdir(parents=True, exist_ok=True)
    table.write_text(json.dumps({str(s): m for s, m in metrics.items()}, indent=1) + "\n")
    return [
        scene_grid(out / "world_scenes.png"),
        baseline_plot(metrics, out / "world_baseline.png"),
        table,
    ]
