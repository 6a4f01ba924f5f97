"""Debiased search without gallery copies: every stage applied tile by tile inside the search.

The offset reduction (:mod:`xcm_debias.scored_search`) hands any retriever equal-norm vectors
``[g, v(g), pad] / R``: that needs the processed gallery, its normalised copy and the index
vectors in memory at once — three copies of the gallery besides the caller's, which put a 2M
gallery out of a 24 GB machine's reach. Under an exact search the reduction is not needed: the
score ``q·g + u(q)·v(g)`` is the inner product of ``[q, u(q)]`` with ``[g, v(g)]``, which a
running top-k takes tile by tile. So here, for each tile of ``block_size`` gallery rows:

1. the rows go through the fitted processors (``Debiased.transform``: row-wise, labels inferred
   where missing) and are L2-normalised;
2. each score stage appends its gallery columns ``v(g)``;
3. ``[g, v(g)]`` is scored against the queries' ``[q, u(q)]`` and folded into the running top-k
   (:func:`xcm_debias.topk.tile_topk`).

The gallery columns (``a`` numbers per row, a few bytes against ``4·D`` for the row) come from a
first pass and are kept, since query columns may read them; the search is the second pass. Extra
memory is O(tile + N·a + Q·k), not O(N·D). The gallery may be an EmbeddingSet or a
:class:`~xcm_debias.shards.ShardedGallery` on disk (unlabelled rows of one modality: labels the
stages need are inferred by the pipeline's label models).

Stages whose gallery columns depend on the whole gallery are not tile-wise: a gated stage
(QB-Norm's activation set is the gallery rows in some bank query's top-k, and its query column
needs each query's raw top-1) keeps the offset reduction. Scores are in score units, as the
reduction returns them; the two agree up to float32 rounding (the reduction divides by ``R`` and
multiplies back), so only rows closer than that can swap. Duplicate rows are not grouped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Protocol

import numpy as np
import torch

from xcm_debias.data import EmbeddingSet
from xcm_debias.fitted import NotFittedError
from xcm_debias.gallery_cache import GalleryCache
from xcm_debias.plain_vectors import PlainOrSet, as_embedding_set
from xcm_debias.retrieval import ExactRetriever, Ranking, Retriever
from xcm_debias.scored_search import unit_float32_rows
from xcm_debias.scoring.base import GalleryColumns, ScoredRows, ScoreNormalizer
from xcm_debias.shards import ShardedGallery
from xcm_debias.topk import tile_ranks, tile_topk

Transform = Callable[[EmbeddingSet], EmbeddingSet]
Gallery = EmbeddingSet | ShardedGallery


def tile_wise(retriever: object, scorers: Sequence[ScoreNormalizer]) -> bool:
    """True when the search can run tile by tile: an exact retriever and no stage whose
    gallery columns need the whole gallery (a gated stage, translation pooling)."""
    return isinstance(retriever, ExactRetriever) and not any(s.needs_whole_gallery for s in scorers)


@dataclass(frozen=True)
class StreamedColumns:
    """The gallery columns of every score stage (``[N, a_s]`` each), from one tile pass."""

    columns: list[torch.Tensor]
    n_rows: int

    @property
    def all(self) -> torch.Tensor:
        """``[N, Σ a_s]``: the columns a gallery row carries into the product."""
        return torch.cat([torch.zeros(self.n_rows, 0), *self.columns], dim=1)


def gallery_tiles(
    gallery: Gallery, block_size: int, modality: str = "image"
) -> Iterator[tuple[int, EmbeddingSet]]:
    """``(start, rows)`` of consecutive ``block_size``-row tiles, as EmbeddingSets (a shard
    tile becomes unlabelled rows of ``modality``)."""
    if isinstance(gallery, ShardedGallery):
        for start, rows in gallery.tiles(block_size):
            yield start, EmbeddingSet(rows.clone(), modality=modality)
        return
    for start in range(0, len(gallery), block_size):
        yield start, gallery[start : start + block_size]


def _unit_rows(transform: Transform, tile: EmbeddingSet) -> EmbeddingSet:
    return unit_float32_rows(transform(tile))


def streamed_columns(
    transform: Transform,
    scorers: Sequence[ScoreNormalizer],
    gallery: Gallery,
    block_size: int,
) -> StreamedColumns:
    """First pass: each stage's gallery columns, tile by tile (the rows are not kept).

    Each stage's ``[N, a]`` output is allocated once, at its first tile, and every tile's
    columns are copied into it: small per-tile tensors kept across the pass would pin the heap
    between the tiles' large temporaries (measured: 0.3× the gallery's bytes at 2M rows).
    """
    out: list[torch.Tensor | None] = [None] * len(scorers)
    n = len(gallery)
    for start, tile in gallery_tiles(gallery, block_size):
        rows = ScoredRows.of(_unit_rows(transform, tile), "gallery")
        for stage, scorer in enumerate(scorers):
            columns = scorer.gallery_columns(rows).columns
            if out[stage] is None:
                out[stage] = torch.empty(n, columns.shape[1], dtype=torch.float32)
            target = out[stage][start : start + len(columns)]
            target.copy_(columns)
            rows = rows.extended(target)
    return StreamedColumns([c for c in out if c is not None], n)


def _query_vectors(
    scorers: Sequence[ScoreNormalizer], queries: EmbeddingSet, columns: StreamedColumns
) -> torch.Tensor:
    """``[q, u(q)]`` of the processed queries (no stage here needs a top-1)."""
    rows = ScoredRows.of(queries.normalized(), "queries")
    for scorer, cols in zip(scorers, columns.columns, strict=True):
        rows = rows.extended(scorer.query_columns(rows, GalleryColumns(cols), None))
    return rows.augmented


def _augmented_tiles(
    transform: Transform, gallery: Gallery, columns: torch.Tensor, block_size: int
) -> Iterator[tuple[int, torch.Tensor]]:
    for start, tile in gallery_tiles(gallery, block_size):
        rows = _unit_rows(transform, tile).embeddings.float()
        yield start, torch.cat([rows, columns[start : start + len(rows)]], dim=1)


def streamed_search(
    transform: Transform,
    scorers: Sequence[ScoreNormalizer],
    queries: EmbeddingSet,
    gallery: Gallery,
    columns: StreamedColumns,
    k: int,
    block_size: int,
) -> Ranking:
    """Top-``k`` gallery rows for the processed ``queries`` by the stages' scores, tile by
    tile (scores in score units)."""
    q = _query_vectors(scorers, queries, columns)
    tiles = _augmented_tiles(transform, gallery, columns.all, block_size)
    indices, scores = tile_topk(q, tiles, len(gallery), k, block_size)
    return Ranking(indices=indices, scores=scores)


def streamed_rank_of(
    transform: Transform,
    scorers: Sequence[ScoreNormalizer],
    queries: EmbeddingSet,
    gallery: Gallery,
    columns: StreamedColumns,
    targets: torch.Tensor | np.ndarray,
    block_size: int,
) -> torch.Tensor:
    """1-based rank of gallery row ``targets[i]`` for processed query i, by the scores and
    tiles :func:`streamed_search` uses (two more passes over the gallery)."""
    q = _query_vectors(scorers, queries, columns)
    all_columns = columns.all
    return tile_ranks(
        q,
        lambda: _augmented_tiles(transform, gallery, all_columns, block_size),
        len(gallery),
        torch.as_tensor(targets),
        block_size,
    )


class Pipeline(Protocol):
    """What the tile search reads of a fitted ``Debiased``."""

    retriever: Retriever
    scorers_: Mapping[str, Sequence[ScoreNormalizer]]
    processors: object
    is_fitted: bool

    def transform(self, data: EmbeddingSet) -> EmbeddingSet: ...


class TileSearch:
    """A pipeline's tile-by-tile search and rank, with the gallery columns it keeps per
    gallery (a :class:`~xcm_debias.gallery_cache.GalleryCache` of columns only: the same
    content check and weak-reference eviction, no processed rows)."""

    def __init__(self) -> None:
        self._columns: GalleryCache[StreamedColumns] = GalleryCache()

    def clear(self) -> None:
        self._columns.clear()

    @staticmethod
    def applies(pipeline: Pipeline, direction: str) -> bool:
        """Whether ``direction``'s stages run tile by tile under the pipeline's retriever."""
        return tile_wise(pipeline.retriever, pipeline.scorers_.get(direction, []))

    def search(
        self,
        pipeline: Pipeline,
        queries: PlainOrSet,
        gallery: Gallery,
        k: int,
        direction: str | None = None,
    ) -> Ranking:
        """``streamed_search`` through ``pipeline``'s stages for ``direction`` (for a
        ShardedGallery, None: image rows, the t2i stages when the queries are texts)."""
        processed, scorers, columns, block = self._inputs(pipeline, queries, gallery, direction)
        if not scorers and pipeline.processors is None:
            # nothing changes the rows or the scores: the exact search of the rows as stored,
            # bit for bit the plain search (of a ShardedGallery too)
            return pipeline.retriever.search(processed, gallery, k)
        return streamed_search(pipeline.transform, scorers, processed, gallery, columns, k, block)

    def rank_of(
        self,
        pipeline: Pipeline,
        queries: PlainOrSet,
        gallery: Gallery,
        targets: torch.Tensor | np.ndarray,
        direction: str | None = None,
    ) -> torch.Tensor:
        """``streamed_rank_of`` through ``pipeline``'s stages (see :meth:`search`)."""
        processed, scorers, columns, block = self._inputs(pipeline, queries, gallery, direction)
        return streamed_rank_of(
            pipeline.transform, scorers, processed, gallery, columns, targets, block
        )

    def _inputs(
        self, pipeline: Pipeline, queries: PlainOrSet, gallery: Gallery, direction: str | None
    ) -> tuple[EmbeddingSet, list[ScoreNormalizer], StreamedColumns, int]:
        if not pipeline.is_fitted:
            raise NotFittedError("Debiased: not fitted; call fit(calibration) before search")
        if not isinstance(pipeline.retriever, ExactRetriever):
            raise TypeError(
                f"gallery: a ShardedGallery is searched by an ExactRetriever, got "
                f"{type(pipeline.retriever).__name__}"
            )
        if direction is None:  # a sharded gallery of image rows
            queries = as_embedding_set(queries, "queries", "text")
            direction = "t2i" if set(queries.modality.tolist()) == {"text"} else ""
        scorers = list(pipeline.scorers_.get(direction, []))
        if not tile_wise(pipeline.retriever, scorers):
            raise ValueError(
                "gallery: a score stage whose gallery columns depend on the whole gallery "
                "(QB-Norm, TranslationPooling) needs the gallery in memory; got a ShardedGallery"
            )
        block = pipeline.retriever.block_size
        if not scorers:  # no stage: no gallery columns, no pass to find them
            columns = StreamedColumns([], len(gallery))
        elif isinstance(gallery, ShardedGallery):  # one more pass per search: nothing is kept
            columns = streamed_columns(pipeline.transform, scorers, gallery, block)
        else:
            columns = self._columns.prepared(
                gallery,
                f"{direction}/{block}",
                _same,
                partial(streamed_columns, pipeline.transform, scorers, block_size=block),
            )
        return pipeline.transform(queries), scorers, columns, block


def _same(gallery: EmbeddingSet) -> EmbeddingSet:
    """The identity: the tile search keeps no processed copy of the gallery."""
    return gallery


__all__ = [
    "TileSearch",
    "StreamedColumns",
    "gallery_tiles",
    "streamed_columns",
    "streamed_rank_of",
    "streamed_search",
    "tile_wise",
]
