"""Embedding-level post-processors (fitted, composable ``torch.nn.Module``s)."""

from __future__ import annotations

from xcm_debias.processors.base import Chain, NotFittedError, PostProcessor
from xcm_debias.processors.decoupling import CultureLanguageDecoupler
from xcm_debias.processors.invgc import InvGC
from xcm_debias.processors.language_alignment import LanguageAlignment
from xcm_debias.processors.language_projection import LanguageProjection
from xcm_debias.processors.ot_recenter import OTRecenter

__all__ = [
    "Chain",
    "CultureLanguageDecoupler",
    "InvGC",
    "LanguageAlignment",
    "LanguageProjection",
    "NotFittedError",
    "OTRecenter",
    "PostProcessor",
]
