"""Benchmark 1: throughput of the linear processors against a bare torch matmul of one shape.

Usage::

    python benchmarks/linear_throughput.py [--rows 200000] [--dim 512] [--rounds 3]

Each processor is fitted on a synthetic calibration set (1000 items, each with one image and
captions in 7 languages; ``LanguageAlignment(ridge, 60 items)``: 60 items, the embedded world's
calibration size, where the ridge maps are the identity plus a rank-60 term) and transforms
``rows`` captions (``[rows, dim]``, labelled); the reference is ``x @ W`` with a ``dim × dim``
matrix on the same ``[rows, dim]`` input — what any linear map of the rows costs at least —
through torch (``x @ W``, the reference), and for context through numpy's OpenBLAS and, on CPUs
where ``xcm_debias.gemm`` takes it, oneDNN's inner product (the processors' per-group products
run on one of those). Every case runs in its own process, the cases interleaved round by round,
best round kept. Throughput ratio = reference time / processor time (≥ 0.9 is the target). Writes ``benchmarks/results/linear_throughput.json``.
"""

from __future__ import annotations

import argparse
from typing import Any

import torch
from _data import calibration, embedding_set
from _harness import interleaved, machine, print_table, write_json

from xcm_debias import gemm
from xcm_debias.processors import (
    CultureLanguageDecoupler,
    LanguageAlignment,
    LanguageProjection,
    OTRecenter,
)

PROCESSORS = {
    "LanguageProjection(center)": lambda: LanguageProjection(method="center"),
    "LanguageProjection(subspace)": lambda: LanguageProjection(method="subspace"),
    "LanguageProjection(leace)": lambda: LanguageProjection(method="leace"),
    "LanguageProjection(lir)": lambda: LanguageProjection(method="lir"),
    "LanguageAlignment(ridge)": lambda: LanguageAlignment(lam=1.0),
    "LanguageAlignment(ridge, 60 items)": lambda: LanguageAlignment(lam=1.0),
    "CultureLanguageDecoupler(oblique)": lambda: CultureLanguageDecoupler(method="oblique"),
    "CultureLanguageDecoupler(orthogonal)": lambda: CultureLanguageDecoupler(method="orthogonal"),
    "OTRecenter(mean)": lambda: OTRecenter(method="mean"),
    "OTRecenter(diag)": lambda: OTRecenter(method="diag"),
    "OTRecenter(lowrank)": lambda: OTRecenter(method="lowrank"),
    "OTRecenter(gaussian)": lambda: OTRecenter(method="gaussian"),
}


def case_matmul(p: dict[str, Any]):
    x = embedding_set(p["rows"], p["dim"], "text", seed=3).embeddings
    w = torch.randn(p["dim"], p["dim"], generator=torch.Generator().manual_seed(0))
    if p.get("numpy"):  # the same product through numpy's OpenBLAS (xcm_debias.gemm)
        xn, wn = x.numpy(), w.numpy()
        return lambda: xn @ wn
    if p.get("onednn"):  # through oneDNN's inner product, as xcm_debias.gemm calls it
        columns = w.T.contiguous()
        return lambda: torch.ops.mkldnn._linear_pointwise(x, columns, None, "none", [], "")
    return lambda: x @ w


#: calibration items per processor (default 1000)
CALIBRATION_ITEMS = {"LanguageAlignment(ridge, 60 items)": 60}


def case_processor(p: dict[str, Any]):
    items = CALIBRATION_ITEMS.get(p["name"], 1000)
    processor = PROCESSORS[p["name"]]().fit(calibration(items, p["dim"]))
    data = embedding_set(p["rows"], p["dim"], "text", seed=3)
    return lambda: processor.transform(data)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    base = {"rows": args.rows, "dim": args.dim, "inner": 2}
    cases = [
        ("matmul", "linear_throughput", "case_matmul", base),
        ("matmul (numpy)", "linear_throughput", "case_matmul", {**base, "numpy": True}),
    ]
    if gemm.onednn_preferred():
        cases.append(
            ("matmul (oneDNN)", "linear_throughput", "case_matmul", {**base, "onednn": True})
        )
    cases += [
        (name, "linear_throughput", "case_processor", {**base, "name": name}) for name in PROCESSORS
    ]
    best = interleaved(cases, args.rounds)
    reference = best["matmul"]["time_s"]  # torch's x @ W, the product a user calls
    rows = []
    for name, report in best.items():
        rows.append(
            {
                "method": name,
                "time_s": report["time_s"],
                "rows_per_s": args.rows / report["time_s"],
                "throughput_vs_matmul": reference / report["time_s"],
                "peak_extra_mib": report["peak_extra_mib"],
            }
        )
    print(f"\n[{args.rows} x {args.dim}] float32, best of {args.rounds} interleaved rounds")
    table = print_table(
        rows, ["method", "time_s", "rows_per_s", "throughput_vs_matmul", "peak_extra_mib"]
    )
    worst = min(r["throughput_vs_matmul"] for r in rows if not r["method"].startswith("matmul"))
    payload = {
        "benchmark": "linear_throughput",
        "machine": machine(),
        "params": vars(args),
        "rows": rows,
        "worst_ratio": worst,
        "target": 0.9,
        "met": worst >= 0.9,
        "table": table,
    }
    write_json("linear_throughput", payload)
    return payload


if __name__ == "__main__":
    main()
