"""Dask search across workers: time against the number of workers, and equality in-process.

Usage::

    python benchmarks/distributed_search.py [--rows 1000000] [--shards 8] [--queries 2000]
        [--workers 1 2 4] [--folder /tmp/xcm_dask_shards] [--keep]

Writes ``--rows`` unit float32 rows (512-d) as ``--shards`` ``.npy`` files (once; sizes in
multiples of 4096 rows, the search's tile), then, for
each worker count, starts a ``dask.distributed.LocalCluster`` of that many single-threaded
worker processes (``OMP_NUM_THREADS=OPENBLAS_NUM_THREADS=1`` in each) and times
``search_dask(queries, gallery, 10)`` on a gallery built from the shards (each task reads its
own shard from disk with ``np.load``; only top-10 lists come back). The in-process
``ExactRetriever().search`` of the concatenated rows (this process's threads) is the
reference: the indices must be equal and the scores equal up to float32 rounding (OpenBLAS
splits a product differently with another thread count, so a score may differ in its last
bit between a one-thread worker and this process). Writes
``benchmarks/results/distributed_search.json`` and ``docs/img/distributed_search.png``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _harness import ROOT, machine, print_table, write_json

from xcm_debias import ExactRetriever
from xcm_debias.distributed import search_dask

K = 10
PLOT = ROOT / "docs" / "img" / "distributed_search.png"


def write_shards(folder: Path, rows: int, shards: int, dim: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    # shard sizes in multiples of the 4096-row tile: each worker scores the very tiles the
    # in-process search scores
    bounds = np.minimum(np.linspace(0, rows, shards + 1) // 4096 * 4096, rows).astype(int)
    bounds[-1] = rows
    paths = []
    for n, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        path = folder / f"img_emb_{n}.npy"
        if not (path.exists() and np.load(path, mmap_mode="r").shape == (b - a, dim)):
            x = torch.randn(b - a, dim, generator=torch.Generator().manual_seed(int(a)))
            np.save(path, torch.nn.functional.normalize(x, dim=1).numpy())
        paths.append(path)
    return paths


def dask_gallery(paths: list[Path], dim: int):
    import dask
    import dask.array as da

    parts = []
    for path in paths:
        rows = np.load(path, mmap_mode="r").shape[0]
        lazy = dask.delayed(np.load)(str(path))
        parts.append(da.from_delayed(lazy, shape=(rows, dim), dtype=np.float32))
    return da.concatenate(parts)


def plot(rows: list[dict[str, Any]], reference: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workers = [r["workers"] for r in rows]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(workers, [r["time_s"] for r in rows], "o-", label="search_dask (LocalCluster)")
    ax.axhline(reference, color="grey", ls="--", label="in-process ExactRetriever")
    ax.set_xlabel("worker processes (1 thread each)")
    ax.set_ylabel("search time (s)")
    ax.set_xticks(workers)
    ax.legend()
    fig.tight_layout()
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(PLOT, dpi=120)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--folder", default="/tmp/xcm_dask_shards")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    from dask.distributed import Client, LocalCluster

    folder = Path(args.folder)
    paths = write_shards(folder, args.rows, args.shards, args.dim)
    queries = torch.nn.functional.normalize(
        torch.randn(args.queries, args.dim, generator=torch.Generator().manual_seed(-1 % 2**31)),
        dim=1,
    )
    whole = torch.from_numpy(np.concatenate([np.load(p) for p in paths]))
    start = time.perf_counter()
    expected = ExactRetriever().search(queries, whole, K)
    reference = time.perf_counter() - start
    del whole
    load_start = os.getloadavg()[0]
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = "1"  # inherited by the worker processes
    rows = []
    for workers in args.workers:
        with (
            LocalCluster(n_workers=workers, threads_per_worker=1, processes=True) as cluster,
            Client(cluster),
        ):
            gallery = dask_gallery(paths, args.dim)
            search_dask(queries[:1], gallery, K)  # workers warmed up (imports)
            start = time.perf_counter()
            got = search_dask(queries, gallery, K)
            elapsed = time.perf_counter() - start
        same_indices = bool(torch.equal(got.indices, expected.indices))
        score_diff = float((got.scores - expected.scores).abs().max())
        rows.append(
            {
                "workers": workers,
                "time_s": elapsed,
                "speedup_vs_1_worker": (rows[0]["time_s"] if rows else elapsed) / elapsed,
                "vs_in_process": elapsed / reference,
                "same_indices": same_indices,
                "max_score_diff": score_diff,
                "load_1min_after": os.getloadavg()[0],
            }
        )
        print(rows[-1], flush=True)
    if not args.keep:
        shutil.rmtree(folder)
    print(
        f"\n{args.queries} queries x {args.rows} rows x {args.dim} in {args.shards} shards; "
        f"in-process ExactRetriever {reference:.2f} s; 1-minute load at start {load_start:.1f}"
    )
    table = print_table(
        rows,
        [
            "workers",
            "time_s",
            "speedup_vs_1_worker",
            "vs_in_process",
            "same_indices",
            "max_score_diff",
            "load_1min_after",
        ],
    )
    plot(rows, reference)
    payload = {
        "benchmark": "distributed_search",
        "machine": machine(),
        "params": vars(args),
        "in_process_s": reference,
        "load_1min_start": load_start,
        "rows": rows,
        "all_same_indices": all(r["same_indices"] for r in rows),
        "table": table,
    }
    write_json("distributed_search", payload)
    return payload


if __name__ == "__main__":
    main()
