r"""Translation sets of a multilingual caption gallery, mined by margin (bitext mining).

A multilingual caption gallery often holds the same caption in several languages (parallel
captions, or captions translated for a multilingual index). Such rows are equally relevant to
every query, so which of them is shown first is a matter of exposure, not of relevance. This
module finds them from the embeddings alone, the way parallel-corpus mining does (Artetxe &
Schwenk 2019): for two rows ``x`` (language ``a``) and ``y`` (language ``b``) with cosine
``cos(x, y)``, the ratio margin

.. math::

    \operatorname{margin}(x, y) = \frac{\cos(x, y)}
        {\tfrac{1}{2k} \sum_{z \in N_k^b(x)} \cos(x, z) + \tfrac{1}{2k} \sum_{z \in N_k^a(y)} \cos(y, z)},

with ``N_k^b(x)`` the ``k`` nearest rows of language ``b`` to ``x``, compares a pair's cosine with
the density of each side's neighbourhood (a hub has many close rows and a large denominator;
a pair whose denominator is not positive gets margin 0).
A pair is a candidate when ``x`` and ``y`` are each other's nearest row in the other's
language (mutual nearest neighbours) and its margin reaches ``min_margin``. Candidates are
merged into sets greedily, highest margin first (union-find), and two sets are merged only
when they share no language: a set holds at most one row per language, so a wrong pair cannot
chain two items' captions into one set.

Reference: M. Artetxe, H. Schwenk, "Margin-based Parallel Corpus Mining with Multilingual
Sentence Embeddings", ACL 2019.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from xcm_debias._validation import check_positive_int
from xcm_debias.topk import blockwise_topk

#: languages treated as unknown: their rows stay alone (no pair is mined for them)
UNKNOWN_LANGUAGES = frozenset({"", "und"})


@dataclass(frozen=True)
class MinedPairs:
    """Mutual-nearest-neighbour pairs across languages, with their ratio margins.

    Attributes:
        first: ``[P]`` row indices (the lower-sorted language of the pair).
        second: ``[P]`` row indices of the partner.
        margin: ``[P]`` float64 ratio margins.
    """

    first: np.ndarray
    second: np.ndarray
    margin: np.ndarray


def mutual_pairs(
    rows: torch.Tensor, languages: np.ndarray, k: int = 4, block_size: int = 4096
) -> MinedPairs:
    """Every cross-language mutual-nearest-neighbour pair of ``rows`` with its ratio margin.

    Args:
        rows: ``[N, D]`` float L2-normalised rows.
        languages: ``[N]`` language of each row; rows in :data:`UNKNOWN_LANGUAGES` get no pair.
        k: neighbours in each side's margin denominator (capped by the language's row count).
        block_size: tile edge of the products (memory O(block_size²) per tile).

    Cost: every pair of languages' rows is scored in both directions (the exact top-k of each
    side against the other), ``N²(1 − 1/L)·D`` multiply-adds for ``L`` languages of equal
    size — a one-off per gallery.
    """
    langs = np.asarray(languages).astype(str)
    if rows.ndim != 2 or langs.shape != (rows.shape[0],):
        raise ValueError(
            f"languages: expected shape ({rows.shape[0] if rows.ndim == 2 else '?'},) "
            f"(one per row of a [N, D] matrix), got {langs.shape} for rows {tuple(rows.shape)}"
        )
    k = check_positive_int(k, "k")
    x = rows.detach().float()
    groups = [
        np.flatnonzero(langs == lang) for lang in sorted(set(langs.tolist()) - UNKNOWN_LANGUAGES)
    ]
    parts = [x[torch.from_numpy(rows_of)] for rows_of in groups]  # each language's rows, once
    first, second, margin = [], [], []
    for a in range(len(groups)):
        for b in range(a + 1, len(groups)):
            ia, ib = groups[a], groups[b]
            near_b = _neighbours(parts[a], parts[b], k, block_size)
            near_a = _neighbours(parts[b], parts[a], k, block_size)
            partner = near_b.best
            mutual = torch.nonzero(near_a.best[partner] == torch.arange(len(ia))).flatten()
            if len(mutual) == 0:
                continue
            partner = partner[mutual]
            cos = near_b.top[mutual, 0].double()
            denom = (near_b.density[mutual] + near_a.density[partner]).double() / 2
            ratio = torch.where(denom > 0, cos / denom.clamp_min(1e-12), torch.zeros_like(cos))
            first.append(ia[mutual.numpy()])
            second.append(ib[partner.numpy()])
            margin.append(ratio.numpy())
    if not first:
        empty = np.zeros(0, dtype=np.int64)
        return MinedPairs(empty, empty, np.zeros(0))
    return MinedPairs(np.concatenate(first), np.concatenate(second), np.concatenate(margin))


@dataclass(frozen=True)
class _Neighbours:
    best: torch.Tensor  # [n] index of each row's nearest row of the other set
    top: torch.Tensor  # [n, k'] its k' largest cosines, best first
    density: torch.Tensor  # [n] mean of those cosines


def _neighbours(x: torch.Tensor, y: torch.Tensor, k: int, block_size: int) -> _Neighbours:
    """Each row of ``x``'s ``k`` nearest rows of ``y`` (cosines of unit rows; ties to the lower
    index)."""
    index, top = blockwise_topk(x, y, min(k, len(y)), block_size)
    return _Neighbours(index[:, 0], top, top.mean(dim=1))


def translation_sets(pairs: MinedPairs, languages: np.ndarray, min_margin: float) -> np.ndarray:
    """``[N]`` set id of every row: pairs with margin ``≥ min_margin`` merged greedily,
    highest margin first, never two rows of one language in a set (ids are the set's lowest
    row index; a row without a partner is its own set)."""
    langs = np.asarray(languages).astype(str)
    n = len(langs)
    parent = np.arange(n)
    members: dict[int, set[str]] = {}

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return int(i)

    keep = np.flatnonzero(pairs.margin >= min_margin)
    order = keep[np.argsort(-pairs.margin[keep], kind="stable")]
    for p in order:
        ra, rb = root(int(pairs.first[p])), root(int(pairs.second[p]))
        if ra == rb:
            continue
        la = members.get(ra, {langs[ra]})
        lb = members.get(rb, {langs[rb]})
        if la & lb:
            continue
        low, high = min(ra, rb), max(ra, rb)
        parent[high] = low
        members[low] = la | lb
        members.pop(high, None)
    return np.array([root(i) for i in range(n)])


def margin_for_precision(pairs: MinedPairs, correct: np.ndarray, precision: float) -> float:
    """The lowest margin threshold whose accepted pairs (margin ≥ threshold) are correct at a
    rate ≥ ``precision``; ``inf`` (accept none) when no threshold reaches it.

    ``correct`` is the ``[P]`` bool truth of each pair (same item, on a labelled calibration
    gallery)."""
    ok = np.asarray(correct, dtype=bool)
    if ok.shape != pairs.margin.shape:
        raise ValueError(
            f"correct: expected shape {pairs.margin.shape} (one per pair), got {ok.shape}"
        )
    order = np.argsort(-pairs.margin, kind="stable")
    hits = np.cumsum(ok[order])
    rate = hits / np.arange(1, len(order) + 1)
    # a threshold accepts a prefix that ends before a tie breaks: only cut at distinct margins
    sorted_margin = pairs.margin[order]
    cut = np.r_[sorted_margin[1:] < sorted_margin[:-1], True]
    good = np.flatnonzero(cut & (rate >= precision))
    if len(good) == 0:
        return float("inf")
    return float(sorted_margin[good[-1]])


__all__ = ["MinedPairs", "margin_for_precision", "mutual_pairs", "translation_sets"]
