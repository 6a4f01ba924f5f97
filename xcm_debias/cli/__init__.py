"""``xcm-debias`` command line: one module per subcommand, each with ``add_parser`` and ``run``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Each name is a module xcm_debias.cli.<name> defining
#   add_parser(subparsers) -> argparse.ArgumentParser   and   run(args) -> int
COMMANDS: tuple[str, ...] = ("demo", "encode", "fit", "report", "transform", "world")


class CLIError(Exception):
    """An error the CLI reports as one line (exit code 2), without a traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xcm-debias",
        description="Measure and remove language/culture bias in multilingual image-text retrieval.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        module = importlib.import_module(f"xcm_debias.cli.{name}")
        module.add_parser(sub).set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from xcm_debias.atomic import DiskFullError

    try:
        return int(args._run(args) or 0)
    except (CLIError, DiskFullError, FileNotFoundError, ValueError, TypeError, KeyError) as exc:
        print(f"xcm-debias {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
