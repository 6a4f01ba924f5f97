"""Blockwise inner-product top-k and rank counting: memory O((Q + N)·k + block²).

Neither function ever holds the full ``Q × N`` score matrix: queries and gallery are visited
in ``block_size`` tiles, scores accumulate in float32 whatever the input dtype, and ties are
broken by the lower gallery index (the order a stable dense argsort gives).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import repeat

import numpy as np
import torch

from xcm_debias import gemm
from xcm_debias._validation import as_float_matrix, as_gallery_indices, check_positive_int
from xcm_debias.gemm import inner_products
from xcm_debias.ties import DuplicateRows, rows_ahead_in_groups


class TileProducts:
    """Float32 tile products ``q @ gᵀ``, written into one buffer reused for every tile when the
    library writes into a caller's buffer.

    A fresh ``block × block`` product per tile is a large allocation that the allocator hands
    back to the system and page-faults in again each time (about 15% of OpenBLAS's product time
    on 4096² tiles); one buffer per pass avoids it. oneDNN writes only into buffers of its own,
    so through it each tile is a new tensor. A returned tile may be overwritten by the next
    call: callers keep only what they copy out of it.

    Products go through :func:`xcm_debias.gemm.inner_products` (the fastest library at hand);
    every product of the exact search, of rank counting and of the score stages' gallery passes
    goes through here, so all of them see the same bits for the same tile.
    """

    def __init__(self, rows: int, cols: int) -> None:
        self._buffer = torch.empty(rows * cols, dtype=torch.float32)

    def __call__(self, q: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        out = self._buffer[: q.shape[0] * g.shape[0]].view(q.shape[0], g.shape[0])
        return inner_products(q.float(), g.float(), out)


#: what a worker does with one query block and one gallery tile:
#: ``visit(block, rows, products, g0, tile)`` with ``rows`` the block's query rows (a slice)
Visit = Callable[[int, slice, TileProducts, int, torch.Tensor], None]


class QueryBlocks:
    """The queries cut into blocks that parallel workers score against each gallery tile.

    There are ``⌈Q / block_size⌉`` blocks, rounded up to a multiple of the workers
    (:func:`xcm_debias.gemm.product_workers`, the cores the product's library would use), of
    nearly equal size; worker ``w`` takes blocks ``w, w + workers, …`` with one
    :class:`TileProducts` of its own, and every product runs single-threaded
    (:func:`xcm_debias.gemm.one_thread_per_product`, :func:`xcm_debias.gemm.single_thread_here`).
    Each worker thus does its blocks' products *and* their bookkeeping on its own core: at
    200k × 2000 the running top-k on one thread, while the other cores waited, was most of what
    the search cost beyond its products. Tiles are visited in order: with :meth:`run`, every
    worker finishes a tile before the next one is read (a streamed gallery may reuse its
    buffer); with :meth:`run_passes`, each worker reads its own pass over a gallery in memory
    and never waits for another. BLAS results may differ in the last bit between product
    shapes or thread counts, so every function that scores a gallery tile by tile
    (:func:`tile_topk`, :func:`tile_ranks`, :func:`blockwise_ranks`) cuts and runs the queries
    this way: a pair's score is the same in all of them.
    """

    def __init__(self, n_queries: int, block_size: int, columns: int) -> None:
        self.workers = gemm.product_workers()
        count = -(-n_queries // block_size)
        count = min(max(n_queries, 1), -(-count // self.workers) * self.workers)
        edges = np.linspace(0, n_queries, count + 1).round().astype(np.int64)
        self.rows = [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]
        height = max((r.stop - r.start for r in self.rows), default=0)
        self._products = [TileProducts(height, columns) for _ in range(self.workers)]

    def run_passes(
        self, passes: Callable[[], Iterable[tuple[int, torch.Tensor]]], visit: Visit
    ) -> None:
        """``visit`` every block with every ``(g0, tile)`` of a pass over the gallery, each worker
        reading its own pass (``passes()`` starts one; passes must be safe to read at once, e.g.
        slices of a tensor in memory). No worker waits for another between tiles: on a shared
        machine the blocks of one tile do not finish together, and waiting for the slower one at
        every tile cost about 3% of the 200k × 2000 search. The products are those of
        :meth:`run`, so are the scores."""
        if self.workers == 1:
            self.run(passes(), visit)
            return

        def work(worker: int) -> None:
            for g0, tile in passes():
                self._visit_blocks(worker, g0, tile, visit)

        gemm.run_on_workers(self.workers, work, "xcm-tiles")

    def run(self, tiles: Iterable[tuple[int, torch.Tensor]], visit: Visit) -> None:
        """``visit`` every block with every ``(g0, tile)`` of ``tiles``, tile after tile (every
        worker finishes a tile before the next is read, so a caller may reuse its buffer)."""
        if self.workers == 1:
            for g0, tile in tiles:
                self._visit_blocks(0, g0, tile, visit)
            return
        # the limit covers the products only: the caller's tiles (e.g. the score stages of a
        # streamed search) are prepared between them with the BLAS's usual threads
        workers = range(self.workers)
        # the pool's threads start at the first tile, inside the limit: single-threaded
        with ThreadPoolExecutor(
            self.workers, thread_name_prefix="xcm-tiles", initializer=gemm.single_thread_here
        ) as pool:
            for g0, tile in tiles:
                with gemm.one_thread_per_product(self.workers):
                    visits = pool.map(
                        self._visit_blocks, workers, repeat(g0), repeat(tile), repeat(visit)
                    )
                    list(visits)

    def _visit_blocks(self, worker: int, g0: int, tile: torch.Tensor, visit: Visit) -> None:
        """``visit`` each of ``worker``'s blocks with the tile ``(g0, tile)``."""
        for block in range(worker, len(self.rows), self.workers):
            visit(block, self.rows[block], self._products[worker], g0, tile)


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


class RunningTopK:
    """Best-so-far top-``k`` lists of ``Q`` queries, fed tile by tile in gallery order.

    ``push(q0, scores, g0)`` takes the float32 products of queries ``q0 ..`` with gallery rows
    ``g0 ..``; the tiles of each query row must come in increasing gallery order (every row of a
    later tile has a higher index), which makes ties exact: a new score equal to a kept one comes
    from a higher index, so it ranks after it. Once the lists are full, a tile costs one
    comparison with each query's current ``k``-th score: only the few entries above it (about
    ``k·tile/N`` per query for a gallery in random order) are merged, by sorting them with the
    lists they enter. A tile with more than ``k`` entries per query above the bar (a gallery
    sorted by score) takes each touched query's exact tile top-``k`` instead. Memory:
    ``Q × k`` scores and indices plus one boolean tile.
    """

    def __init__(self, n_queries: int, k: int) -> None:
        self.k = k
        self.values = torch.empty(n_queries, k, dtype=torch.float32)
        self.indices = torch.empty(n_queries, k, dtype=torch.int64)
        # the per-tile bookkeeping runs in numpy (one thread, no OpenMP region): torch's small
        # parallel ops wait for a core that OpenBLAS's worker still spins on after the product
        self._values, self._indices = self.values.numpy(), self.indices.numpy()
        self._mask = np.empty(0, dtype=bool)

    def push(self, q0: int, scores: torch.Tensor, g0: int) -> None:
        """Merge the tile ``scores`` (``[rows, cols]``: queries ``q0 ..``, gallery ``g0 ..``)."""
        kept = min(self.k, g0)  # the lists hold the top of rows 0 .. g0 - 1
        if kept < self.k:  # still filling: every query takes the tile's top-k
            self._merge_rows(torch.arange(scores.shape[0]), q0, scores, g0, kept)
            return
        tile = scores.numpy()
        kth = self._values[q0 : q0 + tile.shape[0], -1]
        rows = np.flatnonzero(tile.max(axis=1) > kth)
        if len(rows) == 0:
            return
        if len(rows) < tile.shape[0]:
            tile, kth = tile[rows], kth[rows]
        if self._mask.size < tile.size:
            self._mask = np.empty(tile.size, dtype=bool)
        above = self._mask[: tile.size].reshape(tile.shape)
        np.greater(tile, kth[:, None], out=above)
        flat = np.flatnonzero(above)
        if len(flat) > self.k * tile.shape[0]:  # many entries above the bar: exact tile top-k
            self._merge_rows(torch.from_numpy(rows), q0, torch.from_numpy(tile), g0, kept)
            return
        local, cols = np.divmod(flat, tile.shape[1])
        self._merge_entries(rows[local] + q0, tile.reshape(-1)[flat], cols + g0)

    def _merge_rows(
        self, rows: torch.Tensor, q0: int, scores: torch.Tensor, g0: int, kept: int
    ) -> None:
        """Lists of queries ``q0 + rows`` merged with their exact top-``k`` of ``scores`` (the
        tile's rows of those queries, in the order of ``rows``)."""
        width = min(self.k, kept + scores.shape[1])
        v, i = _block_topk(scores, width)
        at = rows + q0
        if kept == 0:
            self.values[at, :width], self.indices[at, :width] = v, i + g0
            return
        cand_v = torch.cat([self.values[at, :kept], v], dim=1)
        cand_i = torch.cat([self.indices[at, :kept], i + g0], dim=1)
        order = torch.sort(cand_v, dim=1, descending=True, stable=True).indices[:, :width]
        self.values[at, :width] = torch.gather(cand_v, 1, order)
        self.indices[at, :width] = torch.gather(cand_i, 1, order)

    def _merge_entries(self, rows: np.ndarray, values: np.ndarray, index: np.ndarray) -> None:
        """Full lists of queries ``rows`` (ascending, repeated per entry) merged with the new
        entries ``(values, index)``; every new index exceeds every kept one."""
        starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
        touched, counts = rows[starts], np.diff(np.r_[starts, len(rows)])
        k, t = self.k, len(touched)
        owner = np.concatenate([np.repeat(np.arange(t), k), np.repeat(np.arange(t), counts)])
        entry_v = np.concatenate([self._values[touched].ravel(), values])
        entry_i = np.concatenate([self._indices[touched].ravel(), index])
        # by query, then score descending; lexsort is stable, so equal scores keep the kept
        # entries (in index order) first and the new ones (in index order) after them
        order = np.lexsort((-entry_v, owner))
        sizes = counts + k
        position = np.arange(len(order)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        keep = order[position < k]
        self._values[touched] = entry_v[keep].reshape(t, k)
        self._indices[touched] = entry_i[keep].reshape(t, k)


def tile_topk(
    queries: torch.Tensor,
    tiles: Iterable[tuple[int, torch.Tensor]] | Callable[[], Iterable[tuple[int, torch.Tensor]]],
    n_rows: int,
    k: int,
    block_size: int = 4096,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` rows of a gallery that arrives as ``(start_row, rows)`` tiles, by inner product.

    ``queries``: ``[Q, D]`` float32. ``tiles``: consecutive float32 blocks of the ``n_rows``
    gallery rows, in order (each is used while the next is prepared, so a caller may reuse one
    buffer for all); or a function starting a pass over them, which parallel workers then read
    each on its own (:meth:`QueryBlocks.run_passes`: only for passes that can be read at once,
    such as slices of a gallery in memory). A tile larger than ``block_size`` rows is cut into
    ``block_size`` columns at multiples of ``block_size`` of the gallery index; each is scored
    against the queries in blocks of at most ``block_size`` rows (:class:`QueryBlocks`: one
    single-threaded product per core at once) and folded into each block's
    :class:`RunningTopK`. Ties by lower index.
    Returns ``(indices int64 [Q, k'], scores float32 [Q, k'])`` with ``k' = min(k, n_rows)``.
    Memory: ``Q × k`` plus one ``block_size²`` product tile per worker.
    """
    kk = min(k, n_rows)
    blocks = QueryBlocks(queries.shape[0], block_size, block_size)
    tops = [RunningTopK(r.stop - r.start, kk) for r in blocks.rows]

    def visit(block: int, rows: slice, products: TileProducts, g0: int, tile: torch.Tensor) -> None:
        tops[block].push(0, products(queries[rows], tile), g0)

    if callable(tiles):
        blocks.run_passes(lambda: _checked_tiles(tiles(), n_rows, block_size), visit)
    else:
        blocks.run(_checked_tiles(tiles, n_rows, block_size), visit)
    return torch.cat([t.indices for t in tops]), torch.cat([t.values for t in tops])


def _checked_tiles(
    tiles: Iterable[tuple[int, torch.Tensor]], n_rows: int, block_size: int
) -> Iterator[tuple[int, torch.Tensor]]:
    """``tiles`` checked to be consecutive and to cover ``n_rows`` rows, each cut into
    ``block_size`` rows (at multiples of ``block_size`` from its start)."""
    expected = 0
    for g0, rows in tiles:
        if g0 != expected:
            raise ValueError(f"tiles: expected the tile starting at row {expected}, got {g0}")
        expected = g0 + rows.shape[0]
        if expected > n_rows:
            raise ValueError(f"tiles: expected {n_rows} gallery rows, got at least {expected}")
        for c0 in range(0, rows.shape[0], block_size):
            yield g0 + c0, rows[c0 : c0 + block_size]
    if expected != n_rows:
        raise ValueError(f"tiles: expected {n_rows} gallery rows, got {expected}")


def tile_ranks(
    queries: torch.Tensor,
    tiles: Callable[[], Iterable[tuple[int, torch.Tensor]]],
    n_rows: int,
    targets: torch.Tensor,
    block_size: int = 4096,
) -> torch.Tensor:
    """1-based rank of gallery row ``targets[i]`` for query i, from a gallery read twice as
    tiles (``tiles()`` starts a fresh pass; :func:`tile_topk`'s tiles): rows scoring higher,
    plus rows scoring equal with a lower index, plus one. Each score comes from the same tile
    product as in :func:`tile_topk`, so the ranks agree with its rankings. Memory O(Q + block²).
    """
    t = as_gallery_indices(integral_targets(targets), "targets", queries.shape[0], n_rows)
    return _tile_ranks(
        queries, lambda: _checked_tiles(tiles(), n_rows, block_size), t, block_size, block_size
    )


def _tile_ranks(
    q: torch.Tensor,
    tiles: Callable[[], Iterable[tuple[int, torch.Tensor]]],
    t: torch.Tensor,
    block_size: int,
    columns: int,
    groups: DuplicateRows | None = None,
    row_targets: torch.Tensor | None = None,
    concurrent: bool = False,
) -> torch.Tensor:
    """The two passes of :func:`tile_ranks` and :func:`blockwise_ranks` over ``tiles()`` (tiles
    of at most ``columns`` rows): ``t`` is each query's target tile row (its group's distinct
    row with ``groups``, whose members ``row_targets`` rank by index among equal rows). With
    ``concurrent`` (passes that can be read at once), each worker reads its own passes
    (:meth:`QueryBlocks.run_passes`)."""
    blocks = QueryBlocks(q.shape[0], block_size, columns)
    target_scores = torch.empty(q.shape[0], dtype=torch.float32)
    ranks = torch.ones(q.shape[0], dtype=torch.int64)

    # pass 1: each target's score, computed by the same tile product that pass 2 compares it with
    def find(block: int, rows: slice, products: TileProducts, g0: int, tile: torch.Tensor) -> None:
        tb = t[rows]
        inside = ((tb >= g0) & (tb < g0 + tile.shape[0])).nonzero().flatten()
        if len(inside):
            scores = products(q[rows], tile)
            target_scores[rows][inside] = scores[inside, tb[inside] - g0]

    # pass 2: count the rows ahead of the target (higher score, or equal with a lower index)
    def count(block: int, rows: slice, products: TileProducts, g0: int, tile: torch.Tensor) -> None:
        scores = products(q[rows], tile)
        ts, ti = target_scores[rows, None], t[rows, None]
        if groups is None:
            cols = torch.arange(g0, g0 + scores.shape[1])[None, :]
            ranks[rows] += ((scores > ts) | ((scores == ts) & (cols < ti))).sum(dim=1)
            return
        sizes = groups.sizes[g0 : g0 + scores.shape[1]]
        ranks[rows] += torch.where(scores > ts, sizes, 0).sum(dim=1)
        tied_q, tied_c = (scores == ts).nonzero(as_tuple=True)
        if len(tied_q):
            ahead = rows_ahead_in_groups(groups, rows.start + tied_q, tied_c + g0, row_targets)
            ranks.index_add_(0, rows.start + tied_q, ahead)

    for visit in (find, count):
        if concurrent:
            blocks.run_passes(tiles, visit)
        else:
            blocks.run(tiles(), visit)
    return ranks


def merge_topk(
    parts: Sequence[tuple[torch.Tensor, torch.Tensor]], k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The exact top-``k`` of a gallery from the top-``k`` lists of its consecutive parts.

    ``parts``: ``(indices [Q, k_i], scores [Q, k_i])`` per part, in gallery order, indices
    global, each list best first with ties by lower index (what :func:`tile_topk` returns).
    Every index of a later part exceeds every index of an earlier one, so a stable descending
    sort of the concatenated lists keeps equal scores in increasing index order.
    """
    indices = torch.cat([torch.as_tensor(i, dtype=torch.int64) for i, _ in parts], dim=1)
    scores = torch.cat([torch.as_tensor(v, dtype=torch.float32) for _, v in parts], dim=1)
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]
    return torch.gather(indices, 1, order), torch.gather(scores, 1, order)


def row_tiles(
    x: torch.Tensor, block_size: int, prepare: Callable[[torch.Tensor], torch.Tensor] | None = None
) -> Iterator[tuple[int, torch.Tensor]]:
    """``(start, prepare(x[start : start + block_size]))`` for consecutive row blocks of ``x``
    (the rows as they are when ``prepare`` is None)."""
    for start in range(0, x.shape[0], block_size):
        part = x[start : start + block_size]
        yield start, part if prepare is None else prepare(part)


def blockwise_topk(
    queries: torch.Tensor, gallery: torch.Tensor, k: int, block_size: int = 4096
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k gallery rows per query by inner product.

    Returns ``(indices int64 [Q, k']``, scores float32 [Q, k']) with ``k' = min(k, N)``.
    """
    q = as_float_matrix(queries, "queries")
    g = as_float_matrix(gallery, "gallery")
    k = check_positive_int(k, "k")
    block = check_positive_int(block_size, "block_size")
    if q.shape[1] != g.shape[1]:
        raise ValueError(f"gallery: expected dimension {q.shape[1]} (as queries), got {g.shape[1]}")
    return tile_topk(q.float(), lambda: row_tiles(g, block, _as_float32), g.shape[0], k, block)


def _as_float32(x: torch.Tensor) -> torch.Tensor:
    return x.float()


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
    return _tile_ranks(
        q,
        lambda: row_tiles(g, block),
        t,
        block,
        min(block, g.shape[0]),
        groups,
        row_targets,
        concurrent=True,
    )


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
