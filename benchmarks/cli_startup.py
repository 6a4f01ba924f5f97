"""Benchmark: how fast the command line answers ``--help`` and argument errors.

Usage::

    python benchmarks/cli_startup.py [--rounds 7]

Each command runs in a fresh ``python -m xcm_debias`` process (so the imports are paid every
time, as a user pays them), ``rounds`` times, interleaved; the table gives the best and the
median wall time. ``import torch`` alone is the reference: the command line must answer
``--help`` and argument errors without importing it (target < 1 s); ``demo --help`` and
``fit --help`` list the registered configurations from ``xcm_debias.config_registry`` (plain
data, no torch). Writes
``benchmarks/results/cli_startup.json``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from _harness import ROOT, machine, print_table, write_json

COMMANDS = {
    "xcm-debias --help": ["-m", "xcm_debias", "--help"],
    "xcm-debias report --help": ["-m", "xcm_debias", "report", "--help"],
    "xcm-debias report (no CORPUS: argument error)": ["-m", "xcm_debias", "report"],
    "xcm-debias fit x.npz (missing PIPELINE: argument error)": [
        "-m",
        "xcm_debias",
        "fit",
        "x.npz",
    ],
    "xcm-debias demo --help (lists the configs)": ["-m", "xcm_debias", "demo", "--help"],
    "python -c 'import torch' (reference)": ["-c", "import torch"],
}


def wall_time(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, check=False)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="runs of each command")
    args = parser.parse_args(argv)
    info = machine()
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.rounds):
        for name, command in COMMANDS.items():
            times[name].append(wall_time(command))
    rows = [
        {
            "command": name,
            "best_s": min(t),
            "median_s": statistics.median(t),
            "under_1s": "yes" if statistics.median(t) < 1.0 else "no",
        }
        for name, t in times.items()
    ]
    table = print_table(rows, ["command", "best_s", "median_s", "under_1s"])
    write_json(
        "cli_startup",
        {"params": {"rounds": args.rounds}, "machine": info, "rows": rows, "table": table},
    )


if __name__ == "__main__":
    main()
