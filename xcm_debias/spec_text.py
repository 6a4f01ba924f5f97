"""The one-line text of a pipeline config (a *chain spec*), formatted from its config dict.

Kept apart from :mod:`xcm_debias.config_spec` (which parses specs and resolves registered
names) so that low layers — the recall guard naming its candidates — can describe a config
without importing the registry. Grammar: see :mod:`xcm_debias.config_spec`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

#: top-level options of a config, in spec order
OPTIONS = ("guard", "cross_fit", "seed")
_BARE_WORD = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
_KEYWORDS = {"true": True, "false": False, "null": None}


def format_config(spec: Mapping[str, Any]) -> str:
    """The chain spec of a (checked) config dict: processors, per-direction stages, options."""
    parts = []
    processors = " | ".join(_format_stage(s) for s in spec.get("processors") or [])
    scoring = spec.get("scoring") or []
    if isinstance(scoring, Mapping):
        if processors:
            parts.append(processors)
        for direction, stages in scoring.items():
            if stages:  # an empty direction has no spec part (and build() ignores it)
                parts.append(f"{direction}: " + " | ".join(_format_stage(s) for s in stages))
    else:
        stages = " | ".join(_format_stage(s) for s in scoring)
        joined = " | ".join(p for p in (processors, stages) if p)
        if joined:
            parts.append(joined)
    parts += [f"{key}={_format_value(spec[key])}" for key in OPTIONS if key in spec]
    return "; ".join(parts)


def _format_stage(stage: Mapping[str, Any]) -> str:
    params = stage.get("params") or {}
    inner = ", ".join(f"{k}={_format_value(v)}" for k, v in params.items())
    return f"{stage['class']}({inner})"


def _format_value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_format_value(v) for v in value) + "]"
    if isinstance(value, str) and _BARE_WORD.match(value) and value not in _KEYWORDS:
        return value
    return json.dumps(value)
