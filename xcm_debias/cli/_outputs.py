"""Output-path checks shared by the commands that write files: no input is ever overwritten,
and an existing output is replaced only with ``--force``."""

from __future__ import annotations

import argparse
from pathlib import Path

from xcm_debias.cli import CLIError


def add_force_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace existing output files (never an input file)",
    )


def check_outputs(inputs: dict[str, str], outputs: dict[str, str | None], force: bool) -> None:
    """Refuse an output that is an input or another output, and existing outputs without force.

    ``inputs`` and ``outputs`` map an argument name (as the user typed it, e.g. ``"--out"``)
    to its path; ``None`` outputs are skipped.
    """
    seen = {Path(p).resolve(): name for name, p in inputs.items()}
    for name, value in outputs.items():
        if value is None:
            continue
        path = Path(value).resolve()
        if path in seen:
            raise CLIError(
                f"{name}: expected a path other than {seen[path]} ({value!r}); refusing to "
                "overwrite it"
            )
        seen[path] = name
        if path.is_file() and not force:
            raise CLIError(
                f"{name}: {value!r} already exists; pass --force to replace it (the new file "
                "is written atomically, so the old one stays if writing fails)"
            )
