"""``xcm-debias fit CALIBRATION PIPELINE``: fit a debiasing pipeline and save it."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
import time
from pathlib import Path

from xcm_debias.cli import CLIError, ConfigNamesFormatter
from xcm_debias.cli._outputs import add_force_argument, check_outputs

EPILOG = """\
PIPELINE is one of:
  a registered name   {config_names}
  a chain spec        processors joined by '|', then score stages per direction:
                        "LanguageAlignment(method=ridge) | LanguageProjection(method=leace);
                         t2i: GroupBalance(temperature=0.02);
                         i2t: InvertedSoftmax(beta=20) | GroupBalance; cross_fit=5"
                      (values: numbers, true/false/null, words, "quoted text", [lists];
                      grammar: docs/api.md, xcm_debias.config_spec)
  a TOML file         the same config as a table: [[processors]] with class and params,
                      [[scoring.t2i]] / [[scoring.i2t]] (or [[scoring]] for both), cross_fit

The saved file (Debiased.save: processors and fitted score stages, safetensors, no pickle)
is read by `xcm-debias report --pipeline`, `xcm-debias transform` (its processors) and
xcm_debias.Debiased.load.

examples:
  xcm-debias fit calibration.npz recommended --out pipeline.safetensors
  xcm-debias fit corpus.npz recommended --test-size 0.5 --test-out test.npz
  xcm-debias fit corpus.npz "LanguageProjection(method=leace); t2i: GroupBalance" --dry-run
  xcm-debias fit corpus.parquet my_pipeline.toml --out pipeline.safetensors
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "fit",
        help="fit a debiasing pipeline (name, chain spec or TOML) on a calibration corpus",
        description=textwrap.fill(
            "Fit PIPELINE on the calibration corpus CALIBRATION (a saved EmbeddingSet with "
            "images and captions) and save the fitted pipeline. With --test-size, a fraction "
            "of the items is held out first (disjoint items) and written to --test-out, so "
            "that the report measures the pipeline on items it was not fitted on.",
            78,
            break_on_hyphens=False,
        ),
        epilog=EPILOG,
        formatter_class=ConfigNamesFormatter,
    )
    parser.add_argument(
        "calibration",
        metavar="CALIBRATION",
        help="saved EmbeddingSet to fit on: a .npz, a .parquet or a clip-retrieval folder",
    )
    parser.add_argument(
        "pipeline",
        metavar="PIPELINE",
        help="a registered config name, a chain spec string or a .toml file (see below)",
    )
    parser.add_argument(
        "--out",
        metavar="FILE",
        default="pipeline.safetensors",
        help="where the fitted pipeline goes (.safetensors; default ./pipeline.safetensors)",
    )
    parser.add_argument(
        "--test-size",
        type=float,
        default=None,
        metavar="FRACTION",
        help="hold out this fraction of the items (in (0, 1)) and fit on the rest",
    )
    parser.add_argument(
        "--test-out",
        metavar="PATH",
        default=None,
        help="where the held-out items go (.npz, .parquet; required with --test-size)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the --test-size item split (default 0)"
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the resolved config (JSON) and its chain spec, fit nothing",
    )
    add_force_argument(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from xcm_debias.config_spec import format_spec, resolve_config
    from xcm_debias.configs import build
    from xcm_debias.data import EmbeddingSet

    config = resolve_config(args.pipeline)
    fair = build(config)
    if args.dry_run:
        print(json.dumps(config, indent=2))
        print(f"spec: {format_spec(config)}")
        return 0
    out = Path(args.out)
    if out.suffix != ".safetensors":
        raise CLIError(f"--out: expected a .safetensors file, got {args.out!r}")
    if (args.test_size is None) != (args.test_out is None):
        raise CLIError("--test-size and --test-out: expected both or neither")
    if args.test_size is not None and not 0 < args.test_size < 1:
        raise CLIError(f"--test-size: expected a fraction in (0, 1), got {args.test_size}")
    if args.test_out is not None and Path(args.test_out).suffix not in (".npz", ".parquet"):
        raise CLIError(f"--test-out: expected a .npz or .parquet file, got {args.test_out!r}")
    check_outputs(
        {"CALIBRATION": args.calibration},
        {"--test-out": args.test_out, "--out": args.out},
        args.force,
    )

    corpus = EmbeddingSet.load(args.calibration)
    calibration = corpus
    if args.test_size is not None:
        calibration, test = corpus.split_items(test_size=args.test_size, seed=args.seed)
        test.save(args.test_out)
        print(
            f"held out {len(set(test.item.tolist()))} items ({len(test)} rows) in {args.test_out}",
            file=sys.stderr,
        )
    start = time.perf_counter()
    fair.fit(calibration)
    fair.save(out)
    n_items = len(set(calibration.item.tolist()))
    print(f"pipeline: {format_spec(config) or '(identity)'}")
    print(
        f"fitted on {len(calibration)} rows ({n_items} items) in "
        f"{time.perf_counter() - start:.1f} s; wrote {out}"
    )
    return 0
