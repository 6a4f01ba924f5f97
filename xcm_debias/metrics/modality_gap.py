r"""Modality gap (Liang et al., "Mind the Gap: Understanding the Modality Gap in Multi-modal
Contrastive Representation Learning", NeurIPS 2022):

.. math:: \Delta = \Big\lVert \frac1{n_I}\sum_i \frac{x_i}{\lVert x_i\rVert}
          - \frac1{n_T}\sum_j \frac{y_j}{\lVert y_j\rVert} \Big\rVert_2,

the distance between the centroids of the L2-normalised image and text embeddings. 0 when both
modalities share a centroid; at most 2. A geometry diagnostic (no better/worse direction).
"""

from __future__ import annotations

import torch

from xcm_debias._validation import as_float_matrix


def _centroid(x: torch.Tensor, name: str, block_size: int = 65536) -> torch.Tensor:
    """Mean of the L2-normalised rows, accumulated in float64 over row blocks."""
    total = torch.zeros(x.shape[1], dtype=torch.float64)
    for start in range(0, x.shape[0], block_size):
        block = x[start : start + block_size].to(device="cpu", dtype=torch.float64)
        norms = block.norm(dim=1, keepdim=True)
        if bool((norms == 0).any()):
            raise ValueError(
                f"{name}: expected non-zero rows (they are L2-normalised), got a zero row"
            )
        total += (block / norms).sum(dim=0)
    return total / x.shape[0]


def modality_gap(image_embeddings: torch.Tensor, text_embeddings: torch.Tensor) -> float:
    """Distance between the image and text centroids of L2-normalised rows (float64 math)."""
    images = as_float_matrix(image_embeddings, "image_embeddings")
    texts = as_float_matrix(text_embeddings, "text_embeddings")
    if images.shape[1] != texts.shape[1]:
        raise ValueError(
            f"text_embeddings: expected dimension {images.shape[1]} (as images), got {texts.shape[1]}"
        )
    gap = _centroid(images, "image_embeddings") - _centroid(texts, "text_embeddings")
    return float(gap.norm())
