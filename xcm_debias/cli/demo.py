"""``xcm-debias demo``: the embedded world before and after the recommended debiasing chain."""

from __future__ import annotations

import argparse
import textwrap

from xcm_debias.cli import ConfigNamesFormatter

EPILOG = """\
examples:
  xcm-debias demo                                   # the full world, recommended pipeline
  xcm-debias demo --n-items 60 --out demo_out       # a reduced world, in seconds
  xcm-debias demo --config hubness --seed 1 --k 5
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "demo",
        help="show the biases on the embedded world and their removal (the main job)",
        description=textwrap.fill(
            "Build (first run; then cached) the embedded 3XCM-style world from the shipped "
            "image-tower weights, evaluate exact retrieval on its test split, fit the debiasing "
            "configuration on its calibration split (disjoint items), evaluate again, print the "
            "before/after table and write report.html, report.json, report.md and plots/.",
            78,
        ),
        epilog=EPILOG,
        formatter_class=ConfigNamesFormatter,
    )
    parser.add_argument(
        "--out", default="xcm_debias_demo", help="output folder (default ./xcm_debias_demo)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="world seed (items, split, captions; default 0)"
    )
    parser.add_argument(
        "--n-items",
        type=int,
        default=None,
        help="items in the world, both splits (default: the full world; small values give a quick reduced world)",
    )
    parser.add_argument(
        "--config",
        default="recommended",
        help="named debiasing configuration (one of: {config_names}; default recommended)",
    )
    parser.add_argument("--k", type=int, default=10, help="depth of the top-k lists (default 10)")
    return parser


def run(args: argparse.Namespace) -> int:
    from xcm_debias.demo import run_demo

    result = run_demo(args.out, seed=args.seed, n_items=args.n_items, config=args.config, k=args.k)
    print(result.comparison)
    print(
        f"\nwrote {', '.join(str(p) for p in result.files[:3])} and {len(result.files) - 3} plot(s)"
    )
    print(f"done in {result.seconds:.1f} s")
    return 0
