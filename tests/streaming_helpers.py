"""A minimal fitted processor for the streaming tests (importable by a killed subprocess)."""

from __future__ import annotations

import time

import torch

from xcm_debias.data import EmbeddingSet
from xcm_debias.processors.base import PostProcessor


class CenterWithDelay(PostProcessor):
    """x − μ (μ fitted), pausing ``delay`` seconds per batch so a test can kill it mid-run."""

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__()
        self.delay = delay

    def _fit(self, calibration: EmbeddingSet) -> None:
        self.set_state("mean", calibration.embeddings.float().mean(dim=0))

    def forward(self, x: torch.Tensor, data: EmbeddingSet) -> torch.Tensor:
        time.sleep(self.delay)
        return x - self.mean
