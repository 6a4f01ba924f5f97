r"""Full rank of the first relevant gallery row of each query.

:math:`r_q = \min_{g \in \mathcal R_q} \operatorname{rank}_q(g)`, 1-based, in the retriever's own
order over the whole gallery (ties as the retriever breaks them; ``ExactRetriever`` puts the
lower gallery index first, as a stable dense argsort). Recall@k, MRR and MRV all derive from it.

Memory never reaches ``Q × N``:

1. When a top-k ``ranking`` of the same queries is given, a query with a relevant row among its
   top k takes its rank from there (most queries of a usable retriever).
2. The others are ranked by ``retriever.rank_of(queries, gallery, targets)`` when the retriever
   has it, once per (query, relevant row) pair, in chunks of ``pair_block`` pairs; the minimum
   over a query's pairs is its rank. Ranks found this way are at least ``k + 1`` when step 1
   ran (an approximate index may disagree with its own exact ``rank_of``; the top-k list,
   which is what users see, wins).
3. Otherwise ``retriever.search`` with ``k = N``, over blocks of
   ``max(1, max_block_entries // N)`` queries, and the first relevant position of each list.
"""

from __future__ import annotations

import numpy as np
import torch

from xcm_debias._validation import check_positive_int
from xcm_debias.data import EmbeddingSet
from xcm_debias.metrics.relevance import relevance_at_k, relevant_pairs
from xcm_debias.retrieval import Ranking, Retriever


def check_retriever(retriever: object) -> None:
    """Raise ``TypeError`` unless ``retriever`` has a callable ``search``."""
    if not callable(getattr(retriever, "search", None)):
        raise TypeError(
            f"retriever: expected an object with a search(queries, gallery, k) method, "
            f"got {type(retriever).__name__}"
        )


def check_ranking(ranking: object, n_queries: int, n_gallery: int, k: int, who: str) -> Ranking:
    """Raise unless ``ranking`` is a ``Ranking`` of ``n_queries`` rows and ``min(k, N)``
    columns of valid gallery indices."""
    if not isinstance(ranking, Ranking):
        raise TypeError(f"{who}: expected a Ranking, got {type(ranking).__name__}")
    expected = (n_queries, min(k, n_gallery))
    if tuple(ranking.indices.shape) != expected:
        raise ValueError(
            f"{who}: expected a ranking of shape {expected} (queries × min(k, gallery size)), "
            f"got {tuple(ranking.indices.shape)}"
        )
    if ranking.indices.numel() and (
        int(ranking.indices.min()) < 0 or int(ranking.indices.max()) >= n_gallery
    ):
        raise ValueError(f"{who}: expected gallery indices in [0, {n_gallery})")
    return ranking


def first_relevant_ranks(
    retriever: Retriever,
    queries: EmbeddingSet,
    gallery: EmbeddingSet,
    ranking: Ranking | None = None,
    *,
    pair_block: int = 65536,
    max_block_entries: int = 1 << 22,
) -> np.ndarray:
    """1-based rank of the first relevant gallery row of every query (int64 ``[Q]``).

    Args:
        retriever: has ``search``; ``rank_of`` is used when present.
        queries, gallery: relevance = same ``item``; every query needs a relevant gallery row.
        ranking: optional top-k result of ``retriever.search(queries, gallery, k)``.
        pair_block: (query, relevant row) pairs per ``rank_of`` call.
        max_block_entries: query × gallery entries per ``search(k = N)`` call (fallback).
    """
    check_retriever(retriever)
    for name, value in (("queries", queries), ("gallery", gallery)):
        if not isinstance(value, EmbeddingSet):
            raise TypeError(f"{name}: expected an EmbeddingSet, got {type(value).__name__}")
    pair_block = check_positive_int(pair_block, "pair_block")
    max_block_entries = check_positive_int(max_block_entries, "max_block_entries")
    n_q, n_g = len(queries), len(gallery)
    q_rows, g_rows = relevant_pairs(queries.item, gallery.item)
    n_relevant = np.bincount(q_rows, minlength=n_q)
    if (n_relevant == 0).any():
        first = int(np.flatnonzero(n_relevant == 0)[0])
        raise ValueError(
            f"queries: expected every query to have a relevant gallery row (same item), got "
            f"{int((n_relevant == 0).sum())} without one (first: item {queries.item[first]!r})"
        )
    ranks = np.zeros(n_q, dtype=np.int64)
    floor = 1
    if ranking is not None:
        check_ranking(ranking, n_q, n_g, ranking.k, "ranking")
        rel = relevance_at_k(ranking.indices, queries.item, gallery.item)
        found = rel.any(axis=1)
        ranks[found] = rel[found].argmax(axis=1) + 1
        floor = ranking.k + 1
    pending = ranks == 0
    if not pending.any():
        return ranks
    rank_of = getattr(retriever, "rank_of", None)
    if callable(rank_of):
        keep = pending[q_rows]
        ranks[pending] = np.iinfo(np.int64).max
        _min_ranks_by_rank_of(
            rank_of, queries, gallery, q_rows[keep], g_rows[keep], ranks, pair_block
        )
        ranks[pending] = np.maximum(ranks[pending], floor)
    else:
        rows = np.flatnonzero(pending)
        ranks[rows] = _ranks_by_search(retriever, queries, gallery, rows, max_block_entries)
    return ranks


