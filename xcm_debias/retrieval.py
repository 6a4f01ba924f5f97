"""Retrievers: the ``Retriever`` protocol, the ``Ranking`` it returns, and ``ExactRetriever``."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from xcm_debias._validation import check_positive_int
from xcm_debias.data import EmbeddingSet
from xcm_debias.plain_vectors import PlainOrSet, as_vectors
from xcm_debias.safe_norm import cosine_rows
from xcm_debias.shards import ShardedGallery
from xcm_debias.ties import duplicate_rows, expand_topk
from xcm_debias.topk import blockwise_ranks, row_tiles, tile_topk


@dataclass(frozen=True)
class Ranking:
    """Top-k results of a search.

    Attributes:
        indices: ``[Q, k]`` int64 gallery row indices, best first.
        scores: ``[Q, k]`` float32 scores of those rows (higher is better).
    """

    indices: torch.Tensor
    scores: torch.Tensor

    def __post_init__(self) -> None:
        if not isinstance(self.indices, torch.Tensor) or not isinstance(self.scores, torch.Tensor):
            raise TypeError("Ranking: expected torch tensors for indices and scores")
        if self.indices.ndim != 2:
            raise ValueError(
                f"Ranking.indices: expected shape [Q, k], got {tuple(self.indices.shape)}"
            )
        if self.indices.shape != self.scores.shape:
            raise ValueError(
                f"Ranking.scores: expected shape {tuple(self.indices.shape)} (as indices), "
                f"got {tuple(self.scores.shape)}"
            )
        if self.indices.dtype not in (torch.int64, torch.int32):
            raise TypeError(
                f"Ranking.indices: expected an integer tensor, got {self.indices.dtype}"
            )

    @property
    def k(self) -> int:
        return int(self.indices.shape[1])

    def __len__(self) -> int:
        return int(self.indices.shape[0])


@runtime_checkable
class Retriever(Protocol):
    """Anything that ranks a gallery for each query.

    ``search`` is the one method every retriever has. A retriever may cache an index of a
    gallery it has seen. Retrievers that can rank the whole gallery cheaply also offer
    ``rank_of(queries, gallery, targets) -> LongTensor [Q]`` (1-based rank of gallery row
    ``targets[i]`` for query i); metrics fall back to ``search`` with a large k otherwise.
    """

    def search(self, queries: EmbeddingSet, gallery: EmbeddingSet, k: int) -> Ranking: ...


def query_gallery_vectors(queries: object, gallery: object) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows of both sides (EmbeddingSets or plain vectors), of one dimension."""
    q, g = as_vectors(queries, "queries"), as_vectors(gallery, "gallery")
    if q.shape[1] != g.shape[1]:
        raise ValueError(f"gallery: expected dimension {q.shape[1]} (as queries), got {g.shape[1]}")
    return q, g


