"""ExactRetriever against faiss ``IndexFlatIP`` on the same data, at two sizes, one run.

Usage::

    python benchmarks/exact_vs_faiss.py [--sizes 200000:2000 1000000:10000] [--dim 512]
        [--rounds 3]

For each ``gallery:queries`` size (512-d unit rows, top-10), each case in its own process,
cases interleaved round by round, best round kept:

* ``faiss IndexFlatIP``: ``index.search(q, 10)`` on an index built before timing (its build is
  a copy of the rows);
* ``ExactRetriever``: ``ExactRetriever().search(queries, gallery, 10)`` on EmbeddingSets
  (everything it does per search is timed: the duplicate-row check, the per-tile unit check,
  the tile products and the running top-k);
* ``ExactRetriever (float16 gallery)``: the same with the gallery stored as float16 (half the
  memory; products accumulated in float32);
* ``ExactRetriever (numpy GEMM)`` and ``(torch GEMM)``: float32 gallery, products through
  numpy's OpenBLAS (``xcm_debias.gemm.BACKEND = "numpy"``) or torch's MKL (``"torch"``)
  instead of the library ``"auto"`` takes (oneDNN on an AVX-512 CPU);
* ``bare matmul``: ``q @ gᵀ`` through numpy (OpenBLAS) in 4096-row gallery blocks, no top-k —
  the arithmetic alone, for scale; ``bare matmul (oneDNN)``: the same through oneDNN
  (``xcm_debias.gemm.inner_products``) in 2048-row blocks, with torch's threads.

Also checks that ExactRetriever's top-10 equals faiss's on every query up to float32 ties
(lists compared after both are recomputed in float64: a differing pair must be closer than
1e-6). Writes ``benchmarks/results/exact_vs_faiss.json`` with the 1-minute load before and
after each size.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _data import queries_and_gallery
from _harness import interleaved, machine, print_table, write_json

from xcm_debias import EmbeddingSet, ExactRetriever, gemm

K = 10
TIE_TOLERANCE = 1e-6


def _inputs(p: dict[str, Any]) -> tuple[EmbeddingSet, EmbeddingSet]:
    return queries_and_gallery(p["gallery"], p["queries"], p["dim"], seed=21)


def case_faiss(p: dict[str, Any]):
    import faiss

    queries, gallery = _inputs(p)
    index = faiss.IndexFlatIP(p["dim"])
    index.add(gallery.embeddings.numpy())
    q = queries.embeddings.numpy()
    return lambda: index.search(q, K)[1]


def case_exact(p: dict[str, Any]):
    gemm.BACKEND = p.get("backend", gemm.BACKEND)
    queries, gallery = _inputs(p)
    if p.get("half"):
        gallery = gallery.with_embeddings(gallery.embeddings.half())
    exact = ExactRetriever()
    return lambda: exact.search(queries, gallery, K).indices


def case_matmul(p: dict[str, Any]):
    queries, gallery = _inputs(p)
    q, g = queries.embeddings.numpy(), gallery.embeddings.numpy()
    out = np.empty((len(q), 4096), dtype=np.float32)

    def run() -> None:
        for start in range(0, len(g), 4096):
            part = g[start : start + 4096]
            np.matmul(q, part.T, out=out[:, : len(part)])

    return run


def case_onednn_matmul(p: dict[str, Any]):
    queries, gallery = _inputs(p)
    q, g = queries.embeddings, gallery.embeddings
    out = torch.empty(len(q), 2048)

    def run() -> None:
        for start in range(0, len(g), 2048):
            part = g[start : start + 2048]
            gemm.inner_products(q, part, out[:, : len(part)])

    gemm.BACKEND = "onednn"
    return run


def equal_up_to_ties(p: dict[str, Any], ours: np.ndarray, theirs: np.ndarray) -> dict[str, float]:
    """Share of queries whose lists are identical, and the largest float64 gap of a pair the
    two order differently."""
    queries, gallery = _inputs(p)
    q, g = queries.embeddings.double(), gallery.embeddings.double()
    identical = (ours == theirs).all(axis=1)
    gap = 0.0
    for row in np.flatnonzero(~identical):
        items = np.union1d(ours[row], theirs[row])
        scores = dict(zip(items.tolist(), (g[items] @ q[row]).tolist(), strict=True))
        kth = min(scores[i] for i in ours[row])
        for a in set(ours[row]) ^ set(theirs[row]):  # in one list only: must tie with the edge
            gap = max(gap, abs(scores[a] - kth))
        for x, y in zip(ours[row], theirs[row], strict=True):
            gap = max(gap, abs(scores[x] - scores[y]))
    return {"identical_top10": float(identical.mean()), "max_swap_gap": gap}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["200000:2000", "1000000:10000"])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="xcm_bench_"))
    rows = []
    for size in args.sizes:
        n, nq = (int(v) for v in size.split(":"))
        p = {"gallery": n, "queries": nq, "dim": args.dim}
        load_before = os.getloadavg()[0]
        best = interleaved(
            [
                (
                    "faiss IndexFlatIP",
                    "exact_vs_faiss",
                    "case_faiss",
                    {**p, "save": str(tmp / "f.npy")},
                ),
                (
                    "ExactRetriever",
                    "exact_vs_faiss",
                    "case_exact",
                    {**p, "save": str(tmp / "e.npy")},
                ),
                (
                    "ExactRetriever (float16 gallery)",
                    "exact_vs_faiss",
                    "case_exact",
                    {**p, "half": True},
                ),
                (
                    "ExactRetriever (numpy GEMM)",
                    "exact_vs_faiss",
                    "case_exact",
                    {**p, "backend": "numpy"},
                ),
                (
                    "ExactRetriever (torch GEMM)",
                    "exact_vs_faiss",
                    "case_exact",
                    {**p, "backend": "torch"},
                ),
                ("bare matmul (no top-k)", "exact_vs_faiss", "case_matmul", p),
                ("bare matmul (oneDNN)", "exact_vs_faiss", "case_onednn_matmul", p),
            ],
            args.rounds,
        )
        check = equal_up_to_ties(p, np.load(tmp / "e.npy"), np.load(tmp / "f.npy"))
        faiss_s = best["faiss IndexFlatIP"]["time_s"]
        for label, report in best.items():
            row = {
                "size": f"{n} x {nq}",
                "method": label,
                "time_s": report["time_s"],
                "vs_faiss": report["time_s"] / faiss_s,
                "GFLOP/s": 2.0 * n * nq * args.dim / report["time_s"] / 1e9,
                "peak_extra_mib": report["peak_extra_mib"],
                "load_1min": f"{load_before:.1f} → {os.getloadavg()[0]:.1f}",
            }
            if label == "ExactRetriever":
                row.update(check)
            rows.append(row)
    print(f"\n{args.dim}-d, top-{K}, best of {args.rounds} interleaved rounds")
    table = print_table(
        rows,
        [
            "size",
            "method",
            "time_s",
            "vs_faiss",
            "GFLOP/s",
            "peak_extra_mib",
            "load_1min",
            "identical_top10",
            "max_swap_gap",
        ],
    )
    ratios = {r["size"]: r["vs_faiss"] for r in rows if r["method"] == "ExactRetriever"}
    payload = {
        "benchmark": "exact_vs_faiss",
        "machine": machine(),
        "params": vars(args),
        "rows": rows,
        "exact_vs_faiss": ratios,
        "target": 1.0,
        "met": all(v <= 1.0 for v in ratios.values()),
        "tie_tolerance": TIE_TOLERANCE,
        "table": table,
    }
    write_json("exact_vs_faiss", payload)
    return payload


if __name__ == "__main__":
    main()