def _min_ranks_by_rank_of(
    rank_of: object,
    queries: EmbeddingSet,
    gallery: EmbeddingSet,
    q_rows: np.ndarray,
    g_rows: np.ndarray,
    ranks: np.ndarray,
    pair_block: int,
) -> None:
    """``ranks[q] = min(ranks[q], rank_of(q, g))`` over the pairs (in place on ``ranks``)."""
    whole = len(q_rows) == len(queries) and bool((q_rows == np.arange(len(queries))).all())
    for start in range(0, len(q_rows), pair_block):
        qi, gi = q_rows[start : start + pair_block], g_rows[start : start + pair_block]
        subset = queries if whole and len(qi) == len(queries) else queries[qi]
        result = rank_of(subset, gallery, torch.from_numpy(gi))  # type: ignore[operator]
        got = np.asarray(torch.as_tensor(result).cpu(), dtype=np.int64).reshape(-1)
        if got.shape != (len(qi),) or (got < 1).any() or (got > len(gallery)).any():
            raise ValueError(
                f"retriever.rank_of: expected {len(qi)} ranks in [1, {len(gallery)}], "
                f"got shape {got.shape} with range {got.min(initial=0)}..{got.max(initial=0)}"
            )
        np.minimum.at(ranks, qi, got)


def _ranks_by_search(
    retriever: Retriever,
    queries: EmbeddingSet,
    gallery: EmbeddingSet,
    rows: np.ndarray,
    max_block_entries: int,
) -> np.ndarray:
    """First relevant position in full-gallery searches (``k = N``) of the query ``rows``."""
    n_g = len(gallery)
    block = max(1, max_block_entries // n_g)
    out = np.empty(len(rows), dtype=np.int64)
    for start in range(0, len(rows), block):
        chunk = rows[start : start + block]
        subset = queries[chunk]
        full = retriever.search(subset, gallery, n_g)
        check_ranking(full, len(chunk), n_g, n_g, "retriever.search(k = gallery size)")
        rel = relevance_at_k(full.indices, subset.item, gallery.item)
        if not rel.any(axis=1).all():
            raise ValueError(
                "retriever.search(k = gallery size): expected every gallery row in each list, "
                "got lists missing all relevant rows"
            )
        out[start : start + len(chunk)] = rel.argmax(axis=1) + 1
    return out


def subset_ranks_from_topk(relevance: np.ndarray, in_subset: np.ndarray) -> np.ndarray:
    """Rank of the first relevant row *within a gallery subset*, read off a full-gallery top-k.

    ``relevance`` is the boolean ``[Q, k]`` relevance of the retrieved slots and ``in_subset``
    the ``[Q, k]`` flags "this slot's gallery row belongs to the subset". Every subset row that
    outranks the first relevant subset row is in the top k before it, so that rank is
    ``1 + (number of subset slots before it)``, exact. Returns int64 ``[Q]``, 0 where the top k
    holds no relevant subset row (rank them on the subset itself).
    """
    rel = np.asarray(relevance, dtype=bool)
    sub = np.asarray(in_subset, dtype=bool)
    if rel.ndim != 2 or rel.shape != sub.shape:
        raise ValueError(f"in_subset: expected the shape of relevance {rel.shape}, got {sub.shape}")
    hit = rel & sub
    found = hit.any(axis=1)
    first = hit.argmax(axis=1)
    before = np.cumsum(sub, axis=1)  # subset slots up to and including each position
    ranks = np.take_along_axis(before, first[:, None], axis=1)[:, 0]
    return np.where(found, ranks, 0).astype(np.int64)
