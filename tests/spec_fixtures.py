"""The recommended (self-calibrating) and the world-tuned pipelines as chain specs and TOML files."""

from __future__ import annotations

RECOMMENDED_SPEC = "guard=0.01; cross_fit=5"

RECOMMENDED_TOML = """\
guard = 0.01
cross_fit = 5
"""

WORLD_TUNED_SPEC = (
    "LanguageAlignment(method=ridge, target=centroid); t2i: GroupBalance(temperature=0.02);"
    " i2t: InvertedSoftmax(beta=20) | GroupBalance(temperature=0.005)"
    " | ExposureShuffle(tie_quantile=1.0); cross_fit=5"
)

WORLD_TUNED_TOML = """\
cross_fit = 5

[[processors]]
class = "LanguageAlignment"
params = { method = "ridge", target = "centroid" }

[[scoring.t2i]]
class = "GroupBalance"
params = { temperature = 0.02 }

[[scoring.i2t]]
class = "InvertedSoftmax"
params = { beta = 20.0 }

[[scoring.i2t]]
class = "GroupBalance"
params = { temperature = 0.005 }

[[scoring.i2t]]
class = "ExposureShuffle"
params = { tie_quantile = 1.0 }
"""
