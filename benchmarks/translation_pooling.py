"""Image→text balancing with and without TranslationPooling on the embedded world.

    python benchmarks/translation_pooling.py            # world seeds 0 1 2, writes the JSON
    python benchmarks/translation_pooling.py --seeds 0

Every chain but the first shares the processor (LanguageAlignment, ridge to the item centroid)
and they differ in their image→text score stages only; each is fitted on a world seed's calibration split and
measured on its test split (1920 image queries against 2160 captions in 9 languages). Columns:
recall@1 change against the plain retriever (overall and the worst image culture, means over
seeds), language TV@1 of the top-1 captions against the gallery's language mix, and the churn
(image queries whose top-1 hit/miss differs from the plain retriever's). The mined translation
sets of the test gallery are scored too: the share of sets whose members share one item
(purity) and the share of captions in a set of two or more (coverage).

``--mining N …`` times instead the mining of translation sets in ``N`` random unit rows of
dimension 512 in 4 languages (``mutual_pairs`` + ``translation_sets``; best of 3), with the
1-minute load before and after, into the ``mining`` entry of the same JSON.

Writes ``benchmarks/results/translation_pooling.json``; docs/methods/translation_pooling.md
quotes it.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xcm_debias import ExactRetriever
from xcm_debias.configs import build, get_config
from xcm_debias.scoring.translation_sets import mutual_pairs, translation_sets
from xcm_debias.worlds import world_calibration_test

OUT = Path(__file__).resolve().parent / "results" / "translation_pooling.json"
IS = {"class": "InvertedSoftmax", "params": {"beta": 20.0}}
GB = {"class": "GroupBalance", "params": {"temperature": 0.005}}
TP = {"class": "TranslationPooling", "params": {}}


def es(**params: Any) -> dict[str, Any]:
    return {"class": "ExposureShuffle", "params": params}


CHAINS: dict[str, list[dict[str, Any]]] = {
    "no LA; TP+ES(width=1e-4)": [TP, es(width=1e-4)],
    "LA": [],
    "LA; IS": [IS],
    "LA; IS+GB": [IS, GB],
    "LA; IS+GB+ES(q=1)  (fixed recipe's i2t)": [IS, GB, es(tie_quantile=1.0)],
    "LA; IS+ES(q=1)": [IS, es(tie_quantile=1.0)],
    "LA; TP+ES(width=1e-4)": [TP, es(width=1e-4)],
    "LA; IS+TP+ES(width=1e-4)": [IS, TP, es(width=1e-4)],
    "LA; IS+TP+ES(q=0.25)": [IS, TP, es(tie_quantile=0.25)],
    "LA; IS+TP+ES(q=1)": [IS, TP, es(tie_quantile=1.0)],
}


def top1_outcome(retriever: Any, test: Any) -> tuple[np.ndarray, np.ndarray]:
    """Each image query's top-1 caption: (hit, caption language)."""
    top1 = retriever.search(test.images, test.texts, 1).indices[:, 0].numpy()
    hit = test.texts.item[top1] == test.images.item
    return hit, test.texts.language[top1]


def language_tv(languages: np.ndarray, gallery_languages: np.ndarray) -> float:
    names = np.unique(gallery_languages)
    share = np.array([(languages == n).mean() for n in names])
    target = np.array([(gallery_languages == n).mean() for n in names])
    return float(np.abs(share - target).sum() / 2)


def set_quality(fitted: Any, test: Any) -> dict[str, float]:
    """Purity and coverage of the test gallery's mined sets (the fitted threshold)."""
    stage = next(s for s in fitted.scorers_["i2t"] if type(s).__name__ == "TranslationPooling")
    threshold = stage.fitted_meta["min_margin"]
    if threshold is None:  # no calibration threshold reached the precision: nothing pooled
        return {"purity": float("nan"), "coverage": 0.0, "min_margin": float("nan")}
    rows = fitted.transform(test.texts).normalized()
    langs = test.texts.language
    sets = translation_sets(mutual_pairs(rows.embeddings, langs, stage.k), langs, threshold)
    ids, inverse, sizes = np.unique(sets, return_inverse=True, return_counts=True)
    pure = [len(set(test.texts.item[sets == s].tolist())) == 1 for s in ids[sizes > 1]]
    return {
        "purity": float(np.mean(pure)) if pure else float("nan"),
        "coverage": float((sizes[inverse] > 1).mean()),
        "min_margin": float(threshold),
    }


