"""Peak memory of ``Debiased(recommended)`` against a plain exact search, 1M and 2M galleries.

Usage::

    python benchmarks/debiased_memory.py [--galleries 1000000 2000000] [--queries 1000]
        [--calibration-items 1000] [--offset-form-max 1000000]

``xcm_debias.recommended()`` is fitted once on a synthetic calibration set of
``--calibration-items`` items (one image, captions in 7 languages; the recall guard chooses
the stages) and saved beside the benchmark data cache (reused by later runs); the search runs in the direction it gave score stages (t2i: captions
against an image gallery, else i2t: images against a caption gallery). Then, each case in a
fresh process (the gallery and queries loaded, and one small search run, before the measured
call), for each gallery size:

* ``plain``: ``ExactRetriever().search(queries, gallery, 10)``;
* ``Debiased, offset form``: the loaded pipeline's ``search`` as before this change — processed
  gallery, normalised copy and index vectors materialised (up to ``--offset-form-max`` rows);
* ``Debiased, stream=True``: the same pipeline searching tile by tile
  (:mod:`xcm_debias.streamed_search`).

Reports each process's peak resident set (``ru_maxrss``) and what the call added to the RSS it
had once its inputs existed, against the gallery's float32 bytes (target: Debiased's peak ≤
plain's peak + 1.5 × gallery bytes). Writes ``benchmarks/results/debiased_memory.json``.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from _data import CACHE, calibration, embedding_set, queries_and_gallery
from _harness import MiB, machine, print_table, run_case, write_json

import xcm_debias
from xcm_debias import Debiased, ExactRetriever

K = 10


def _inputs(p: dict[str, Any]):
    """Captions against images (t2i), or images against captions (i2t)."""
    if p["direction"] == "t2i":
        return queries_and_gallery(p["gallery"], p["queries"], 512, seed=51)
    return embedding_set(p["queries"], 512, "image", seed=52), embedding_set(
        p["gallery"], 512, "text", seed=53
    )


def case(p: dict[str, Any]):
    queries, gallery = _inputs(p)
    if p["method"] == "plain":
        search = ExactRetriever().search
    else:
        fair = Debiased.load(p["pipeline"], ExactRetriever())
        fair.stream = p["method"] == "stream"
        search = fair.search
    warm = gallery[:5000]  # libraries and thread pools started before the measured call
    search(queries[:2], warm, K)
    return lambda: search(queries, gallery, K).indices


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--galleries", type=int, nargs="+", default=[1_000_000, 2_000_000])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--calibration-items", type=int, default=1000)
    parser.add_argument("--offset-form-max", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    # the fitted pipeline is kept beside the data cache: the guard's fit takes minutes
    path = CACHE / f"recommended_{args.calibration_items}.safetensors"
    start = time.perf_counter()
    if path.exists():
        fair = Debiased.load(path)
    else:
        fair = xcm_debias.recommended().fit(calibration(args.calibration_items, 512))
        CACHE.mkdir(parents=True, exist_ok=True)
        fair.save(path)
    fit_s = time.perf_counter() - start
    chosen = fair.selection_.chosen if fair.selection_ is not None else "?"
    # the direction the guard gave score stages (the gallery side they transform)
    direction = "t2i" if fair.scorers_.get("t2i") or not fair.scorers_.get("i2t") else "i2t"
    print(f"recommended fitted in {fit_s:.0f} s: {chosen}; searching {direction}", flush=True)
    rows = []
    for n in args.galleries:
        gallery_mib = n * 512 * 4 / MiB
        methods = ["plain", "stream"] + (["offsets"] if n <= args.offset_form_max else [])
        reports = {}
        for method in methods:
            params = {
                "gallery": n,
                "queries": args.queries,
                "method": method,
                "pipeline": str(path),
                "direction": direction,
            }
            load = os.getloadavg()[0]
            reports[method] = report = run_case("debiased_memory", "case", params)
            peak = report["rss_before_mib"] + report["peak_extra_mib"]
            rows.append(
                {
                    "gallery": n,
                    "search": {
                        "plain": "ExactRetriever",
                        "offsets": "Debiased(recommended), offset form",
                        "stream": "Debiased(recommended), stream=True",
                    }[method],
                    "time_s": report["time_s"],
                    "peak_rss_gib": peak / 1024,
                    "added_mib": report["peak_extra_mib"],
                    "added_vs_gallery": report["peak_extra_mib"] / gallery_mib,
                    "load_1min": load,
                }
            )
            print(rows[-1], flush=True)
        plain_peak = rows[-len(methods)]["peak_rss_gib"]
        for row in rows[-len(methods) :]:
            row["peak_over_plain_vs_gallery"] = (
                (row["peak_rss_gib"] - plain_peak) * 1024 / gallery_mib
            )
    print(f"\n{args.queries} queries, top-{K}, {direction}; recommended: {chosen}")
    table = print_table(
        rows,
        [
            "gallery",
            "search",
            "time_s",
            "peak_rss_gib",
            "added_mib",
            "added_vs_gallery",
            "peak_over_plain_vs_gallery",
            "load_1min",
        ],
    )
    payload = {
        "benchmark": "debiased_memory",
        "machine": machine(),
        "params": vars(args),
        "fit_s": fit_s,
        "chosen": chosen,
        "direction": direction,
        "rows": rows,
        "target_peak_over_plain_vs_gallery": 1.5,
        "table": table,
    }
    write_json("debiased_memory", payload)
    return payload


if __name__ == "__main__":
    main()