class ExactRetriever:
    """Exact inner-product (cosine, on normalised rows) retrieval, tile by tile.

    Scores are ``q · g`` in float32; the ``Q × N`` matrix is never formed: the gallery is read
    in ``block_size``-row tiles, each scored against the queries in blocks of at most
    ``block_size`` rows, one single-threaded product per core at once, and a running top-k per
    query keeps the best (:func:`xcm_debias.topk.tile_topk`), so memory is
    O(Q·k + cores·block_size²) besides the inputs. Ties are broken by the lower gallery index, and
    equal gallery rows always tie (each distinct row is scored once), so rankings do not
    depend on ``block_size``. Queries and gallery may be EmbeddingSets or plain ``[N, D]``
    numpy arrays / torch tensors.

    With ``normalize`` (cosine), each gallery tile is checked for unit rows as it is read:
    rows already of unit norm (within about 1e-6, :func:`xcm_debias.safe_norm.cosine_rows`)
    are scored as they are, others are normalised in the tile (safely, for any finite
    magnitude), so no normalised copy of the gallery is made. A float16 or bfloat16 gallery
    is read as it is stored and converted tile by tile, its products accumulated in float32:
    the ranking is exactly that of the float32 search of the same (rounded) rows, at half the
    gallery memory; against the float32 rows it was rounded from, scores move by at most
    ``2⁻¹¹·|q|·|g|`` (float16; ``2⁻⁸`` for bfloat16), so only pairs closer than that can swap.

    The products go through the fastest float32 GEMM at hand (:mod:`xcm_debias.gemm`):
    oneDNN's AVX-512 kernels inside torch on a CPU that has them, numpy's OpenBLAS otherwise.
    Which one ran changes a score by float32 rounding at most, never a ranking beyond rows
    closer than that.

    Args:
        block_size: tile edge (rows of queries and of gallery per product). With the default
            2048, a product tile (at most 16 MiB of float32) is still in cache when the running
            top-k reads it: at 1M × 10k on the 2-core benchmark machine, 4096-row tiles took
            41 s and 2048-row ones 30–35 s (1024: 33 s; numpy's OpenBLAS was as fast with
            either).
        normalize: score unit rows (cosine similarity); raw inner products otherwise.
    """

    def __init__(self, block_size: int = 2048, normalize: bool = True) -> None:
        self.block_size = check_positive_int(block_size, "block_size")
        self.normalize = bool(normalize)

    def __repr__(self) -> str:
        return f"ExactRetriever(block_size={self.block_size}, normalize={self.normalize})"

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Rows as they are scored: float32, unit rows when ``normalize``."""
        return cosine_rows(x) if self.normalize else x.float()

    def _prepare_into(self, x: torch.Tensor, out: torch.Tensor) -> None:
        """:meth:`_prepare`'s rows written into the float32 ``out``."""
        if self.normalize:
            cosine_rows(x, out=out)
        else:
            out.copy_(x)

    def search(self, queries: PlainOrSet, gallery: PlainOrSet | ShardedGallery, k: int) -> Ranking:
        """Top-``k`` gallery rows for each query (``k`` capped at the gallery size).

        Equal gallery rows score equally and come by lower index, whatever ``block_size``
        (each distinct row is scored once, see :mod:`xcm_debias.ties`). ``gallery`` may also
        be a :class:`~xcm_debias.shards.ShardedGallery` on disk, streamed tile by tile.
        """
        if isinstance(gallery, ShardedGallery):
            return self._search_shards(queries, gallery, k)
        q, g = query_gallery_vectors(queries, gallery)
        k = check_positive_int(k, "k")
        groups = duplicate_rows(g)
        distinct = g if groups is None else g[groups.first]

        def tiles() -> Iterator[tuple[int, torch.Tensor]]:  # one pass per worker (in memory)
            return row_tiles(distinct, self.block_size, self._prepare)

        idx, scores = tile_topk(self._prepare(q), tiles, len(distinct), k, self.block_size)
        if groups is not None:
            idx, scores = expand_topk(groups, idx, scores, k)
        return Ranking(indices=idx, scores=scores)

    def _search_shards(self, queries: PlainOrSet, gallery: ShardedGallery, k: int) -> Ranking:
        """The search over shards on disk: the same tiles as the in-memory search of the
        concatenated rows, each read and prepared by the product workers (a share of its rows
        each) from the page cache the kernel fills two tiles ahead.

        Duplicate rows are not grouped here (that needs the whole gallery at once): equal rows
        still tie when their tile products agree, which BLAS gives for rows of full tiles.
        """
        q = as_vectors(queries, "queries")
        if q.shape[1] != gallery.dim:
            raise ValueError(
                f"gallery: expected dimension {q.shape[1]} (as queries), got {gallery.dim}"
            )
        k = check_positive_int(k, "k")
        scratch = threading.local()  # each worker's stored-dtype rows of its share

        def read_and_prepare(rows: range, out: torch.Tensor) -> None:
            if getattr(scratch, "rows", None) is None:
                scratch.rows = np.empty((self.block_size, gallery.dim), dtype=gallery.dtype)
            part = gallery.read(rows.start, rows.stop, scratch.rows[: len(rows)])
            self._prepare_into(torch.from_numpy(part), out)

        # the product workers read, convert and check each tile, a share of its rows each, from
        # the page cache the kernel fills ahead of them (no thread beside them takes a core)
        idx, scores = tile_topk(
            self._prepare(q),
            gallery.row_ranges(self.block_size),
            gallery.n_rows,
            k,
            self.block_size,
            window=2,
            prepare=read_and_prepare,
        )
        return Ranking(indices=idx, scores=scores)

    def rank_of(
        self, queries: PlainOrSet, gallery: PlainOrSet, targets: torch.Tensor | np.ndarray
    ) -> torch.Tensor:
        """1-based rank of gallery row ``targets[i]`` in query i's full ranking (blockwise;
        the order of ``search``: ties, equal rows included, by lower index)."""
        q, g = query_gallery_vectors(queries, gallery)
        groups = duplicate_rows(g)
        return blockwise_ranks(
            self._prepare(q),
            self._prepare(g if groups is None else g[groups.first]),
            torch.as_tensor(targets),
            self.block_size,
            groups,
        )
