"""Exact search over float16 ``.npy`` shards on disk, against the machine's bare matmul rate.

Usage::

    python benchmarks/shards.py [--rows 10000000] [--shard-rows 1000000] [--dim 512]
        [--queries 1000] [--subset 1000000] [--folder /tmp/xcm_shards] [--keep] [--repeat 2]

One process, in order:

1. writes ``--rows`` unit rows as float16 shards ``img_emb/img_emb_<n>.npy`` of ``--shard-rows``
   rows under ``--folder`` (clip-retrieval's layout; 10M × 512 is 10 GB), unless they exist;
2. **bare matmul rate**: ``q @ gᵀ`` for the queries against an in-memory float32 block of
   262144 rows, in 4096-row blocks through numpy (OpenBLAS) and through torch (MKL), and in
   2048-row blocks through oneDNN where ``xcm_debias.gemm`` takes it; the fastest is the
   machine's rate;
3. **exact search from disk**: ``ExactRetriever().search(queries, ShardedGallery.from_folder(
   folder), 10)`` — reads every shard (each product worker reads a share of each tile, the
   kernel asked to read ahead), converts, checks unit rows, multiplies, keeps the running top-10;
   its rate is ``2·Q·N·D`` over the whole call's time, the best of ``--repeat`` calls (2: the
   bare rates are best of two passes too), compared with the bare rate;
4. **equality on a subset**: the shards holding the first ``--subset`` rows searched from disk
   and, loaded whole in memory, by the in-memory search: indices and scores must be equal;
5. with ``--debiased NAME`` (a registered config such as ``world_tuned``, or ``recommended``;
   fitted once on ``--calibration-items`` synthetic items and cached): the same search through
   that ``Debiased`` (processors and score stages tile by tile on the shards; labels the stages
   need inferred), timed, and on the subset compared with the same pipeline on the rows in
   memory, tile by tile (``stream=True``: must be equal) and in the offset form (equal up to
   float32 rounding: top-10 lists compared, largest score difference).

Peak memory is the process's peak resident set (``VmHWM``), recorded after the search from
disk, after the debiased one and at the end (the subset checks hold the subset in memory, and
the offset form its copies): shards are read into a few tile buffers, never mapped, so the
gallery itself stays in the kernel's page cache. The shards are
deleted at the end unless ``--keep``. Writes ``benchmarks/results/shards.json``.
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
from _data import CACHE, calibration
from _harness import machine, peak_rss_bytes, print_table, rss_bytes, write_json

import xcm_debias
from xcm_debias import Debiased, EmbeddingSet, ExactRetriever, gemm
from xcm_debias.configs import build
from xcm_debias.shards import ShardedGallery

K = 10
RATE_ROWS = 262144


def unit_rows(n: int, dim: int, seed: int) -> torch.Tensor:
    x = torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))
    return torch.nn.functional.normalize(x, dim=1)


def write_shards(folder: Path, rows: int, shard_rows: int, dim: int) -> list[Path]:
    """float16 unit-row shards, generated 65536 rows at a time (each shard written once)."""
    target = folder / "img_emb"
    target.mkdir(parents=True, exist_ok=True)
    paths = []
    for n, start in enumerate(range(0, rows, shard_rows)):
        path = target / f"img_emb_{n}.npy"
        size = min(shard_rows, rows - start)
        paths.append(path)
        if path.exists() and np.load(path, mmap_mode="r").shape == (size, dim):
            continue
        out = np.lib.format.open_memmap(
            path.with_suffix(".partial"), mode="w+", dtype=np.float16, shape=(size, dim)
        )
        for a in range(0, size, 65536):
            b = min(size, a + 65536)
            out[a:b] = unit_rows(b - a, dim, seed=start + a).half().numpy()
        out.flush()
        del out
        os.replace(path.with_suffix(".partial"), path)
    return paths


def bare_rates(q: torch.Tensor, g: torch.Tensor) -> dict[str, float]:
    """GFLOP/s of ``q @ gᵀ``, best of two passes each: numpy and torch in 4096-row blocks, and
    oneDNN (``xcm_debias.gemm.inner_products``) in 2048-row blocks where ``"auto"`` takes it."""
    flops = 2.0 * len(q) * len(g) * q.shape[1]
    out = torch.empty(len(q), 4096)
    names = ("numpy", "torch") + (("onednn",) if gemm.onednn_preferred() else ())
    rates = {}
    for name in names:
        rows = 2048 if name == "onednn" else 4096
        best = float("inf")
        for _ in range(2):
            start = time.perf_counter()
            for a in range(0, len(g), rows):
                part = g[a : a + rows]
                view = out[:, : len(part)]
                if name == "numpy":
                    np.matmul(q.numpy(), part.numpy().T, out=view.numpy())
                elif name == "torch":
                    torch.matmul(q, part.T, out=view)
                else:
                    _onednn_product(q, part)
            best = min(best, time.perf_counter() - start)
        rates[name] = flops / best / 1e9
    return rates


def _onednn_product(q: torch.Tensor, part: torch.Tensor) -> torch.Tensor:
    previous, gemm.BACKEND = gemm.BACKEND, "onednn"
    try:
        return gemm.inner_products(q, part, torch.empty(0))
    finally:
        gemm.BACKEND = previous


def fitted_pipeline(name: str, items: int) -> Debiased:
    """``name`` (a registered config, or ``recommended``) fitted on ``items`` synthetic
    calibration items, cached beside the benchmark data (the guard's fit takes minutes)."""
    path = CACHE / f"{name}_{items}.safetensors"
    if path.exists():
        return Debiased.load(path)
    fair = xcm_debias.recommended() if name == "recommended" else build(name)
    fair.fit(calibration(items, 512))
    CACHE.mkdir(parents=True, exist_ok=True)
    fair.save(path)
    return fair


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--shard-rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--subset", type=int, default=1_000_000)
    parser.add_argument("--folder", default="/tmp/xcm_shards")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--repeat", type=int, default=2, help="plain searches; the best counts")
    parser.add_argument("--debiased", default="", help="config name, or recommended")
    parser.add_argument("--calibration-items", type=int, default=200)
    args = parser.parse_args(argv)
    folder = Path(args.folder)
    log: dict[str, Any] = {"load_1min_start": os.getloadavg()[0]}

    def mark(name: str, value: float) -> None:
        log[name] = value
        print(f"  {name}: {value:.4g}  (RSS {rss_bytes() / 2**30:.2f} GiB)", flush=True)

    start = time.perf_counter()
    paths = write_shards(folder, args.rows, args.shard_rows, args.dim)
    mark("write_s", time.perf_counter() - start)
    mark("disk_gib", sum(p.stat().st_size for p in paths) / 2**30)
    queries = unit_rows(args.queries, args.dim, seed=-1 % 2**31)

    rates = bare_rates(queries, unit_rows(RATE_ROWS, args.dim, seed=7))
    bare = max(rates.values())
    mark("bare_numpy_gflops", rates["numpy"])
    mark("bare_torch_gflops", rates["torch"])
    if "onednn" in rates:
        mark("bare_onednn_gflops", rates["onednn"])

    gallery = ShardedGallery.from_folder(folder)
    retriever = ExactRetriever()
    times = []
    for _ in range(args.repeat):  # best of the passes, as the bare rates are
        start = time.perf_counter()
        ranking = retriever.search(queries, gallery, K)
        times.append(time.perf_counter() - start)
    search_s = min(times)
    log["search_s_each"] = times
    rate = 2.0 * args.queries * gallery.n_rows * args.dim / search_s / 1e9
    mark("search_s", search_s)
    mark("search_gflops", rate)
    mark("load_1min_after_search", os.getloadavg()[0])
    mark("peak_rss_after_search_gib", peak_rss_bytes() / 2**30)
    del ranking

    n_subset_shards = max(1, -(-args.subset // args.shard_rows))
    subset = ShardedGallery(gallery.paths[:n_subset_shards])
    on_disk = retriever.search(queries, subset, K)
    in_memory_rows = torch.from_numpy(subset.read(0, subset.n_rows))
    in_memory = retriever.search(queries, in_memory_rows, K)
    equal = bool(
        torch.equal(on_disk.indices, in_memory.indices)
        and torch.equal(on_disk.scores, in_memory.scores)
    )
    del in_memory_rows
    mark("subset_rows", subset.n_rows)
    mark("subset_equal", float(equal))
    debiased = {}
    if args.debiased:
        fair = fitted_pipeline(args.debiased, args.calibration_items)
        start = time.perf_counter()
        fair.search(queries, gallery, K)
        debiased["search_s"] = time.perf_counter() - start
        mark("debiased_search_s", debiased["search_s"])
        # the peak so far includes the plain subset check's rows in memory (step 4)
        mark("peak_rss_after_debiased_search_gib", peak_rss_bytes() / 2**30)
        on_disk = fair.search(queries, subset, K)
        rows_in_memory = EmbeddingSet(
            torch.from_numpy(subset.read(0, subset.n_rows)), modality="image"
        )
        fair.stream = True
        tiles = fair.search(queries, rows_in_memory, K)
        fair.stream = False
        offsets = fair.search(queries, rows_in_memory, K)
        del rows_in_memory
        debiased["subset_equal_tile_by_tile"] = bool(
            torch.equal(on_disk.indices, tiles.indices)
            and torch.equal(on_disk.scores, tiles.scores)
        )
        debiased["subset_identical_top10_offset_form"] = float(
            (on_disk.indices == offsets.indices).all(dim=1).float().mean()
        )
        debiased["subset_max_score_diff_offset_form"] = float(
            (on_disk.scores - offsets.scores).abs().max()
        )
        for key, value in debiased.items():
            if key != "search_s":  # marked above as debiased_search_s (log["search_s"] is plain)
                mark(key, float(value))
    peak = peak_rss_bytes()
    mark("peak_rss_gib", peak / 2**30)
    if not args.keep:
        shutil.rmtree(folder / "img_emb")

    rows = [
        {
            "what": f"bare matmul {args.queries} x {RATE_ROWS} x {args.dim} (numpy)",
            "GFLOP/s": rates["numpy"],
        },
        {
            "what": f"bare matmul {args.queries} x {RATE_ROWS} x {args.dim} (torch)",
            "GFLOP/s": rates["torch"],
        },
        *(
            [
                {
                    "what": f"bare matmul {args.queries} x {RATE_ROWS} x {args.dim} (oneDNN)",
                    "GFLOP/s": rates["onednn"],
                }
            ]
            if "onednn" in rates
            else []
        ),
        {
            "what": f"ExactRetriever over {len(paths)} float16 shards, {gallery.n_rows} x {args.dim}",
            "time_s": search_s,
            "GFLOP/s": rate,
            "vs_bare": rate / bare,
        },
        {"what": f"equal to the in-memory search on {subset.n_rows} rows", "time_s": float(equal)},
        *(
            [
                {
                    "what": f"Debiased({args.debiased}) over the shards",
                    "time_s": debiased["search_s"],
                    "GFLOP/s": 2.0
                    * args.queries
                    * gallery.n_rows
                    * args.dim
                    / debiased["search_s"]
                    / 1e9,
                },
                {
                    "what": f"… equal to it in memory on {subset.n_rows} rows (tile by tile; offset form: share of identical top-10, max score diff)",
                    "time_s": float(debiased["subset_equal_tile_by_tile"]),
                    "GFLOP/s": debiased["subset_identical_top10_offset_form"],
                    "vs_bare": debiased["subset_max_score_diff_offset_form"],
                },
            ]
            if debiased
            else []
        ),
        {"what": "peak RSS of the process (GiB)", "time_s": peak / 2**30},
    ]
    print()
    table = print_table(rows, ["what", "time_s", "GFLOP/s", "vs_bare"])
    payload = {
        "benchmark": "shards",
        "machine": machine(),
        "params": vars(args),
        "log": log,
        "ratio_vs_bare": rate / bare,
        "subset_equal": equal,
        "peak_rss_gib": peak / 2**30,
        "debiased": debiased,
        "targets": {"ratio": 0.8, "peak_gib": 24.0},
        "rows": rows,
        "table": table,
    }
    write_json("shards", payload)
    return payload


if __name__ == "__main__":
    main()
