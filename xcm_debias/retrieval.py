"""Retrievers: the ``Retriever`` protocol, the ``Ranking`` it returns, and ``ExactRetriever``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from xcm_debias._validation import check_positive_int
from xcm_debias.data import EmbeddingSet
from xcm_debias.plain_vectors import PlainOrSet, as_query_gallery
from xcm_debias.ties import duplicate_rows, expand_topk
from xcm_debias.topk import blockwise_ranks, blockwise_topk


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


def _check_pair(queries: EmbeddingSet, gallery: EmbeddingSet) -> None:
    for name, value in (("queries", queries), ("gallery", gallery)):
        if not isinstance(value, EmbeddingSet):
            raise TypeError(f"{name}: expected an EmbeddingSet, got {type(value).__name__}")
    if queries.dim != gallery.dim:
        raise ValueError(
            f"gallery: expected dimension {queries.dim} (as queries), got {gallery.dim}"
        )


class ExactRetriever:
    """Exact inner-product (cosine, on normalised rows) retrieval, blockwise.

    Scores are ``q · g`` in float32; the ``Q × N`` matrix is never formed: queries and gallery
    are visited in ``block_size`` tiles with a running top-k, so memory is
    O((Q + N)·k + block_size²). Ties are broken by the lower gallery index, and equal gallery
    rows always tie (each distinct row is scored once), so rankings do not depend on
    ``block_size``. Rows of any finite magnitude are normalised right (no overflow). Queries
    and gallery may be EmbeddingSets or plain ``[N, D]`` numpy arrays / torch tensors.

    Args:
        block_size: tile edge (rows of queries and of gallery per product).
        normalize: L2-normalise queries and gallery first (cosine similarity).
    """

    def __init__(self, block_size: int = 4096, normalize: bool = True) -> None:
        self.block_size = check_positive_int(block_size, "block_size")
        self.normalize = bool(normalize)

    def __repr__(self) -> str:
        return f"ExactRetriever(block_size={self.block_size}, normalize={self.normalize})"

    def _prepare(self, data: EmbeddingSet) -> torch.Tensor:
        return data.normalized().embeddings if self.normalize else data.embeddings

    def search(self, queries: PlainOrSet, gallery: PlainOrSet, k: int) -> Ranking:
        """Top-``k`` gallery rows for each query (``k`` capped at the gallery size).

        Equal gallery rows score equally and come by lower index, whatever ``block_size``
        (each distinct row is scored once, see :mod:`xcm_debias.ties`).
        """
        queries, gallery = as_query_gallery(queries, gallery)
        _check_pair(queries, gallery)
        k = check_positive_int(k, "k")
        g = self._prepare(gallery)
        groups = duplicate_rows(g)
        if groups is None:
            idx, scores = blockwise_topk(self._prepare(queries), g, k, self.block_size)
        else:
            idx, scores = blockwise_topk(
                self._prepare(queries), g[groups.first], k, self.block_size
            )
            idx, scores = expand_topk(groups, idx, scores, k)
        return Ranking(indices=idx, scores=scores)

    def rank_of(
        self, queries: PlainOrSet, gallery: PlainOrSet, targets: torch.Tensor | np.ndarray
    ) -> torch.Tensor:
        """1-based rank of gallery row ``targets[i]`` in query i's full ranking (blockwise;
        the order of ``search``: ties, equal rows included, by lower index)."""
        queries, gallery = as_query_gallery(queries, gallery)
        _check_pair(queries, gallery)
        g = self._prepare(gallery)
        groups = duplicate_rows(g)
        return blockwise_ranks(
            self._prepare(queries),
            g if groups is None else g[groups.first],
            torch.as_tensor(targets),
            self.block_size,
            groups,
        )
