"""``xcm-debias`` command line: one module per subcommand, each with ``add_parser`` and ``run``.

Building the parser imports no torch-backed module (each ``run`` imports what it needs), so
``--help`` and argument errors answer at once (``benchmarks/cli_startup.py`` measures it).
"""

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


class ConfigNamesFormatter(argparse.RawDescriptionHelpFormatter):
    """Fills ``{config_names}`` in a description, epilog or argument help with the registered
    config names, only when help is printed: the registry imports torch."""

    def _format_text(self, text: str) -> str:
        return super()._format_text(_with_config_names(text))

    def _expand_help(self, action: argparse.Action) -> str:
        return _with_config_names(super()._expand_help(action))


def _with_config_names(text: str) -> str:
    if "{config_names}" not in text:
        return text
    from xcm_debias.config_registry import list_configs

    return text.replace("{config_names}", ", ".join(list_configs()))


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
