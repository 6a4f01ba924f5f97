"""JSON form of BiasReport and Comparison (strict JSON: no bare NaN/Infinity tokens).

Report::

    {"format": "xcm_debias.BiasReport", "version": 1,
     "metrics": {key: float | null | "Infinity" | "-Infinity"}, "details": {...}, "config": {...},
     "uncertainty": {key: standard error}, "provenance": {kind: plain JSON data}}

``uncertainty`` and ``provenance`` are optional on reading (reports written before them load
with both empty).

Comparison::

    {"format": "xcm_debias.Comparison", "version": 1, "labels": [before, after],
     "before": <report>, "after": <report>, "delta": {key: after − before},
     "verdict": {key: "better" | "worse" | ...}, "missing": {key: "before" | "after"}}

NaN is written as ``null`` and ±inf as the strings ``"Infinity"``/``"-Infinity"``, so the text
parses in every JSON reader and ``from_json`` restores the exact floats.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from xcm_debias.report.bias_report import BiasReport
from xcm_debias.report.comparison import Comparison
from xcm_debias.report.registry import implements

REPORT_FORMAT = "xcm_debias.BiasReport"
COMPARISON_FORMAT = "xcm_debias.Comparison"
VERSION = 1
_INF = {"Infinity": math.inf, "-Infinity": -math.inf}


def _encode_float(value: float) -> float | str | None:
    if math.isnan(value):
        return None
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _decode_float(value: object, name: str) -> float:
    if value is None:
        return math.nan
    if isinstance(value, str) and value in _INF:
        return _INF[value]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name}: expected a number, null or '±Infinity', got {value!r}")
    return float(value)


def jsonable(value: object) -> object:
    """Plain JSON types: floats encoded as above, numpy scalars/arrays and tuples as lists."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return _encode_float(float(value))
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [jsonable(v) for v in value]
    return repr(value)


def _restore(value: object) -> object:
    """Inverse of :func:`jsonable` for detail lists: ``null`` -> NaN, ``"±Infinity"`` -> ±inf."""
    if value is None:
        return math.nan
    if isinstance(value, str) and value in _INF:
        return _INF[value]
    if isinstance(value, list):
        return [_restore(v) for v in value]
    return value


@implements("report_to_dict")
def report_to_dict(report: BiasReport) -> dict[str, object]:
    return {
        "format": REPORT_FORMAT,
        "version": VERSION,
        "metrics": {k: _encode_float(float(v)) for k, v in report.metrics.items()},
        "details": jsonable(report.details),
        "config": jsonable(report.config),
        "uncertainty": {k: _encode_float(float(v)) for k, v in report.uncertainty.items()},
        "provenance": jsonable(report.provenance),
    }


def report_from_dict(data: object, name: str = "report") -> BiasReport:
    if not isinstance(data, dict):
        raise ValueError(f"{name}: expected a JSON object, got {type(data).__name__}")
    if data.get("format") != REPORT_FORMAT:
        raise ValueError(f"{name}: expected format {REPORT_FORMAT!r}, got {data.get('format')!r}")
    metrics = data.get("metrics")
    if not isinstance(metrics, dict):
        raise ValueError(f"{name}.metrics: expected an object, got {type(metrics).__name__}")
    details = data.get("details", {})
    config = data.get("config", {})
    uncertainty = data.get("uncertainty", {})
    provenance = data.get("provenance", {})
    if not all(isinstance(part, dict) for part in (details, config, uncertainty, provenance)):
        raise ValueError(
            f"{name}: expected 'details', 'config', 'uncertainty' and 'provenance' to be JSON "
            "objects"
        )
    return BiasReport(
        metrics={k: _decode_float(v, f"{name}.metrics[{k!r}]") for k, v in metrics.items()},
        details={k: _restore(v) for k, v in details.items()},
        config=config,
        uncertainty={
            k: _decode_float(v, f"{name}.uncertainty[{k!r}]") for k, v in uncertainty.items()
        },
        provenance=provenance,
    )


@implements("report_from_json")
def report_from_json(source: str | Path) -> BiasReport:
    """``BiasReport.from_json``: a path, or the JSON text itself."""
    return report_from_dict(read_json(source, "source"), "source")


@implements("comparison_to_dict")
def comparison_to_dict(comparison: Comparison) -> dict[str, object]:
    return {
        "format": COMPARISON_FORMAT,
        "version": VERSION,
        "labels": list(comparison.labels),
        "before": report_to_dict(comparison.before),
        "after": report_to_dict(comparison.after),
        "delta": {k: _encode_float(v) for k, v in comparison.delta.items()},
        "verdict": {e.key: e.verdict for e in comparison},
        "missing": comparison.missing,
    }


def comparison_from_dict(data: object) -> Comparison:
    if not isinstance(data, dict) or data.get("format") != COMPARISON_FORMAT:
        got = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"source: expected format {COMPARISON_FORMAT!r}, got {got!r}")
    labels = data.get("labels", ["before", "after"])
    return Comparison(
        report_from_dict(data.get("before"), "before"),
        report_from_dict(data.get("after"), "after"),
        labels=tuple(labels) if isinstance(labels, list) else labels,
    )


@implements("comparison_from_json")
def comparison_from_json(source: str | Path) -> Comparison:
    """``Comparison.from_json``: a path, or the JSON text itself."""
    return comparison_from_dict(read_json(source, "source"))


def dumps(data: dict[str, object]) -> str:
    return json.dumps(data, indent=2, allow_nan=False, ensure_ascii=False) + "\n"


@implements("to_json")
def to_json(data: dict[str, object], path: str | Path | None = None) -> str:
    """The JSON text of ``data`` (a ``to_dict`` result), also written to ``path`` when given."""
    text = dumps(data)
    if path is not None:
        write_text(path, text, "path")
    return text


def read_json(source: str | Path, name: str) -> Any:
    """Parse JSON text, or the file at a path (a ``str`` starting with ``{`` is text)."""
    if isinstance(source, str) and source.lstrip().startswith("{"):
        text = source
    elif isinstance(source, str | Path):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"{name}: no such JSON file: {str(path)!r}")
        text = path.read_text(encoding="utf-8")
    else:
        raise TypeError(f"{name}: expected a path or JSON text, got {type(source).__name__}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{name}: expected JSON, got a parse error: {exc}") from None


@implements("write_text")
def write_text(path: str | Path, text: str, name: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically, creating its parent folder."""
    if not isinstance(path, str | Path):
        raise TypeError(f"{name}: expected a str or Path, got {type(path).__name__}")
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{name}: expected a file path, got the folder {str(path)!r}")
    from xcm_debias.atomic import write_text as write_atomically

    return write_atomically(path, text)
