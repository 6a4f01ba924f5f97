"""The self-calibrating ``recommended()`` on the embedded world: full and small calibration.

    python benchmarks/recall_guard_world.py                 # both modes, writes the JSON
    python benchmarks/recall_guard_world.py --mode small --seeds 0 1

* ``full`` (world seeds 0-2, 60 calibration / 240 test items): the targets of
  ``benchmarks/methods_on_world.py`` (means over seeds), guarded pipeline against the plain
  retriever, and the configuration the guard chose per seed.
* ``unlabelled`` (world seeds 0-2, run only when asked): the calibration split stripped of every
  ``language`` and ``culture`` label, so only recall can decide; per-seed recall@1 and TV.
* ``small`` (world seeds 0-4, ``n_items=60``: 12 calibration / 48 test items): recall@1 per
  direction and per language / culture against the plain retriever (means over seeds; the
  guard must not lose more than a point anywhere), own-culture excess and language TV.

Writes ``benchmarks/results/recall_guard_world.json``; docs/methods/recall_guard.md quotes it.
Run with ``OMP_NUM_THREADS=1`` on a shared machine (many small products oversubscribe threads).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import methods_on_world as mw  # noqa: E402

import xcm_debias  # noqa: E402
from xcm_debias import ExactRetriever  # noqa: E402
from xcm_debias.soft_labels import strip_labels  # noqa: E402
from xcm_debias.worlds import world_calibration_test  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "recall_guard_world.json"
PER_SEED_KEYS = ("t2i/recall@1", "i2t/recall@1", "i2t/language_tv@1")
SMALL_ITEMS = 60


def run(seeds: list[int], n_items: int | None, unlabelled: bool = False) -> dict[str, Any]:
    """Fit ``recommended()`` per seed (on a calibration split stripped of every ``language``
    and ``culture`` label when ``unlabelled``) and measure base and pipeline on the test split."""
    bases, fairs, chosen = [], [], []
    for seed in seeds:
        calib, test = world_calibration_test(seed=seed, n_items=n_items)
        if unlabelled:
            calib = strip_labels(calib)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fair = xcm_debias.recommended(ExactRetriever()).fit(calib)
        seconds = time.perf_counter() - start
        chosen.append({"seed": seed, "chosen": fair.selection_.chosen, "fit_seconds": seconds})
        print(f"seed {seed}: {fair.selection_.chosen} ({seconds:.1f} s)", flush=True)
        bases.append(mw.measure(ExactRetriever(), test))
        fairs.append(mw.measure(fair, test))
    base, _ = mw.mean_std(bases)
    fair_mean, fair_std = mw.mean_std(fairs)
    return {
        "seeds": seeds,
        "chosen": chosen,
        "base": base,
        "fair": fair_mean,
        "fair_std": fair_std,
        "per_seed": [
            {k: (b[k], f[k]) for k in PER_SEED_KEYS if k in b and k in f}
            for b, f in zip(bases, fairs, strict=True)
        ],
    }


def small_rows(result: dict[str, Any]) -> list[tuple[str, float, float, float]]:
    base, fair = result["base"], result["fair"]
    keys = sorted(
        k
        for k in base
        if k in ("t2i/recall@1", "i2t/recall@1")
        or k.startswith(("t2i/recall@1/lang=", "i2t/recall@1/culture="))
    )
    keys += ["t2i/own_culture_excess@1", "t2i/own_culture_max_abs_excess@1", "i2t/language_tv@1"]
    return [(k, base[k], fair[k], fair[k] - base[k]) for k in keys]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["full", "small", "unlabelled", "both"], default="both")
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    results: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {}
    if args.mode in ("full", "both"):
        full = run(args.seeds or [0, 1, 2], None)
        full["targets"] = [
            {"target": name, "pass": ok, "detail": detail}
            for name, ok, detail in mw.check_targets(full["base"], full["fair"])
        ]
        for row in full["targets"]:
            print("PASS" if row["pass"] else "FAIL", row["target"], "|", row["detail"])
        results["full"] = full
    if args.mode in ("small", "both"):
        small = run(args.seeds or [0, 1, 2, 3, 4], SMALL_ITEMS)
        small["rows"] = small_rows(small)
        worst = min(d for k, _, _, d in small["rows"] if "recall@1" in k)
        print(f"worst recall@1 change (mean over seeds): {worst:+.3f}")
        for key, b, f, d in small["rows"]:
            print(f"{key:36s} {b:.3f} -> {f:.3f} ({d:+.3f})")
        results["small"] = small
    if args.mode == "unlabelled":
        bare = run(args.seeds or [0, 1, 2], None, unlabelled=True)
        for row, seed_rows in zip(bare["chosen"], bare["per_seed"], strict=True):
            shown = ", ".join(f"{k} {b:.3f} -> {f:.3f}" for k, (b, f) in seed_rows.items())
            print(f"seed {row['seed']}: {shown}")
        results["unlabelled"] = bare
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
