"""A minimal fitted processor for the streaming tests (importable by a killed subprocess)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
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


N_SHARDS, ROWS, DIM = 4, 40, 6


def write_folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for name in ("img_emb", "text_emb", "metadata"):
        (root / name).mkdir(parents=True)
    for s in range(N_SHARDS):
        np.save(
            root / "img_emb" / f"img_emb_{s}.npy", rng.normal(size=(ROWS, DIM)).astype(np.float32)
        )
        np.save(
            root / "text_emb" / f"text_emb_{s}.npy", rng.normal(size=(ROWS, DIM)).astype(np.float32)
        )
        table = pa.table({"item": [f"{s}:{i}" for i in range(ROWS)], "language": ["de"] * ROWS})
        pq.write_table(table, root / "metadata" / f"metadata_{s}.parquet")
    return root


def fitted(delay: float, path: Path, scale: float = 1.0) -> Path:
    """A fitted CenterWithDelay saved at ``path`` (``scale`` changes its fitted mean)."""
    calib = EmbeddingSet(torch.ones(3, DIM) * torch.arange(1, 4)[:, None] * scale, modality="text")
    return CenterWithDelay(delay=delay).fit(calib).save(path)


def outputs(root: Path) -> dict[str, np.ndarray]:
    return {str(p.relative_to(root)): np.load(p) for p in sorted(root.rglob("*.npy"))}
