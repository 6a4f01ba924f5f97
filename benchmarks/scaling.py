"""Benchmark 4: how time and memory grow with the gallery size (log–log plot).

Usage::

    python benchmarks/scaling.py [--sizes 10000 30000 100000 300000 1000000]
        [--queries 1000] [--dense-max 300000]

For each gallery size ``N`` (``--queries`` captions, 512-d, top-10), each in its own process:
``dense`` (``torch.topk(q @ g.T)``, up to ``--dense-max``), ``ExactRetriever`` and the full
debiased search ``Debiased(ExactRetriever(), InvGC(), scoring={"t2i": DualInvertedSoftmax()})``
fitted on 2000 calibration items (the timed call transforms the gallery, computes its offsets
and searches). Records the best time and the memory the call adds; fits the log–log slope of
each; writes ``benchmarks/results/scaling.json`` and ``docs/img/scaling.png``.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import torch
from _data import calibration, queries_and_gallery
from _harness import ROOT, machine, print_table, run_case, write_json

from xcm_debias import Debiased, EmbeddingSet, ExactRetriever
from xcm_debias.processors import InvGC
from xcm_debias.scoring import DualInvertedSoftmax

K = 10
PLOT = ROOT / "docs" / "img" / "scaling.png"
METHODS = ("dense", "ExactRetriever", "Debiased(InvGC+DIS)")


def _inputs(p: dict[str, Any]) -> tuple[EmbeddingSet, EmbeddingSet]:
    return queries_and_gallery(p["n"], p["queries"], p["dim"], seed=41)


def case(p: dict[str, Any]):
    queries, gallery = _inputs(p)
    if p["method"] == "dense":
        q, g = queries.embeddings, gallery.embeddings
        return lambda: torch.topk(q @ g.T, K, dim=1).indices
    if p["method"] == "ExactRetriever":
        exact = ExactRetriever()
        return lambda: exact.search(queries, gallery, K).indices
    fair = Debiased(ExactRetriever(), InvGC(), scoring={"t2i": DualInvertedSoftmax()})
    fair.fit(calibration(2000, p["dim"], captions=1))
    return lambda: fair.search(queries, gallery, K).indices


def _slope(sizes: list[int], values: list[float]) -> float:
    return float(np.polyfit(np.log(sizes), np.log(values), 1)[0])


def plot(results: dict[str, list[dict[str, Any]]], queries: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for method, points in results.items():
        sizes = [r["gallery"] for r in points]
        axes[0].loglog(sizes, [r["time_s"] for r in points], "o-", label=method)
        axes[1].loglog(sizes, [max(r["peak_extra_mib"], 1.0) for r in points], "o-", label=method)
    axes[0].set(xlabel="gallery size N", ylabel="time (s)", title=f"{queries} queries, top-10")
    axes[1].set(xlabel="gallery size N", ylabel="memory added (MiB)", title="peak memory")
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(PLOT, dpi=110)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[10_000, 30_000, 100_000, 300_000, 1_000_000]
    )
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--dense-max", type=int, default=300_000)
    args = parser.parse_args(argv)
    results: dict[str, list[dict[str, Any]]] = {m: [] for m in METHODS}
    for n in args.sizes:
        for method in METHODS:
            if method == "dense" and n > args.dense_max:
                continue
            params = {"n": n, "queries": args.queries, "dim": args.dim, "method": method}
            report = run_case("scaling", "case", params)
            print(f"  {method} N={n}: {report['time_s']:.3g} s", flush=True)
            results[method].append(
                {
                    "method": method,
                    "gallery": n,
                    "time_s": report["time_s"],
                    "peak_extra_mib": report["peak_extra_mib"],
                }
            )
    table_rows = [row for points in results.values() for row in points]
    slopes = {
        m: {
            "time": _slope([r["gallery"] for r in pts], [r["time_s"] for r in pts]),
            "memory": _slope(
                [r["gallery"] for r in pts], [max(r["peak_extra_mib"], 1.0) for r in pts]
            ),
        }
        for m, pts in results.items()
        if len(pts) >= 2
    }
    print()
    table = print_table(table_rows, ["method", "gallery", "time_s", "peak_extra_mib"])
    print("log-log slopes:", slopes)
    plot(results, args.queries)
    payload = {
        "benchmark": "scaling",
        "machine": machine(),
        "params": vars(args),
        "rows": table_rows,
        "slopes": slopes,
        "plot": str(PLOT.relative_to(ROOT)),
        "table": table,
    }
    write_json("scaling", payload)
    return payload


if __name__ == "__main__":
    main()
