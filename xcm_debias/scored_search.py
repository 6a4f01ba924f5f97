"""Searching through score-level stages with the wrapped retriever: the offset reduction.

A :class:`~xcm_debias.debiased.Debiased` with score stages for a direction ranks by their
scores with any inner-product retriever:

* :func:`prepare_gallery` takes the processed, L2-normalised gallery rows through the stages in
  order, each stage's gallery columns ``v(g)`` computed on the rows the earlier ones left.
* :func:`scored_search`: the gallery row becomes ``[g, v(g), pad(g)] / R`` and the query
  ``[q, u(q), 0] / |[q, u(q)]|``, whose inner product is ``score(q, g) = q·g + u(q)·v(g)`` up to
  a positive per-query factor. ``pad`` gives every gallery row the same norm ``R``, so the
  reduction is exact on inner-product, cosine and L2 indexes alike (the MIPS-to-NN reduction).
  Scores are returned in ``score`` units (the factor is undone): for the inverted softmax,
  ``s − log Z/β``. Dynamic (gated) stages take each query's top-1 with one ``k = 1`` search of
  the wrapped retriever on the scores before that stage — except a gated *last* stage under an
  ``ExactRetriever``: there the gate and the offset top-k come from one pass over the gallery
  (:class:`xcm_debias.gated_topk.GatedOffsetIndex`, same results), so QB-Norm costs about what
  plain retrieval does.
* :func:`scored_rank_of` ranks through the same vectors and gates (the one-pass gated index's
  own ``rank_of`` when :func:`scored_search` uses it), so full-rank metrics agree with search.

Score stages apply to the directions they were fitted for (:func:`scored_direction`); any other
search (text→text, or sets mixing modalities) uses the processors alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from xcm_debias._validation import check_positive_int
from xcm_debias.calibration.crossfit import DIRECTIONS
from xcm_debias.data import EmbeddingSet
from xcm_debias.gated_topk import GatedOffsetIndex
from xcm_debias.retrieval import ExactRetriever, Ranking, Retriever
from xcm_debias.scoring.base import GalleryColumns, ScoredRows, ScoreNormalizer
from xcm_debias.topk import integral_targets


@dataclass
class PreparedGallery:
    """One gallery's rows before each score stage (the last: after all) and their columns."""

    stage_rows: list[ScoredRows]
    columns: list[GalleryColumns]
    _indexes: dict[int, tuple[EmbeddingSet, float]] = field(default_factory=dict)
    _gated: GatedOffsetIndex | None = None

    def index(self, stage: int) -> tuple[EmbeddingSet, float]:
        """Equal-norm index vectors of the rows before ``stage`` and their norm ``R``."""
        if stage not in self._indexes:
            self._indexes[stage] = _index_set(self.stage_rows[stage])
        return self._indexes[stage]

    def gated(self, block_size: int) -> GatedOffsetIndex:
        """The rows before the (gated, one-column) last stage, sorted by its offset."""
        if self._gated is None or self._gated.block_size != block_size:
            last = self.columns[-1]
            self._gated = GatedOffsetIndex(
                self.stage_rows[-2].augmented,
                last.columns[:, 0],
                last.active[:, 0],
                block_size=block_size,
            )
        return self._gated


def scored_direction(
    queries: EmbeddingSet, gallery: EmbeddingSet, scorers: Mapping[str, Sequence[ScoreNormalizer]]
) -> str | None:
    """The direction whose score stages apply to queries and gallery of one modality each
    (``"t2i"``: text queries, image gallery; ``"i2t"``: the reverse), None if there is none."""
    q_modalities, g_modalities = set(queries.modality.tolist()), set(gallery.modality.tolist())
    if len(q_modalities) != 1 or len(g_modalities) != 1:
        return None
    pair = (q_modalities.pop(), g_modalities.pop())
    for direction, modalities in DIRECTIONS.items():
        if modalities == pair and scorers.get(direction):
            return direction
    return None


