"""The registry of named pipeline configs: plain JSON-able data, importable without torch.

``xcm_debias.configs`` builds a ``Debiased`` from these (and registers new ones); this module
holds only the data, so the command line can list the names (``--help``) without loading the
numerical stack. The configs themselves are documented in :mod:`xcm_debias.configs`.
"""

from __future__ import annotations

import copy
from typing import Any

CONFIGS: dict[str, dict[str, Any]] = {
    # The self-calibrating default: a recall guard picks stages and strengths from the
    # calibration data (xcm_debias.calibration.guard); see recommended().
    "recommended": {"processors": [], "scoring": [], "guard": 0.01, "cross_fit": 5},
    # Tuned on world seeds 10-13 (fit on their calibration split, scored on their test split;
    # never on the reported seeds 0-2): `python benchmarks/methods_on_world.py --tune`.
    "world_tuned": {
        "processors": [
            {"class": "LanguageAlignment", "params": {"method": "ridge", "target": "centroid"}},
        ],
        "scoring": {
            "t2i": [{"class": "GroupBalance", "params": {"temperature": 0.02}}],
            "i2t": [
                {"class": "InvertedSoftmax", "params": {"beta": 20.0}},
                {"class": "GroupBalance", "params": {"temperature": 0.005}},
                {"class": "ExposureShuffle", "params": {"tie_quantile": 1.0}},
            ],
        },
        "cross_fit": 5,
    },
    "identity": {"processors": [], "scoring": []},
    "language_eraser": {
        "processors": [{"class": "LanguageProjection", "params": {"method": "leace"}}],
        "scoring": [],
    },
    "hubness": {
        "processors": [],
        "scoring": [{"class": "DualInvertedSoftmax", "params": {"dynamic": True}}],
    },
    "balance": {"processors": [], "scoring": [{"class": "GroupBalance", "params": {}}]},
}


def list_configs() -> list[str]:
    """Names of the registered configs."""
    return sorted(CONFIGS)


def get_config(name: str) -> dict[str, Any]:
    """A deep copy of the registered config ``name``."""
    if name not in CONFIGS:
        raise ValueError(f"name: expected one of {list_configs()}, got {name!r}")
    return copy.deepcopy(CONFIGS[name])
