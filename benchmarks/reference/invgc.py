"""InvGC as published (LocalAdj): a dense test×bank matrix, a Python loop over its rows.

For each bank ``B`` (train gallery, rate ``r_g``; train queries, rate ``r_q``): the dense
similarity ``W = G Bᵀ`` (``N × |B|``), its top ``p = int(pool_rate·|B|)`` entries per row copied
into a dense zero matrix ``A`` one row at a time, the message ``G − r·A B / p`` normalised; the
result ``normalize(½ m_g + ½ m_q)``; finally the dense query×gallery similarity matrix.
"""

from __future__ import annotations

import torch


def _local_adj_message(test: torch.Tensor, bank: torch.Tensor, rate: float, pool_rate: float):
    sims = test @ bank.T
    adjacency = torch.zeros(sims.shape[0], sims.shape[1])
    p = int(pool_rate * bank.shape[0])
    top = torch.topk(sims, p, dim=1)
    for i in range(test.shape[0]):  # the published row loop
        adjacency[i][top.indices[i]] = top.values[i]
    message = test - adjacency @ bank / p * rate
    return torch.nn.functional.normalize(message, dim=1)


def invgc_gallery(
    gallery: torch.Tensor,
    bank_gallery: torch.Tensor,
    bank_query: torch.Tensor,
    r_g: float,
    r_q: float,
    pool_rate: float,
) -> torch.Tensor:
    """The convolved gallery ``normalize(½ m_g + ½ m_q)``."""
    m_g = _local_adj_message(gallery, bank_gallery, r_g, pool_rate)
    m_q = _local_adj_message(gallery, bank_query, r_q, pool_rate)
    return torch.nn.functional.normalize(0.5 * m_g + 0.5 * m_q, dim=1)


def invgc_similarity(
    queries: torch.Tensor,
    gallery: torch.Tensor,
    bank_gallery: torch.Tensor,
    bank_query: torch.Tensor,
    r_g: float,
    r_q: float,
    pool_rate: float,
) -> torch.Tensor:
    """The dense query×gallery similarity after InvGC (what the published function returns)."""
    return queries @ invgc_gallery(gallery, bank_gallery, bank_query, r_g, r_q, pool_rate).T