def unit_float32_rows(data: EmbeddingSet) -> EmbeddingSet:
    """``data``'s rows at unit norm in float32, whatever their stored dtype: a float16 gallery is
    scored on float32 unit rows, as the exact search scores it (``EmbeddingSet.normalized`` keeps
    the stored dtype, which would round unit float16 rows again, by up to 2⁻¹¹)."""
    if data.embeddings.dtype != torch.float32:
        data = data.with_embeddings(data.embeddings.float())
    return data.normalized()


def prepare_gallery(processed: EmbeddingSet, scorers: Sequence[ScoreNormalizer]) -> PreparedGallery:
    """The processed gallery's rows and columns through the fitted ``scorers`` in order."""
    rows = ScoredRows.of(unit_float32_rows(processed), "gallery")
    stage_rows, columns = [rows], []
    for scorer in scorers:
        cols = scorer.gallery_columns(rows)
        rows = rows.extended(cols.columns)
        stage_rows.append(rows)
        columns.append(cols)
    return PreparedGallery(stage_rows, columns)


def scored_search(
    retriever: Retriever,
    scorers: Sequence[ScoreNormalizer],
    queries: EmbeddingSet,
    prepared: PreparedGallery,
    k: int,
) -> Ranking:
    """Top-``k`` rows of the ``prepared`` gallery for the processed ``queries`` by the
    ``scorers``' scores (in score units)."""
    _check_stages(scorers, prepared)
    k = check_positive_int(k, "k")
    if _fused_gate(retriever, scorers, prepared):
        index, rows, w_on, w_off = _fused_inputs(retriever, scorers, queries, prepared)
        indices, scores = index.search(rows, k, w_on, w_off)
        return Ranking(indices=indices, scores=scores)
    stages = len(prepared.columns)
    query_set, query_norms = _query_set(_query_rows(retriever, scorers, queries, prepared, stages))
    index, radius = prepared.index(stages)
    ranking = retriever.search(query_set, index, k)
    return Ranking(
        indices=ranking.indices,
        scores=ranking.scores * (query_norms[:, None] * radius),
    )


def scored_rank_of(
    retriever: Retriever,
    scorers: Sequence[ScoreNormalizer],
    queries: EmbeddingSet,
    prepared: PreparedGallery,
    targets: torch.Tensor | np.ndarray,
) -> torch.Tensor:
    """1-based rank of ``prepared`` gallery row ``targets[i]`` for processed query i, by the
    gates and scores :func:`scored_search` uses."""
    _check_stages(scorers, prepared)
    if _fused_gate(retriever, scorers, prepared):
        gated, rows, w_on, w_off = _fused_inputs(retriever, scorers, queries, prepared)
        return gated.rank_of(rows, torch.as_tensor(targets), w_on, w_off)
    stages = len(prepared.columns)
    query_set, _ = _query_set(_query_rows(retriever, scorers, queries, prepared, stages))
    index, _ = prepared.index(stages)
    return rank_with(retriever, query_set, index, targets)


