r"""Exact top-k of a gated offset score in one pass over the gallery (QB-Norm's fused search).

A gated score stage (QB-Norm's dynamic inverted softmax) scores query ``q`` and gallery row
``g`` as

.. math::

    s(q, g) = q \cdot g + w_{\gamma(q)}(q)\, o(g), \qquad
    \gamma(q) = [\operatorname{argmax}_{g'} q \cdot g' \in A],

one offset per gallery row ``o(g)``, two weights per query (``w_on`` when the query's raw top-1
lies in the activation set ``A``, ``w_off`` otherwise). Searching it with a plain index takes
two passes: one for the raw top-1 (the gate), one for the offset scores. :class:`GatedOffsetIndex`
takes one: it keeps the gallery sorted by offset, cut into chunks of ``chunk`` consecutive rows,
and for each block of queries

1. computes the raw products ``q·g`` of the block against the whole gallery (``block_size²``
   floats, like :func:`xcm_debias.topk.blockwise_topk`'s tiles, or 128 query rows when the
   gallery is larger than ``block_size²/128``) and each chunk's maximum ``m_j`` (one read of
   the products);
2. takes the gate from the best chunk (the raw top-1);
3. bounds each chunk's best offset score: every row of chunk ``j`` scores at most
   ``U_j = m_j + max(w·o_min,j, w·o_max,j)``, and the row that reaches ``m_j`` scores at least
   ``L_j = m_j + min(w·o_min,j, w·o_max,j)``. The ``k``-th best score is at least the ``k``-th
   largest ``L_j``, so the top ``k`` lies in the chunks whose ``U_j`` reaches it. Sorted
   offsets make ``o_min,j ≈ o_max,j``, so these are about ``k`` chunks;
4. scores the rows of those chunks exactly and keeps the top ``k``.

A query whose candidate chunks are more than the fixed budget, or whose top-``k`` holds equal
scores, takes the exact dense path for its row (rare on real data), so results are exact:
the top ``k`` of ``s`` with ties broken by the lower gallery index, as the two-pass search and
the dense formula give.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from xcm_debias._validation import (
    as_float_matrix,
    as_gallery_indices,
    check_finite,
    check_positive_int,
)
from xcm_debias.topk import TileProducts

#: query rows per block at least: a product of fewer rows against a large gallery runs far below
#: the machine's matmul rate (16 rows: ~0.3x of 256 rows on 2 cores)
_MIN_ROWS = 128


def _vector(value: object, name: str, length: int, dtype: torch.dtype) -> torch.Tensor:
    t = torch.as_tensor(value)
    if t.shape != (length,):
        raise ValueError(f"{name}: expected shape ({length},), got {tuple(t.shape)}")
    if dtype == torch.bool:
        if t.dtype != torch.bool:
            raise TypeError(f"{name}: expected a bool tensor, got {t.dtype}")
        return t
    if not t.is_floating_point():
        raise TypeError(f"{name}: expected a float tensor, got {t.dtype}")
    check_finite(t, name)
    return t.to(dtype)


class GatedOffsetIndex:
    """A gallery prepared for exact one-pass search of a gated offset score.

    Args:
        gallery: ``[N, D]`` rows (the products ``q·g`` are the raw scores the gate reads).
        offsets: ``[N]`` per-row offsets ``o(g)``.
        active: ``[N]`` bool activation set ``A``.
        block_size: the raw products of a query block against the gallery hold at most
            ``max(block_size², 128·N)`` floats (at least 128 query rows per block).
        chunk: rows per chunk (bounds are per chunk).
    """

    def __init__(
        self,
        gallery: torch.Tensor,
        offsets: torch.Tensor,
        active: torch.Tensor,
        block_size: int = 4096,
        chunk: int = 32,
    ) -> None:
        g = as_float_matrix(gallery, "gallery")
        n = g.shape[0]
        o = _vector(offsets, "offsets", n, torch.float32)
        self.active = _vector(active, "active", n, torch.bool)
        self.block_size = check_positive_int(block_size, "block_size")
        self.chunk = check_positive_int(chunk, "chunk")
        # stable: rows with equal offsets keep their index order
        self.order = torch.sort(o, stable=True).indices
        self.gallery = g.float()[self.order].contiguous()
        self.offsets = o[self.order].contiguous()
        self.n_full = (n // self.chunk) * self.chunk
        starts = torch.arange(0, n, self.chunk)
        self.offset_min = self.offsets[starts]
        self.offset_max = self.offsets[torch.clamp(starts + self.chunk - 1, max=n - 1)]

    def __len__(self) -> int:
        return int(self.gallery.shape[0])

    @property
    def dim(self) -> int:
        return int(self.gallery.shape[1])

    def search(
        self,
        queries: torch.Tensor,
        k: int,
        weight_on: torch.Tensor,
        weight_off: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-``k`` rows (original gallery indices) and their scores for each query.

        Returns ``(indices int64 [Q, k'], scores float32 [Q, k'])``, ``k' = min(k, N)``.
        """
        q, w_on, w_off = self._check_queries(queries, weight_on, weight_off)
        kk = min(check_positive_int(k, "k"), len(self))
        out_i = torch.empty(q.shape[0], kk, dtype=torch.int64)
        out_v = torch.empty(q.shape[0], kk, dtype=torch.float32)
        for block, raw in self._blocks(q):
            out_i[block], out_v[block] = self._search_block(raw, kk, w_on[block], w_off[block])
        return out_i, out_v

    def rank_of(
        self,
        queries: torch.Tensor,
        targets: torch.Tensor,
        weight_on: torch.Tensor,
        weight_off: torch.Tensor,
    ) -> torch.Tensor:
        """1-based rank of gallery row ``targets[i]`` (original index) for query i.

        The same gate and the same float32 scores as :meth:`search` (rows scoring higher, or
        equal with a lower index, come first), so ``rank_of`` of the ``j``-th result is ``j``.
        """
        q, w_on, w_off = self._check_queries(queries, weight_on, weight_off)
        t = as_gallery_indices(targets, "targets", q.shape[0], len(self))
        position = torch.empty(len(self), dtype=torch.int64)
        position[self.order] = torch.arange(len(self))  # original index -> sorted position
        ranks = torch.empty(q.shape[0], dtype=torch.int64)
        for block, raw in self._blocks(q):
            w = torch.where(self._gate(raw, self._chunk_maxima(raw)), w_on[block], w_off[block])
            scores = raw.add_(w[:, None] * self.offsets)  # the tile buffer is ours to overwrite
            tb = t[block, None]
            own = scores.gather(1, position[tb])
            ahead = (scores > own) | ((scores == own) & (self.order[None, :] < tb))
            ranks[block] = ahead.sum(dim=1) + 1
        return ranks

    # ------------------------------------------------------------------ internals
    def _check_queries(
        self, queries: torch.Tensor, weight_on: torch.Tensor, weight_off: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        q = as_float_matrix(queries, "queries")
        if q.shape[1] != self.dim:
            raise ValueError(
                f"queries: expected dimension {self.dim} (as gallery), got {q.shape[1]}"
            )
        w_on = _vector(weight_on, "weight_on", q.shape[0], torch.float32)
        w_off = _vector(weight_off, "weight_off", q.shape[0], torch.float32)
        return q, w_on, w_off

    def _blocks(self, q: torch.Tensor) -> Iterator[tuple[slice, torch.Tensor]]:
        """Query blocks and their raw products with the (sorted) gallery, one reused buffer."""
        rows = min(q.shape[0], max(_MIN_ROWS, self.block_size**2 // len(self)))
        products = TileProducts(rows, len(self))
        for q0 in range(0, q.shape[0], rows):
            block = slice(q0, q0 + rows)
            yield block, products(q[block], self.gallery)

    def _chunk_maxima(self, raw: torch.Tensor) -> torch.Tensor:
        b, c = raw.shape[0], self.chunk
        maxima = raw[:, : self.n_full].view(b, self.n_full // c, c).amax(dim=2)
        if self.n_full < raw.shape[1]:
            maxima = torch.cat([maxima, raw[:, self.n_full :].amax(dim=1, keepdim=True)], dim=1)
        return maxima

    def _gate(self, raw: torch.Tensor, maxima: torch.Tensor) -> torch.Tensor:
        """``[b]`` bool: the raw top-1 (ties to the lower original index) is active."""
        best, best_chunk = maxima.max(dim=1)
        cols = best_chunk[:, None] * self.chunk + torch.arange(self.chunk)
        valid = cols < len(self)
        cols = cols.clamp_(max=len(self) - 1)
        values = raw.gather(1, cols).masked_fill_(~valid, float("-inf"))
        top1 = self.order[cols.gather(1, values.argmax(dim=1, keepdim=True))[:, 0]]
        # a row whose maximum is reached more than once takes the lowest original index
        repeated = ((maxima == best[:, None]).sum(dim=1) > 1) | (
            (values == best[:, None]).sum(dim=1) > 1
        )
        for r in repeated.nonzero().flatten().tolist():
            top1[r] = self.order[raw[r] == best[r]].min()
        return self.active[top1]

    def _search_block(
        self, raw: torch.Tensor, kk: int, w_on: torch.Tensor, w_off: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Top ``kk`` of one query block from its raw products ``[b, N]``."""
        maxima = self._chunk_maxima(raw)
        w = torch.where(self._gate(raw, maxima), w_on, w_off)
        w_lo, w_hi = w[:, None] * self.offset_min, w[:, None] * self.offset_max
        upper = maxima + torch.maximum(w_lo, w_hi)
        lower = maxima + torch.minimum(w_lo, w_hi)
        n_chunks = maxima.shape[1]
        kth_lower = torch.topk(lower, min(kk, n_chunks), dim=1).values[:, -1]
        budget = min(n_chunks, 2 * kk + 2)
        if budget < n_chunks:
            top_upper = torch.topk(upper, budget + 1, dim=1)
            exact = top_upper.values[:, budget] < kth_lower
            chunks = top_upper.indices[:, :budget]
        else:
            exact = torch.ones(len(raw), dtype=torch.bool)
            chunks = torch.arange(n_chunks).expand(len(raw), n_chunks)
        cols = (chunks[:, :, None] * self.chunk + torch.arange(self.chunk)).flatten(1)
        valid = cols < len(self)
        cols = cols.clamp_(max=len(self) - 1)
        scores = raw.gather(1, cols) + w[:, None] * self.offsets[cols]
        scores.masked_fill_(~valid, float("-inf"))
        take = min(kk + 1, scores.shape[1])
        vals, pos = torch.topk(scores, take, dim=1)
        # equal scores in the top k (or at its edge) must come by lower original index
        exact &= ~(vals[:, 1:] == vals[:, :-1]).any(dim=1)
        idx = self.order[cols.gather(1, pos[:, :kk])]
        vals = vals[:, :kk].clone()
        for r in (~exact).nonzero().flatten().tolist():
            idx[r], vals[r] = self._dense_row(raw[r], float(w[r]), kk)
        return idx, vals

    def _dense_row(self, raw: torch.Tensor, w: float, kk: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One query's exact top ``kk`` from its full score row, ties by lower original index."""
        scores = torch.empty(len(self))
        scores[self.order] = raw + w * self.offsets
        order = torch.sort(scores, descending=True, stable=True).indices[:kk]
        return order, scores[order]
