r"""Retrieval quality per query: recall@k (multi-positive), reciprocal rank, AP@k.

All functions return one value per query, so that per-language / per-culture breakdowns reuse
one code path (:func:`xcm_debias.metrics.groups.group_mean`); the headline numbers are their
means over queries.

Standard names: LAION CLIP_benchmark's ``image_retrieval_recall@k`` is our text→image
``t2i/recall@k`` and its ``text_retrieval_recall@k`` is our image→text ``i2t/recall@k`` (a hit
when any of the image's captions is in the top k).
"""

from __future__ import annotations

import numpy as np

from xcm_debias._validation import check_positive_int
from xcm_debias.metrics._checks import ArrayLike, as_ranks, as_relevance, as_values


def recall_at_k(first_ranks: ArrayLike, k: int) -> np.ndarray:
    r"""Multi-positive recall@k per query: :math:`\mathbb 1[r_q \le k]`.

    ``first_ranks[q]`` is the 1-based rank of the *first* relevant gallery row of query ``q``
    (:func:`xcm_debias.metrics.ranks.first_relevant_ranks`), so a query scores a hit when any of
    its relevant rows is in the top k. Source: the recall@k of cross-modal retrieval
    benchmarks (e.g. CLIP_benchmark ``zeroshot_retrieval.py``; Karpathy & Fei-Fei 2015).

    Returns float64 ``[Q]`` of 0/1; non-decreasing in ``k``.
    """
    ranks = as_ranks(first_ranks, "first_ranks")
    k = check_positive_int(k, "k")
    return (ranks <= k).astype(np.float64)


def reciprocal_rank(first_ranks: ArrayLike) -> np.ndarray:
    r"""Reciprocal rank per query :math:`1 / r_q` (MRR is its mean; Voorhees, TREC-8 QA 1999).

    ``r_q`` is the full (untruncated) rank of the first relevant row.
    """
    ranks = as_ranks(first_ranks, "first_ranks")
    return 1.0 / ranks.astype(np.float64)


def average_precision_at_k(relevance: ArrayLike, n_relevant: ArrayLike, k: int) -> np.ndarray:
    r"""AP@k per query, as INQUIRE (Vendrow et al., NeurIPS 2024 D&B):

    .. math:: \mathrm{AP@k}(q) = \frac{1}{\min(R_q, k)} \sum_{i \le k} P@i \cdot rel_i,
              \qquad P@i = \frac1i \sum_{j \le i} rel_j.

    Args:
        relevance: boolean ``[Q, k']`` relevance of the retrieved slots, best first
            (:func:`xcm_debias.metrics.relevance.relevance_at_k`); ``k' ≥ min(k, N)`` columns.
        n_relevant: ``R_q``, the number of relevant gallery rows of each query (≥ 1).
        k: cut-off.

    With ``k`` = gallery size this is the ordinary AP (sklearn's
    ``label_ranking_average_precision_score`` per query, without ties). mAP@k is the mean.
    """
    rel = as_relevance(relevance, "relevance")
    k = check_positive_int(k, "k")
    counts = as_values(n_relevant, "n_relevant", rel.shape[0])
    if counts.min() < 1:
        raise ValueError(
            f"n_relevant: expected at least one relevant gallery row per query, got "
            f"{int((counts < 1).sum())} queries with none"
        )
    if (rel.sum(axis=1) > counts).any():
        raise ValueError("n_relevant: expected R_q >= the number of relevant retrieved slots")
    top = rel[:, :k].astype(np.float64)
    positions = np.arange(1, top.shape[1] + 1, dtype=np.float64)
    precision_at_i = np.cumsum(top, axis=1) / positions
    return (precision_at_i * top).sum(axis=1) / np.minimum(counts, k)
