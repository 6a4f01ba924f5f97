"""Shared by the scale benchmarks: isolated timing and peak memory, machine description, JSON.

Each measured *case* runs in a fresh Python process (``python benchmarks/_harness.py MODULE
CASE PARAMS``): the case function builds its inputs and returns the operation to time; the
worker records the resident set size once the inputs exist, resets the process's peak to it
(Linux ``clear_refs``: a transient of building the inputs does not count), runs the operation
``inner`` times and reports the best wall time and the peak resident memory *added* by the
operation (``VmHWM`` minus the RSS before it ran). Comparisons are ratios measured in one run, with
the two sides' processes interleaved round by round and the best of the rounds kept, so that a
busy shared machine slows both alike.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
MiB = 2**20


def rss_bytes() -> int:
    """Current resident set size of this process."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    """Peak resident set of this process: ``VmHWM`` (which :func:`reset_peak_rss` can reset),
    else ``ru_maxrss``."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) * 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak_rss() -> None:
    """Reset the peak resident set to the current one (Linux: ``5`` to ``clear_refs``), so a
    later peak is that of what ran since — not a transient of building the inputs."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def machine() -> dict[str, Any]:
    """CPU model, cores, RAM, library versions, the library of the tile products
    (``xcm_debias.gemm.backend()``), the BLAS libraries' kernels and thread counts
    (``OPENBLAS_CORETYPE`` and the like change them: every speed figure depends on them) and
    the load when the run started."""
    import faiss
    import numpy
    import torch
    from threadpoolctl import threadpool_info

    from xcm_debias import gemm

    model = ""
    try:
        model = next(
            line.split(":", 1)[1].strip()
            for line in subprocess.run(
                ["lscpu"], capture_output=True, text=True
            ).stdout.splitlines()
            if line.startswith("Model name")
        )
    except (OSError, StopIteration):
        model = platform.processor()
    with open("/proc/meminfo") as f:
        ram = int(next(line for line in f if line.startswith("MemTotal")).split()[1]) * 1024
    return {
        "cpu": model,
        "nproc": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "tile_products": gemm.backend(),
        "ram_gib": round(ram / 2**30, 1),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "faiss": faiss.__version__,
        "numpy": numpy.__version__,
        "blas": [
            {
                "library": Path(str(lib.get("filepath", ""))).name,
                "version": lib.get("version"),
                "kernel": lib.get("architecture"),
                "threads": lib.get("num_threads"),
            }
            for lib in threadpool_info()
            if lib.get("user_api") == "blas"
        ],
        "blas_environment": {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS_")},
        "load_average_at_start": os.getloadavg(),
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
    }


def run_case(module: str, case: str, params: dict[str, Any], timeout: float = 3600) -> dict:
    """One case in a fresh process; returns its JSON report (time_s, peak_extra_mib, ...)."""
    cmd = [sys.executable, str(Path(__file__)), module, case, json.dumps(params)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"{module}.{case}({params}) failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def interleaved(
    cases: Sequence[tuple[str, str, str, dict[str, Any]]], rounds: int
) -> dict[str, dict]:
    """Run ``(label, module, case, params)`` cases round-robin ``rounds`` times; best per label.

    The kept report is the fastest round's; ``peak_extra_mib`` is the largest seen. Progress
    goes to stderr.
    """
    best: dict[str, dict] = {}
    for _ in range(rounds):
        for label, module, case, params in cases:
            report = run_case(module, case, params)
            print(f"  {label}: {report['time_s']:.3g} s", file=sys.stderr, flush=True)
            old = best.get(label)
            if old is None or report["time_s"] < old["time_s"]:
                peak = max(report["peak_extra_mib"], old["peak_extra_mib"] if old else 0.0)
                best[label] = {**report, "peak_extra_mib": peak}
            else:
                old["peak_extra_mib"] = max(old["peak_extra_mib"], report["peak_extra_mib"])
    return best


def write_json(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path


def print_table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    """A Markdown table of ``rows`` (floats to 3 significant digits); printed and returned."""

    def fmt(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3g}"
        return str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(row.get(c, "")) for c in columns) + " |" for row in rows]
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def _worker(module: str, case: str, params: dict[str, Any]) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    build: Callable[[dict[str, Any]], Callable[[], Any]] = getattr(
        importlib.import_module(module), case
    )
    built = build(params)
    op, info = built if isinstance(built, tuple) else (built, {})
    before = rss_bytes()
    reset_peak_rss()
    times = []
    for _ in range(int(params.get("inner", 1))):
        start = time.perf_counter()
        result = op()
        times.append(time.perf_counter() - start)
    if params.get("save"):  # the op's [Q, k] indices, for equality checks across processes
        np.save(params["save"], np.asarray(result))
    print(
        json.dumps(
            {
                "time_s": min(times),
                "times_s": times,
                "peak_extra_mib": max(0, peak_rss_bytes() - before) / MiB,
                "rss_before_mib": before / MiB,
                **info,
            }
        )
    )


if __name__ == "__main__":
    _worker(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]))
