"""Embedding-level post-processors (fitted, composable ``torch.nn.Module``s)."""

from __future__ import annotations

from xcm_debias.processors.base import Chain, NotFittedError, PostProcessor

__all__ = ["Chain", "NotFittedError", "PostProcessor"]