def rank_with(
    retriever: Retriever,
    queries: EmbeddingSet,
    gallery: EmbeddingSet,
    targets: torch.Tensor | np.ndarray,
) -> torch.Tensor:
    """1-based ranks by ``retriever.rank_of`` when it has one, else by full-length searches in
    query batches."""
    if callable(getattr(retriever, "rank_of", None)):
        return retriever.rank_of(queries, gallery, targets)
    t = integral_targets(targets)  # 1.5 is an error, never truncated to 1
    if t.shape != (len(queries),):
        raise ValueError(f"targets: expected shape ({len(queries)},), got {tuple(t.shape)}")
    n = len(gallery)
    batch = max(1, (1 << 22) // n)
    ranks = torch.empty(len(queries), dtype=torch.int64)
    for start in range(0, len(queries), batch):
        part = queries[start : start + batch]
        order = retriever.search(part, gallery, n).indices
        hits = order == t[start : start + batch, None]
        found = hits.any(dim=1)
        ranks[start : start + batch] = torch.where(found, hits.float().argmax(dim=1) + 1, n + 1)
    return ranks


def _check_stages(scorers: Sequence[ScoreNormalizer], prepared: PreparedGallery) -> None:
    if len(scorers) != len(prepared.columns):
        raise ValueError(
            f"scorers: expected the {len(prepared.columns)} stages the gallery was prepared "
            f"with, got {len(scorers)}"
        )


def _fused_gate(
    retriever: Retriever, scorers: Sequence[ScoreNormalizer], prepared: PreparedGallery
) -> bool:
    """True when the last stage is gated on one column and the search is exact."""
    last = prepared.columns[-1] if prepared.columns else None
    return (
        isinstance(retriever, ExactRetriever)
        and last is not None
        and scorers[-1].needs_top1
        and last.active is not None
        and last.columns.shape[1] == 1
    )


def _fused_inputs(
    retriever: ExactRetriever,
    scorers: Sequence[ScoreNormalizer],
    queries: EmbeddingSet,
    prepared: PreparedGallery,
) -> tuple[GatedOffsetIndex, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The gallery's GatedOffsetIndex, the query rows before the gated last stage, and the
    stage's query column for an active and for an inactive raw top-1."""
    last = len(prepared.columns) - 1
    rows = _query_rows(retriever, scorers, queries, prepared, last)
    columns = prepared.columns[last]
    active = columns.active[:, 0]
    # a gated query column depends on the raw top-1 only through the activation set:
    # evaluate it for an active and an inactive top-1 (either stands in when one is empty)
    on_row = int(active.float().argmax())
    off_row = int((~active).float().argmax())
    scorer = scorers[last]
    n = len(rows.data)
    w_on = scorer.query_columns(rows, columns, torch.full((n,), on_row))[:, 0]
    w_off = scorer.query_columns(rows, columns, torch.full((n,), off_row))[:, 0]
    index = prepared.gated(retriever.block_size)
    return index, rows.augmented, w_on, w_off


def _query_rows(
    retriever: Retriever,
    scorers: Sequence[ScoreNormalizer],
    queries: EmbeddingSet,
    prepared: PreparedGallery,
    stages: int,
) -> ScoredRows:
    """The processed query rows with the columns of the first ``stages`` score stages."""
    rows = ScoredRows.of(queries.normalized(), "queries")
    for stage, scorer in enumerate(scorers[:stages]):
        top1 = None
        if scorer.needs_top1:
            index, _ = prepared.index(stage)
            top1 = retriever.search(_query_set(rows)[0], index, 1).indices[:, 0]
        rows = rows.extended(scorer.query_columns(rows, prepared.columns[stage], top1))
    return rows


def _index_set(rows: ScoredRows) -> tuple[EmbeddingSet, float]:
    """``[x, pad] / R`` with ``pad = sqrt(R² − |x|²)``: every row of norm 1, products ∝ x·y."""
    plain, offsets = rows.plain, rows.offsets.float()
    d, a = plain.shape[1], offsets.shape[1]
    # written once into the index matrix (no concatenated copy, no float64 copy of the rows):
    # squared norms accumulate in float64, row by row
    squared = torch.linalg.vector_norm(plain, dim=1, dtype=torch.float64).square_()
    squared += offsets.double().square().sum(dim=1)
    radius = float(squared.max().sqrt())
    vectors = torch.empty(len(plain), d + a + 1)
    torch.div(plain, radius, out=vectors[:, :d])
    vectors[:, d : d + a] = offsets / radius
    vectors[:, -1] = (squared.max() - squared).clamp_min(0).sqrt().div_(radius).float()
    return rows.data.with_embeddings(vectors), radius


def _query_set(rows: ScoredRows) -> tuple[EmbeddingSet, torch.Tensor]:
    """``[x, 0] / |x|`` (the zero meets the gallery's pad) and the norms ``|x|``."""
    x = rows.augmented
    norms = x.norm(dim=1)
    vectors = torch.cat([x, torch.zeros(len(x), 1)], dim=1) / norms[:, None]
    return rows.data.with_embeddings(vectors), norms
