"""Blockwise inner-product top-k and rank counting: memory O((Q + N)·k + block²).

Neither function ever holds the full ``Q × N`` score matrix: queries and gallery are visited
in ``block_size`` tiles, scores accumulate in float32 whatever the input dtype, and ties are
broken by the lower gallery index (the order a stable dense argsort gives).
"""

from __future__ import annotations

import torch

from xcm_debias._validation import as_float_matrix, as_gallery_indices, check_positive_int
from xcm_debias.ties import DuplicateRows, rows_ahead_in_groups


class TileProducts:
    """Float32 tile products ``q @ gᵀ`` written into one buffer reused for every tile.

    A fresh ``block × block`` product per tile is a large allocation that the allocator hands
    back to the system and page-faults in again each time (about 15% of the product's time on
    4096² tiles); one buffer per pass avoids it. A returned tile is overwritten by the next
    call: callers keep only what they copy out of it.
    """

    def __init__(self, rows: int, cols: int) -> None:
        self._buffer = torch.empty(rows * cols, dtype=torch.float32)

    def __call__(self, q: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        out = self._buffer[: q.shape[0] * g.shape[0]].view(q.shape[0], g.shape[0])
        return torch.matmul(q.float(), g.float().T, out=out)


def _block_topk(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k of each row with ties broken by lower column index (exact)."""
    kk = min(k, scores.shape[1])
    if kk == scores.shape[1]:
        vals, idx = torch.topk(scores, kk, dim=1)
        ties = torch.zeros(len(scores), dtype=torch.bool)
    else:
        # torch.topk picks arbitrarily among values equal to the k-th; rows where more than k
        # columns reach the k-th value need the stable order, which a stable sort gives. One
        # extra candidate finds them: more than k columns reach the k-th value exactly when the
        # (k+1)-th equals it (a comparison pass over the tile cost as much as the top-k).
        vals, idx = torch.topk(scores, kk + 1, dim=1)
        ties = vals[:, kk] == vals[:, kk - 1]
        vals, idx = vals[:, :kk], idx[:, :kk]
    # equal values inside the top k must also come by lower index: topk's order among them is
    # arbitrary, so rows with a repeated value take the stable order too
    ties |= (vals[:, 1:] == vals[:, :-1]).any(dim=1)
    if bool(ties.any()):
        rows = ties.nonzero().flatten()
        order = torch.sort(scores[rows], dim=1, descending=True, stable=True).indices[:, :kk]
        idx[rows] = order
        vals[rows] = torch.gather(scores[rows], 1, order)
    return vals, idx


def _merge(vals: torch.Tensor, idx: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The top k of concatenated candidate lists, ties ordered by lower gallery index.

    Each list comes best first with ties by lower index, and the lists are laid out in gallery
    order (every index of a later list exceeds every index of an earlier one), so a stable
    descending sort keeps equal scores in increasing index order.
    """
    order = torch.sort(vals, dim=1, descending=True, stable=True).indices[:, :k]
    return torch.gather(vals, 1, order), torch.gather(idx, 1, order)


def blockwise_topk(
    queries: torch.Tensor, gallery: torch.Tensor, k: int, block_size: int = 4096
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k gallery rows per query by inner product.

    Returns ``(indices int64 [Q, k'], scores float32 [Q, k'])`` with ``k' = min(k, N)``.
    """
    q = as_float_matrix(queries, "queries")
    g = as_float_matrix(gallery, "gallery")
    k = check_positive_int(k, "k")
    block = check_positive_int(block_size, "block_size")
    if q.shape[1] != g.shape[1]:
        raise ValueError(f"gallery: expected dimension {q.shape[1]} (as queries), got {g.shape[1]}")
    kk = min(k, g.shape[0])
    products = TileProducts(min(block, q.shape[0]), min(block, g.shape[0]))
    out_i = torch.empty(q.shape[0], kk, dtype=torch.int64)
    out_v = torch.empty(q.shape[0], kk, dtype=torch.float32)
    for q0 in range(0, q.shape[0], block):
        qb = q[q0 : q0 + block]
        # tile candidates go to one preallocated buffer, merged when it is full: one sort of
        # many short lists costs far less than a sort per tile (torch's per-row sort overhead
        # dominates lists of k entries), and a buffer allocated once does not fragment the heap
        # the way many small long-lived lists between the tiles' score matrices do. Its size
        # (~2²³ entries) stays within the O(block²) budget.
        capacity = max(3 * kk, (1 << 23) // qb.shape[0])
        cand_v = torch.empty(qb.shape[0], capacity)
        cand_i = torch.empty(qb.shape[0], capacity, dtype=torch.int64)
        filled, lists = 0, 0
        for g0 in range(0, g.shape[0], block):
            v, i = _block_topk(products(qb, g[g0 : g0 + block]), kk)
            if filled + v.shape[1] > capacity:
                merged_v, merged_i = _merge(cand_v[:, :filled], cand_i[:, :filled], kk)
                filled, lists = merged_v.shape[1], 1
                cand_v[:, :filled], cand_i[:, :filled] = merged_v, merged_i
            cand_v[:, filled : filled + v.shape[1]] = v
            cand_i[:, filled : filled + v.shape[1]] = i + g0
            filled += v.shape[1]
            lists += 1
        if lists == 1:  # one list is already in order
            best_v, best_i = cand_v[:, :kk], cand_i[:, :kk]
        else:
            best_v, best_i = _merge(cand_v[:, :filled], cand_i[:, :filled], kk)
        out_v[q0 : q0 + block] = best_v
        out_i[q0 : q0 + block] = best_i
    return out_i, out_v


def blockwise_ranks(
    queries: torch.Tensor,
    gallery: torch.Tensor,
    targets: torch.Tensor,
    block_size: int = 4096,
    groups: DuplicateRows | None = None,
) -> torch.Tensor:
    """1-based rank of gallery row ``targets[i]`` in query i's full ranking.

    The rank counts gallery rows scoring strictly higher, plus those scoring equal with a lower
    index (the dense stable-argsort order), plus one. Memory O(Q + block²).

    With ``groups`` (:func:`xcm_debias.ties.duplicate_rows` of the full gallery), ``gallery``
    holds its distinct rows (``full[groups.first]``) and ``targets`` index the full gallery:
    each distinct row is scored once and counts for all its members, so equal rows tie exactly.
    """
    q = as_float_matrix(queries, "queries")
    g = as_float_matrix(gallery, "gallery")
    block = check_positive_int(block_size, "block_size")
    if q.shape[1] != g.shape[1]:
        raise ValueError(f"gallery: expected dimension {q.shape[1]} (as queries), got {g.shape[1]}")
    n_rows = g.shape[0] if groups is None else groups.n_rows
    row_targets = as_gallery_indices(integral_targets(targets), "targets", q.shape[0], n_rows)
    t = row_targets if groups is None else groups.group[row_targets]
    products = TileProducts(min(block, q.shape[0]), min(block, g.shape[0]))
    # pass 1: each target's score, computed by the same tile product that pass 2 compares it with
    target_scores = torch.empty(q.shape[0], dtype=torch.float32)
    for q0 in range(0, q.shape[0], block):
        qb, tb = q[q0 : q0 + block], t[q0 : q0 + block]
        for g0 in range(0, g.shape[0], block):
            inside = ((tb >= g0) & (tb < g0 + block)).nonzero().flatten()
            if len(inside):
                scores = products(qb, g[g0 : g0 + block])
                target_scores[q0 + inside] = scores[inside, tb[inside] - g0]
    # pass 2: count the rows ahead of the target (higher score, or equal with a lower index)
    ranks = torch.ones(q.shape[0], dtype=torch.int64)
    for q0 in range(0, q.shape[0], block):
        qb = q[q0 : q0 + block]
        ts = target_scores[q0 : q0 + block, None]
        ti = t[q0 : q0 + block, None]
        for g0 in range(0, g.shape[0], block):
            scores = products(qb, g[g0 : g0 + block])
            if groups is None:
                cols = torch.arange(g0, g0 + scores.shape[1])[None, :]
                ahead = (scores > ts) | ((scores == ts) & (cols < ti))
                ranks[q0 : q0 + block] += ahead.sum(dim=1)
                continue
            sizes = groups.sizes[g0 : g0 + scores.shape[1]]
            ranks[q0 : q0 + block] += torch.where(scores > ts, sizes, 0).sum(dim=1)
            tied_q, tied_c = (scores == ts).nonzero(as_tuple=True)
            if len(tied_q):
                ahead = rows_ahead_in_groups(groups, q0 + tied_q, tied_c + g0, row_targets)
                ranks.index_add_(0, q0 + tied_q, ahead)
    return ranks


def integral_targets(targets: object) -> torch.Tensor:
    """``targets`` as int64; floats are accepted only when every value is a whole number
    (``1.5`` is an error, never truncated to 1)."""
    t = torch.as_tensor(targets)
    if t.is_floating_point():
        if not bool(torch.isfinite(t).all()) or not bool((t == t.round()).all()):
            bad = t[~torch.isfinite(t) | (t != t.round())][0]
            raise ValueError(f"targets: expected whole-number gallery indices, got {float(bad)}")
        t = t.long()
    return t