def run(seeds: list[int]) -> dict[str, Any]:
    base_config = get_config("world_tuned")
    per_chain: dict[str, list[dict[str, Any]]] = {name: [] for name in CHAINS}
    for seed in seeds:
        calib, test = world_calibration_test(seed=seed)
        base_hit, _ = top1_outcome(ExactRetriever(), test)
        cultures = test.images.culture
        for name, stages in CHAINS.items():
            config = copy.deepcopy(base_config)
            config["scoring"] = {"t2i": [], "i2t": stages}
            if name.startswith("no LA"):
                config["processors"] = []
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fitted = build(config, ExactRetriever()).fit(calib)
            hit, langs = top1_outcome(fitted, test)
            row: dict[str, Any] = {
                "seed": seed,
                "recall_change": float(hit.mean() - base_hit.mean()),
                "culture_change": {
                    c: float(hit[cultures == c].mean() - base_hit[cultures == c].mean())
                    for c in sorted(set(cultures.tolist()))
                },
                "language_tv": language_tv(langs, test.texts.language),
                "churn": int((hit != base_hit).sum()),
            }
            if any(s["class"] == "TranslationPooling" for s in stages):
                row["sets"] = set_quality(fitted, test)
            per_chain[name].append(row)
        print(f"seed {seed} done", flush=True)
    return {"seeds": seeds, "per_seed": per_chain, "summary": summarise(per_chain)}


def summarise(per_chain: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    out = {}
    for name, rows in per_chain.items():
        cultures = rows[0]["culture_change"]
        by_culture = {c: float(np.mean([r["culture_change"][c] for r in rows])) for c in cultures}
        worst = min(by_culture, key=by_culture.__getitem__)
        out[name] = {
            "recall_change": float(np.mean([r["recall_change"] for r in rows])),
            "worst_culture": worst,
            "worst_culture_change": by_culture[worst],
            "language_tv": float(np.mean([r["language_tv"] for r in rows])),
            "churn": float(np.mean([r["churn"] for r in rows])),
        }
        if "sets" in rows[0]:
            for key in ("purity", "coverage", "min_margin"):
                values = [r["sets"][key] for r in rows if not np.isnan(r["sets"][key])]
                out[name][key] = float(np.mean(values)) if values else float("nan")
    return out


def table(summary: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| image→text stages | Δ R@1 | worst culture Δ R@1 | language TV@1 | churn | set purity "
        "| set coverage | fitted min_margin |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, s in summary.items():
        sets = (
            f"{s['purity']:.3f} | {s['coverage']:.3f} | {s['min_margin']:.3f}"
            if "purity" in s
            else "— | — | —"
        )
        lines.append(
            f"| {name} | {s['recall_change']:+.3f} | {s['worst_culture']} "
            f"{s['worst_culture_change']:+.3f} | {s['language_tv']:.3f} | {s['churn']:.0f} "
            f"| {sets} |"
        )
    return "\n".join(lines)


def mining_seconds(sizes: list[int]) -> dict[str, Any]:
    """Best-of-3 seconds to mine translation sets in ``n`` random unit rows (512-d, 4 languages)."""
    out: dict[str, Any] = {"load_before": os.getloadavg()[0], "seconds": {}}
    for n in sizes:
        rows = torch.nn.functional.normalize(
            torch.randn(n, 512, generator=torch.Generator().manual_seed(0)), dim=1
        )
        langs = np.array(["a", "b", "c", "d"])[np.arange(n) % 4]
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            translation_sets(mutual_pairs(rows, langs), langs, 1.0)
            best = min(best, time.perf_counter() - start)
        out["seconds"][str(n)] = best
        print(f"mining {n} rows: {best:.2f} s", flush=True)
    out["load_after"] = os.getloadavg()[0]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--mining", type=int, nargs="+", default=None, metavar="N")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    previous = json.loads(args.out.read_text()) if args.out.exists() else {}
    if args.mining:
        result = {**previous, "mining": mining_seconds(args.mining)}
    else:
        result = {
            **run(args.seeds),
            **({"mining": previous["mining"]} if "mining" in previous else {}),
        }
        print(table(result["summary"]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
