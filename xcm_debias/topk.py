"""Blockwise inner-product top-k and rank counting: memory O((Q + N)·k + block²).

Neither function ever holds the full ``Q × N`` score matrix: queries and gallery are visited
in ``block_size`` tiles, scores accumulate in float32 whatever the input dtype, and ties are
broken by the lower gallery index (the order a stable dense argsort gives).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext

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


#: how a tile becomes the float32 rows to score: ``prepare(rows, out)`` writes them into ``out``
Prepare = Callable[[torch.Tensor, torch.Tensor], object]

#: what a worker does with one query block and one gallery tile:
#: ``visit(block, rows, products, g0, tile)`` with ``rows`` the block's query rows (a slice)
Visit = Callable[[int, slice, TileProducts, int, torch.Tensor], None]


class _Lanes:
    """One queue of tiles per worker, and how many tiles each worker has finished.

    :meth:`QueryBlocks.run` puts every tile in every lane; each worker takes its own lane's
    tiles in order (:meth:`tiles`). A worker that fails stops taking tiles and the caller
    stops waiting (:meth:`fail`, then :meth:`wait_done` returns False); its error reaches the
    caller through the worker's future.
    """

    def __init__(self, workers: int) -> None:
        self._queues: list[queue.SimpleQueue[tuple[int, torch.Tensor] | None]] = [
            queue.SimpleQueue() for _ in range(workers)
        ]
        self._done = [0] * workers
        self._prepared = [0] * workers
        self._failed = False
        self._changed = threading.Condition()

    def put(self, g0: int, tile: torch.Tensor) -> None:
        for lane in self._queues:
            lane.put((g0, tile))

    def close(self) -> None:
        """No more tiles: each worker stops after the ones in its lane."""
        for lane in self._queues:
            lane.put(None)

    def wait_done(self, tiles: int) -> bool:
        """Wait until every worker has finished ``tiles`` tiles; False if one failed."""
        with self._changed:
            self._changed.wait_for(lambda: self._failed or min(self._done) >= tiles)
            return not self._failed

    def tiles(self, worker: int) -> Iterator[tuple[int, torch.Tensor]]:
        """The tiles of ``worker``'s lane, in order, each counted as finished when the worker
        asks for the next."""
        while (item := self._queues[worker].get()) is not None:
            yield item
            with self._changed:
                self._done[worker] += 1
                self._changed.notify_all()

    def prepared(self, worker: int, tiles: int) -> bool:
        """``worker`` has prepared its share of ``tiles`` tiles: wait until every worker has;
        False if one failed."""
        with self._changed:
            self._prepared[worker] = tiles
            self._changed.notify_all()
            self._changed.wait_for(lambda: self._failed or min(self._prepared) >= tiles)
            return not self._failed

    def fail(self) -> None:
        """A worker failed: the caller stops waiting."""
        with self._changed:
            self._failed = True
            self._changed.notify_all()


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

    def __init__(
        self, n_queries: int, block_size: int, columns: int, dim: int | None = None
    ) -> None:
        self.workers = gemm.product_workers()
        count = -(-n_queries // block_size)
        count = min(max(n_queries, 1), -(-count // self.workers) * self.workers)
        edges = np.linspace(0, n_queries, count + 1).round().astype(np.int64)
        self.rows = [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]
        height = max((r.stop - r.start for r in self.rows), default=0)
        self._products = [TileProducts(height, columns) for _ in range(self.workers)]
        self._columns, self._dim = columns, dim
        self._buffers: list[torch.Tensor] = []  # prepared tiles (run with prepare)

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

    def run(
        self,
        tiles: Iterable[tuple[int, torch.Tensor]],
        visit: Visit,
        window: int = 1,
        prepare: Prepare | None = None,
    ) -> None:
        """``visit`` every block with every ``(g0, tile)`` of ``tiles``, in tile order.

        ``window`` says how long ``tiles`` keeps a yielded tile as it is: 1, until the next one
        is asked for (every worker finishes a tile before the next is read, so a caller may
        reuse one buffer, and prepares each tile with the BLAS's usual threads while the
        workers wait); 2, until the one after next is asked for (a source with three buffers,
        such as :meth:`xcm_debias.shards.ShardedGallery.tiles`): the next tile is then read
        while the workers multiply, and a worker may start a tile while another finishes the
        one before. Each worker takes its tiles in order from a queue of its own.

        With ``prepare`` (and ``dim`` given to the constructor), each tile as it comes (anything
        with ``len`` that slices by rows: a tensor, or a ``range`` of rows that ``prepare``
        reads) is turned into the float32 rows to score by ``prepare(rows, out)`` (writing
        ``rows``, prepared, into the float32 ``[len(rows), dim]`` ``out``), each worker
        preparing an equal share of its rows into a buffer all of them then read. The workers
        wait for each other's shares (one short wait per tile), and no thread besides them
        competes for the cores: on the 2-core benchmark machine, a thread reading and
        converting float16 tiles beside the two workers cost a fifth of the search's time,
        although its own work was a tenth of it.
        """
        if window not in (1, 2):
            raise ValueError(f"window: expected 1 or 2, got {window!r}")
        if prepare is not None:
            if self._dim is None:
                raise ValueError("prepare: needs the dimension of the rows (QueryBlocks(dim=...))")
            self._buffers = [torch.empty(self._columns, self._dim) for _ in range(2)]
        lanes = _Lanes(self.workers)
        if self.workers == 1:
            for g0, tile in tiles:
                self._visit_blocks(0, g0, self._share(0, 0, tile, prepare), visit)
            return
        # with window 2 the limit covers the whole run (tiles are read beside the products);
        # with window 1 only the products: the caller's tiles (e.g. the score stages of a
        # streamed search) are prepared between them with the BLAS's usual threads
        whole_run = gemm.one_thread_per_product(self.workers) if window == 2 else nullcontext()
        with (
            whole_run,
            ThreadPoolExecutor(self.workers, thread_name_prefix="xcm-tiles") as pool,
        ):
            drains = [
                pool.submit(self._drain, w, lanes, visit, prepare) for w in range(self.workers)
            ]
            try:
                for i, (g0, tile) in enumerate(tiles):
                    per_tile = gemm.one_thread_per_product(self.workers)
                    with per_tile if window == 1 else nullcontext():
                        lanes.put(g0, tile)
                        # before tile i + 1 is asked for, tile i + 1 - window must be done
                        if not lanes.wait_done(i + 2 - window):
                            break
            finally:
                lanes.close()
            for drain in drains:
                drain.result()

    def _drain(self, worker: int, lanes: _Lanes, visit: Visit, prepare: Prepare | None) -> None:
        """Worker ``worker``'s loop: its blocks visited with each tile of its lane, in order,
        single-threaded (this thread's own OpenMP count, :func:`gemm.one_openmp_thread_here`)."""
        gemm.one_openmp_thread_here()
        try:
            for i, (g0, tile) in enumerate(lanes.tiles(worker)):
                rows = self._share(worker, i, tile, prepare)
                # every share must be there first; if another worker failed, its error
                # reaches the caller
                if prepare is not None and not lanes.prepared(worker, i + 1):
                    return
                self._visit_blocks(worker, g0, rows, visit)
        except BaseException:
            lanes.fail()
            raise

    def _share(
        self, worker: int, i: int, tile: torch.Tensor, prepare: Prepare | None
    ) -> torch.Tensor:
        """Tile ``i`` as scored: ``tile`` itself without ``prepare``; else the buffer ``i % 2``
        into which ``worker`` has just prepared its share of the rows (the whole buffer is ready
        once every worker has). Two buffers suffice: a worker starts preparing tile ``i + 1``
        only after the others have prepared tile ``i``, so after they have finished scoring
        tile ``i - 1``."""
        if prepare is None:
            return tile
        out = self._buffers[i % 2][: len(tile)]
        lo, hi = (len(tile) * w // self.workers for w in (worker, worker + 1))
        prepare(tile[lo:hi], out[lo:hi])
        return out

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
        # parallel ops wait for a core that OpenBLAS's worker still spins on after the product.
        # The row max is torch's: in the workers it runs single-threaded, and with one worker
        # numpy's BLAS is single-threaded (no spinning thread) or the product is torch's own
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
        # torch's row max: 0.16 ms against numpy's 0.24 on a 500 × 2048 tile fresh from its
        # product (single-threaded in the workers, whose OpenMP count is one)
        rows = np.flatnonzero(torch.amax(scores, dim=1).numpy() > kth)
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
    window: int = 1,
    prepare: Prepare | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` rows of a gallery that arrives as ``(start_row, rows)`` tiles, by inner product.

    ``queries``: ``[Q, D]`` float32. ``tiles``: consecutive float32 blocks of the ``n_rows``
    gallery rows, in order, each kept as it is until the next is asked for (``window`` 1: a
    caller may reuse one buffer for all) or until the one after next (``window`` 2: the next
    tile is then read while the current one is scored, :meth:`QueryBlocks.run`); or a function
    starting a pass over them, which parallel workers then read each on its own
    (:meth:`QueryBlocks.run_passes`: only for passes that can be read at once, such as slices
    of a gallery in memory; ``window`` and ``prepare`` are then unused). With ``prepare``, a
    tile may be anything that has rows and slices by them (a tensor of any dtype, or a
    ``range`` of gallery rows that ``prepare`` reads itself): the workers turn each into float32
    rows by ``prepare(rows, out)``, each an equal share of its rows (:meth:`QueryBlocks.run`). A tile larger than ``block_size`` rows is cut into
    ``block_size`` columns at multiples of ``block_size`` of the gallery index; each is scored
    against the queries in blocks of at most ``block_size`` rows (:class:`QueryBlocks`: one
    single-threaded product per core at once) and folded into each block's
    :class:`RunningTopK`. Ties by lower index.
    Returns ``(indices int64 [Q, k'], scores float32 [Q, k'])`` with ``k' = min(k, n_rows)``.
    Memory: ``Q × k`` plus one ``block_size²`` product tile per worker (and two prepared tiles
    with ``prepare``).
    """
    kk = min(k, n_rows)
    blocks = QueryBlocks(queries.shape[0], block_size, block_size, queries.shape[1])
    tops = [RunningTopK(r.stop - r.start, kk) for r in blocks.rows]

    def visit(block: int, rows: slice, products: TileProducts, g0: int, tile: torch.Tensor) -> None:
        tops[block].push(0, products(queries[rows], tile), g0)

    if callable(tiles):
        blocks.run_passes(lambda: _checked_tiles(tiles(), n_rows, block_size), visit)
    else:
        blocks.run(_checked_tiles(tiles, n_rows, block_size), visit, window, prepare)
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
        expected = g0 + len(rows)
        if expected > n_rows:
            raise ValueError(f"tiles: expected {n_rows} gallery rows, got at least {expected}")
        for c0 in range(0, len(rows), block_size):
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
