"""Relevance by shared ``item``: which gallery rows answer which query.

A gallery row ``g`` is relevant to a query ``q`` when ``item(g) == item(q)`` (captions and images
of one item answer each other). Everything here is vectorised over queries; nothing builds a
``Q × N`` matrix: relevant pairs are enumerated from the item groups (``Σ_q R_q`` pairs, ``R_q``
the number of relevant gallery rows of query ``q``).
"""

from __future__ import annotations

import numpy as np

from xcm_debias.metrics._checks import ArrayLike, as_indices, as_labels


def _codes(query_items: np.ndarray, gallery_items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes of the items, shared between queries and gallery."""
    _, codes = np.unique(np.concatenate([query_items, gallery_items]), return_inverse=True)
    return codes[: len(query_items)], codes[len(query_items) :]


def relevant_counts(query_items: ArrayLike, gallery_items: ArrayLike) -> np.ndarray:
    """``R_q``: the number of gallery rows sharing query ``q``'s item (int64 ``[Q]``)."""
    q = as_labels(query_items, "query_items")
    g = as_labels(gallery_items, "gallery_items")
    q_codes, g_codes = _codes(q, g)
    per_item = np.bincount(g_codes, minlength=int(q_codes.max(initial=-1)) + 1)
    return per_item[q_codes].astype(np.int64)


def relevant_pairs(
    query_items: ArrayLike, gallery_items: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Every (query row, gallery row) pair with the same item, as two int64 arrays.

    Pairs come grouped by query (ascending), gallery rows ascending within a query.
    """
    q = as_labels(query_items, "query_items")
    g = as_labels(gallery_items, "gallery_items")
    q_codes, g_codes = _codes(q, g)
    order = np.argsort(g_codes, kind="stable")  # gallery rows grouped by item, ascending rows
    n_codes = int(max(q_codes.max(initial=-1), g_codes.max(initial=-1))) + 1
    counts = np.bincount(g_codes, minlength=n_codes)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    per_query = counts[q_codes]
    query_rows = np.repeat(np.arange(len(q), dtype=np.int64), per_query)
    # offset of each pair inside its query's block of relevant gallery rows
    block_start = np.repeat(np.cumsum(per_query) - per_query, per_query)
    within = np.arange(len(query_rows), dtype=np.int64) - block_start
    gallery_rows = order[np.repeat(starts[q_codes], per_query) + within].astype(np.int64)
    return query_rows, gallery_rows


def relevance_at_k(
    indices: ArrayLike, query_items: ArrayLike, gallery_items: ArrayLike
) -> np.ndarray:
    """``rel[q, i] = item(gallery[indices[q, i]]) == item(q)``: boolean ``[Q, k]``."""
    g = as_labels(gallery_items, "gallery_items")
    idx = as_indices(indices, "indices", len(g))
    q = as_labels(query_items, "query_items", idx.shape[0])
    q_codes, g_codes = _codes(q, g)
    return g_codes[idx] == q_codes[:, None]
