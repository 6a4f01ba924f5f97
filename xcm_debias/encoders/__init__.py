"""Encoders: raw texts and images to EmbeddingSets. Optional: everything downstream takes embeddings.

- :class:`USEEncoder` — USE-m3 (multilingual Universal Sentence Encoder v3) texts.
- :class:`OpenCLIPEncoder` — any open_clip model, images and texts (imported on first use,
  since ``open_clip`` is slow to import).
"""

from __future__ import annotations

import importlib

from xcm_debias.encoders.use import USE_LANGUAGES, USEEncoder, is_use_language

_LAZY = {
    "OpenCLIPEncoder": "xcm_debias.encoders.open_clip_encoder",
    "WeightsUnavailableError": "xcm_debias.encoders.open_clip_encoder",
}

__all__ = [
    "USE_LANGUAGES",
    "OpenCLIPEncoder",
    "USEEncoder",
    "WeightsUnavailableError",
    "is_use_language",
]


def __getattr__(name: str) -> object:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
