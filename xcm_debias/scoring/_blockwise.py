"""Blockwise reductions of ``x @ yᵀ`` that score normalisers need: memory O(n + m + block²).

None of these ever holds the full ``len(x) × len(y)`` matrix; tiles are float32 products, like
``xcm_debias.topk``.
"""

from __future__ import annotations

import torch

from xcm_debias.topk import TileProducts, blockwise_topk


def logsumexp_scores(
    x: torch.Tensor,
    y: torch.Tensor,
    beta: float,
    y_potential: torch.Tensor | None = None,
    block_size: int = 4096,
) -> torch.Tensor:
    """``out[i] = log Σ_j exp(β·x_i·y_j + p_j)`` for every row of ``x`` (``p = 0`` if not given).

    A running ``logaddexp`` over tiles of ``y`` keeps it exact and stable for any ``β``.
    """
    out = torch.full((x.shape[0],), -torch.inf, dtype=torch.float32)
    products = TileProducts(min(block_size, x.shape[0]), min(block_size, y.shape[0]))
    for i0 in range(0, x.shape[0], block_size):
        xb = x[i0 : i0 + block_size].float()
        acc = out[i0 : i0 + block_size]
        for j0 in range(0, y.shape[0], block_size):
            tile = products(xb, y[j0 : j0 + block_size]).mul_(beta)
            if y_potential is not None:
                tile.add_(y_potential[None, j0 : j0 + block_size])
            acc = torch.logaddexp(acc, torch.logsumexp(tile, dim=1))
        out[i0 : i0 + block_size] = acc
    return out


def group_logsumexp_scores(
    x: torch.Tensor,
    y: torch.Tensor,
    y_group: torch.Tensor,
    n_groups: int,
    beta: float,
    block_size: int = 4096,
) -> torch.Tensor:
    """``out[i, b] = log Σ_{j: group(j) = b} exp(β·x_i·y_j)``, ``[len(x), n_groups]``.

    Each group's ``logsumexp`` is taken over its own columns of the tile (so a group far below
    the row's best one keeps a finite value), merged across tiles by ``logaddexp``. A group
    with no row of ``y`` gets ``−inf``.
    """
    out = torch.full((x.shape[0], n_groups), -torch.inf, dtype=torch.float32)
    products = TileProducts(min(block_size, x.shape[0]), min(block_size, y.shape[0]))
    for i0 in range(0, x.shape[0], block_size):
        xb = x[i0 : i0 + block_size].float()
        acc = out[i0 : i0 + block_size]
        for j0 in range(0, y.shape[0], block_size):
            tile = products(xb, y[j0 : j0 + block_size]).mul_(beta)
            groups = y_group[j0 : j0 + block_size]
            for b in torch.unique(groups).tolist():
                part = torch.logsumexp(tile[:, groups == b], dim=1)
                acc[:, b] = torch.logaddexp(acc[:, b], part)
        out[i0 : i0 + block_size] = acc
    return out


def activation_mask(
    bank: torch.Tensor, gallery: torch.Tensor, k: int, block_size: int = 4096
) -> torch.Tensor:
    """Gallery rows that are among the top-``k`` of at least one bank row (QB-Norm's set)."""
    idx, _ = blockwise_topk(bank, gallery, k, block_size)
    mask = torch.zeros(gallery.shape[0], dtype=torch.bool)
    mask[idx.flatten()] = True
    return mask


def mean_topk_scores(
    x: torch.Tensor, y: torch.Tensor, k: int, block_size: int = 4096
) -> torch.Tensor:
    """``r_k(x_i)``: mean of the ``k`` largest ``x_i·y_j`` (CSLS's neighbourhood density)."""
    _, scores = blockwise_topk(x, y, k, block_size)
    return scores.mean(dim=1)
