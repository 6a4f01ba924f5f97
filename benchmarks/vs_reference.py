"""Benchmark 3: InvGC, DIS (DBNorm) and QB-Norm against the published reference algorithms.

Usage::

    python benchmarks/vs_reference.py [--sizes 3000 10000] [--scale 100000 1000000]
        [--queries 2000] [--bank 2000] [--rounds 2]

Gallery: ``N`` synthetic images; queries: ``--queries`` captions of gallery items; calibration
banks: ``--bank`` items (one image, one caption each). Each method answers the same question
on both sides — the top-10 gallery rows of every query after the method:

* reference (``benchmarks/reference/``): InvGC with LocalAdj as published (dense ``N × |B|``
  matrices, a Python loop over rows), then the dense query×gallery matrix and ``torch.topk``;
  DIS and QB-Norm on dense numpy matrices (QB-Norm's published full argsorts and per-row
  membership loop), ranked with ``torch.topk``;
* ours: ``InvGC.transform`` + ``ExactRetriever.search``; ``Debiased(ExactRetriever(),
  scoring=DualInvertedSoftmax() | QBNorm())`` fitted on the banks, gallery offsets computed
  inside the timed call.

At the ``--sizes`` both run: time ratio, peak-memory ratio (memory each process adds while the
method runs) and whether the top-10 lists are identical; at ``--scale`` ours alone. Writes
``benchmarks/results/vs_reference.json``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _data import calibration, embedding_set, rows
from _harness import interleaved, machine, print_table, run_case, write_json

from xcm_debias import Debiased, EmbeddingSet, ExactRetriever
from xcm_debias.processors import InvGC
from xcm_debias.scoring import DualInvertedSoftmax, QBNorm

K = 10
R_G, R_Q, POOL_RATE = 0.1, 0.1, 0.01
BETA = 20.0


def _inputs(p: dict[str, Any]):
    gallery = embedding_set(p["n"], p["dim"], "image", seed=11)
    items = torch.linspace(0, p["n"] - 1, p["queries"]).long()  # captions of gallery items
    queries = EmbeddingSet(
        rows(p["queries"], p["dim"], "text", seed=12, items=items), modality="text"
    )
    return gallery, queries, calibration(p["bank"], p["dim"], captions=1)


def _banks(calib):
    images = calib.where(modality="image").embeddings.float()
    texts = calib.where(modality="text").embeddings.float()
    return images, texts


def case_reference(p: dict[str, Any]):
    from reference import dbnorm, invgc

    gallery, queries, calib = _inputs(p)
    g, q = gallery.embeddings, queries.embeddings
    images, texts = _banks(calib)

    def run_invgc():
        sims = invgc.invgc_similarity(q, g, images, texts, R_G, R_Q, POOL_RATE)
        return torch.topk(sims, K, dim=1).indices.numpy()

    def run_score(kind: str):
        def run():
            gn, qn = g.numpy(), q.numpy()
            test = qn @ gn.T
            query_bank = texts.numpy() @ gn.T
            if kind == "qb":
                out = dbnorm.qb_norm(query_bank, test, BETA, k=1)
            else:
                out = dbnorm.db_norm(query_bank, images.numpy() @ gn.T, test, BETA, BETA)
            return torch.topk(torch.from_numpy(out), K, dim=1).indices.numpy()

        return run

    return {"invgc": run_invgc, "dis": run_score("dis"), "qb": run_score("qb")}[p["method"]]


def case_ours(p: dict[str, Any]):
    gallery, queries, calib = _inputs(p)
    exact = ExactRetriever()
    if p["method"] == "invgc":
        invgc = InvGC(r_g=R_G, r_q=R_Q, pool_rate=POOL_RATE).fit(calib)
        return lambda: exact.search(queries, invgc.transform(gallery), K).indices.numpy()
    scorer = (
        QBNorm(beta=BETA, k=1)
        if p["method"] == "qb"
        else DualInvertedSoftmax(beta_query=BETA, beta_gallery=BETA)
    )
    fair = Debiased(exact, scoring={"t2i": scorer}).fit(calib)

    def run():
        fresh = gallery.with_embeddings(gallery.embeddings)  # a new gallery: offsets recomputed
        return fair.search(queries, fresh, K).indices.numpy()

    return run


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[3000, 10000])
    parser.add_argument("--scale", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--bank", type=int, default=2000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--methods", nargs="+", default=["invgc", "dis", "qb"])
    args = parser.parse_args(argv)
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="xcm_bench_"))
    for method in args.methods:
        for n in args.sizes:
            base = {"n": n, "queries": args.queries, "bank": args.bank, "dim": args.dim}
            base["method"] = method
            cases = [
                (side, "vs_reference", f"case_{side}", {**base, "save": str(tmp / f"{side}.npy")})
                for side in ("reference", "ours")
            ]
            best = interleaved(cases, args.rounds)
            ref, ours = np.load(tmp / "reference.npy"), np.load(tmp / "ours.npy")
            same_lists = float((ref == ours).all(axis=1).mean())
            rows.append(
                {
                    "method": method,
                    "gallery": n,
                    "ref_time_s": best["reference"]["time_s"],
                    "ours_time_s": best["ours"]["time_s"],
                    "speedup": best["reference"]["time_s"] / best["ours"]["time_s"],
                    "ref_peak_mib": best["reference"]["peak_extra_mib"],
                    "ours_peak_mib": best["ours"]["peak_extra_mib"],
                    "memory_ratio": best["reference"]["peak_extra_mib"]
                    / max(best["ours"]["peak_extra_mib"], 1.0),
                    "identical_top10": same_lists,
                    "identical_top1": float((ref[:, 0] == ours[:, 0]).mean()),
                }
            )
        for n in args.scale:
            params = {"n": n, "queries": args.queries, "bank": args.bank, "dim": args.dim}
            report = run_case("vs_reference", "case_ours", {**params, "method": method})
            rows.append(
                {
                    "method": method,
                    "gallery": n,
                    "ours_time_s": report["time_s"],
                    "ours_peak_mib": report["peak_extra_mib"],
                }
            )
    print(
        f"\nqueries {args.queries}, banks {args.bank}+{args.bank}, dim {args.dim}, top-{K}; "
        f"best of {args.rounds} interleaved rounds where both run"
    )
    table = print_table(
        rows,
        [
            "method",
            "gallery",
            "ref_time_s",
            "ours_time_s",
            "speedup",
            "ref_peak_mib",
            "ours_peak_mib",
            "memory_ratio",
            "identical_top10",
            "identical_top1",
        ],
    )
    largest = max(args.sizes)
    invgc = [
        r for r in rows if r["method"] == "invgc" and r["gallery"] == largest and "speedup" in r
    ]
    payload = {
        "benchmark": "vs_reference",
        "machine": machine(),
        "params": vars(args),
        "rows": rows,
        "invgc_speedup_at_largest": invgc[0]["speedup"] if invgc else None,
        "target_invgc_speedup": 20.0,
        "table": table,
    }
    write_json("vs_reference", payload)
    return payload


if __name__ == "__main__":
    main()
