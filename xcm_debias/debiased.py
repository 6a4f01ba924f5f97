"""Debiased: a Retriever that fits debiasing stages on calibration data and applies them.

``Debiased(retriever, processors, scoring)`` wraps any inner-product retriever:

* **fit(calibration)** fits the embedding-level ``processors`` (a PostProcessor or Chain) on the
  calibration set, then the score-level stages (``xcm_debias.scoring``) on the processed,
  L2-normalised calibration rows, separately for each retrieval direction: ``"t2i"`` (text
  queries, image gallery: query bank = calibration texts, gallery bank = calibration images)
  and ``"i2t"`` (the reverse). One scorer given for both directions is cloned per direction, so
  each direction has its own banks; a mapping ``{"t2i": ..., "i2t": ...}`` gives each its own.
  Score stages are fitted in order, each on the scores left by the earlier ones
  (:mod:`xcm_debias.calibration.crossfit`). ``fit`` sees the calibration rows only, never a
  test row; ``search`` never changes the fitted state.
* **search(queries, gallery, k)** transforms the gallery once (kept in a
  :class:`~xcm_debias.gallery_cache.GalleryCache`: by object identity plus a fingerprint of all
  its bytes, only as long as the caller's gallery object lives; ``clear_cache()`` releases all)
  and each query batch on the fly, then applies the score stages as offsets the wrapped
  retriever ranks by (:mod:`xcm_debias.scored_search`); scores come back in score units.
* **rank_of(queries, gallery, targets)** ranks through the same vectors and gates, so full-rank
  metrics agree with ``search``.
* **save(path)** / **load(path, retriever)** write and read the fitted stages as one
  ``.safetensors`` file, no pickle (:mod:`xcm_debias.debiased_file`).

Score-level stages apply to the directions they were fitted for; any other search (text→text,
or sets mixing modalities) uses the processors alone. With no score stage, queries and gallery
go to the wrapped retriever exactly as the processors leave them.

**Cross-fitting** (``cross_fit=F``, ``F >= 2`` folds; ``True`` means 5): a stage that overfits
its calibration rows hands the next stage inputs it will never see on test data — e.g. a bank
gallery item's ``Z(g)`` sums over bank queries that include its own captions, a test item's does
not. With cross-fitting, every stage (each processor step, then each score stage) is still
fitted on all the rows it receives, but the rows handed to the *next* stage are out-of-fold: the
calibration items are dealt to ``F`` folds (seeded; an item's images and captions stay
together) and each fold's rows are transformed (processors) or given their columns (score
stages) by a copy of the stage fitted on the other folds. The effective number of folds is
``min(F, number of calibration items)``: with fewer items than folds each item is its own fold
(leave-one-item-out), so ``cross_fit=20`` fits on 12 calibration items (2 items at least).
``cross_fit=False`` fits each stage on the previous stage's in-sample output (a Chain may still
cross-fit its own steps).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path

import numpy as np
import torch

from xcm_debias._validation import check_positive_int
from xcm_debias.calibration.crossfit import DEFAULT_FOLDS as DEFAULT_FOLDS
from xcm_debias.calibration.crossfit import (
    DIRECTIONS,
    ScoringSpec,
    fit_stages,
    fold_count,
    processors_from_config,
    scoring_from_config,
    scoring_templates,
)
from xcm_debias.calibration.crossfit import ScorerSpec as ScorerSpec
from xcm_debias.calibration.labels import LabelModels, complete_calibration, used_labels
from xcm_debias.calibration.selection import RecallGuardLike, Selection
from xcm_debias.data import EmbeddingSet
from xcm_debias.debiased_file import DebiasedState, read_debiased, write_debiased
from xcm_debias.fitted import NotFittedError
from xcm_debias.gallery_cache import GalleryCache
from xcm_debias.plain_vectors import PlainOrSet, as_embedding_set, as_query_gallery, like_input
from xcm_debias.processors.base import PostProcessor, as_processor
from xcm_debias.retrieval import ExactRetriever, Ranking, Retriever
from xcm_debias.scored_search import (
    PreparedGallery,
    prepare_gallery,
    rank_with,
    scored_direction,
    scored_rank_of,
    scored_search,
)
from xcm_debias.scoring.base import ScoreNormalizer
from xcm_debias.shards import ShardedGallery
from xcm_debias.streamed_search import TileSearch


class Debiased:
    """A Retriever with fitted debiasing stages (see the module docstring).

    Args:
        retriever: the wrapped inner-product retriever (``ExactRetriever``, a faiss one...).
        processors: an embedding-level PostProcessor or Chain, or a list of processors (made a
            Chain, applied in order), fitted in place by ``fit``.
        scoring: a ScoreNormalizer, a sequence of them (stages in order), or a mapping from
            ``"t2i"``/``"i2t"`` to either. The given objects are templates: ``fit`` fits clones,
            one per direction, kept in ``scorers_``.
        cross_fit: False, True (5 folds) or a number of folds >= 2 (see the module docstring),
            capped at the number of calibration items (leave-one-item-out beyond it).
        seed: seed of the cross-fitting fold assignment.
        guard: a recall guard (``xcm_debias.calibration.guard.RecallGuard``): ``fit`` first lets
            it choose the processors and score stages from the calibration data (replacing
            ``processors`` and ``scoring``), then fits the chosen ones; what it chose and the
            out-of-fold frontier are kept in ``selection_`` and saved with the pipeline.
        stream: search and rank tile by tile, with O(tile) extra memory instead of transformed
            gallery copies (:mod:`xcm_debias.streamed_search`: an ``ExactRetriever`` and no
            stage whose columns need the whole gallery — gated stages, TranslationPooling —,
            else the offset form); a ``ShardedGallery`` is always streamed.
    """

    def __init__(
        self,
        retriever: Retriever,
        processors: PostProcessor | Sequence[PostProcessor] | None = None,
        scoring: ScoringSpec | None = None,
        cross_fit: bool | int = False,
        seed: int = 0,
        guard: RecallGuardLike | None = None,
        stream: bool = False,
    ) -> None:
        _check_has_method(
            retriever, "search", "retriever", "a Retriever", "search(queries, gallery, k)"
        )
        processors = as_processor(processors, "processors")
        self._n_folds = fold_count(cross_fit)
        self.retriever = retriever
        self.processors = processors
        self.scoring = scoring
        self.cross_fit = cross_fit
        self.seed = check_positive_int(seed, "seed", minimum=0)
        if guard is not None:
            _check_has_method(guard, "select", "guard", "a recall guard", "select(...)")
        self.guard = guard
        self.selection_: Selection | None = None
        self._templates = scoring_templates(scoring)
        self.scorers_: dict[str, list[ScoreNormalizer]] = {}
        self.label_models_: LabelModels | None = None
        self._fitted = False
        self._cache: GalleryCache[PreparedGallery] = GalleryCache()
        self.stream = bool(stream)
        self._tiles = TileSearch()

    def __repr__(self) -> str:
        return (
            f"Debiased(retriever={self.retriever!r}, processors={self.processors!r}, "
            f"scoring={self._templates!r}, cross_fit={self.cross_fit})"
        )

    @property
    def is_fitted(self) -> bool:
        return self._fitted

    def _check_is_fitted(self) -> None:
        if not self._fitted:
            raise NotFittedError("Debiased: not fitted; call fit(calibration) before search")

    def fit(self, calibration: EmbeddingSet) -> Debiased:
        """Fit processors, then score stages per direction, on ``calibration`` only."""
        if not isinstance(calibration, EmbeddingSet):
            raise TypeError(
                f"calibration: expected an EmbeddingSet, got {type(calibration).__name__}"
            )
        self.clear_cache()
        self._fitted = False
        calibration = complete_calibration(calibration, seed=self.seed, stacklevel=3)
        if self.guard is not None:
            self.selection_ = self.guard.select(self.retriever, calibration, self.cross_fit)
            config = self.selection_.config
            self.processors = processors_from_config(config.get("processors"))
            self._templates = scoring_templates(scoring_from_config(config.get("scoring")))
        owner = f"Debiased(cross_fit={self.cross_fit})"
        self.scorers_ = fit_stages(
            self.processors, self._templates, calibration, self._n_folds, self.seed, owner
        )
        self.label_models_ = _label_models(self.processors, self.scorers_, calibration, self.seed)
        self._fitted = True
        return self

    def search(self, queries: PlainOrSet, gallery: PlainOrSet | ShardedGallery, k: int) -> Ranking:
        """Top-``k`` gallery rows per query after every fitted stage (scores in score units);
        tile by tile for a ``ShardedGallery`` or with ``stream``."""
        k = check_positive_int(k, "k")
        queries, gallery, direction, tiled = self._route(queries, gallery)
        if tiled:
            return self._tiles.search(self, queries, gallery, k, direction)
        if direction is None:
            return self.retriever.search(self.transform(queries), self._processed(gallery), k)
        prepared = self._prepared(gallery, direction)
        scorers = self.scorers_[direction]
        return scored_search(self.retriever, scorers, self.transform(queries), prepared, k)

    def rank_of(
        self, queries: PlainOrSet, gallery: PlainOrSet, targets: torch.Tensor | np.ndarray
    ) -> torch.Tensor:
        """1-based rank of gallery row ``targets[i]`` for query i, consistent with ``search``."""
        queries, gallery, direction, tiled = self._route(queries, gallery)
        if tiled:
            return self._tiles.rank_of(self, queries, gallery, targets, direction)
        if direction is None:
            processed = self._processed(gallery)
            return rank_with(self.retriever, self.transform(queries), processed, targets)
        prepared = self._prepared(gallery, direction)
        scorers = self.scorers_[direction]
        return scored_rank_of(self.retriever, scorers, self.transform(queries), prepared, targets)

    def transform(self, data: PlainOrSet) -> PlainOrSet:
        """The embedding-level part: ``data`` through the fitted processors (labels kept).

        Score-level methods change scores, not vectors, so they do not appear here; the
        modality gap of a report on a ``Debiased`` is measured on this output. Plain ``[N, D]``
        vectors (numpy or torch, taken as text rows) come back in the same form. Group labels the
        stages need and a row lacks (a query's ``language``, an image's ``culture``) are first
        inferred by ``label_models_`` (soft labels, :mod:`xcm_debias.soft_labels`).
        """
        original, data = data, as_embedding_set(data, "data", "text")
        self._check_is_fitted()
        if self.label_models_ is not None:
            data = self.label_models_.fill(data)
        out = data if self.processors is None else self.processors.transform(data)
        return like_input(out, original)

    def clear_cache(self) -> None:
        """Release every processed gallery kept (up to four, each only while the caller's
        gallery object lives; :mod:`xcm_debias.gallery_cache`)."""
        self._cache.clear()
        self._tiles.clear()

    def _route(
        self, queries: PlainOrSet, gallery: PlainOrSet | ShardedGallery
    ) -> tuple[PlainOrSet, EmbeddingSet | ShardedGallery, str | None, bool]:
        """Both sides (EmbeddingSets unless sharded), the direction whose score stages apply,
        if any, and whether the tile-by-tile search serves it."""
        self._check_is_fitted()
        if isinstance(gallery, ShardedGallery):
            return queries, gallery, None, True
        queries, gallery = as_query_gallery(queries, gallery, map(DIRECTIONS.get, self.scorers_))
        direction = scored_direction(queries, gallery, self.scorers_)
        tiled = direction is not None and self.stream and self._tiles.applies(self, direction)
        return queries, gallery, direction, tiled

    def _processed(self, gallery: EmbeddingSet) -> EmbeddingSet:
        return self._cache.processed(gallery, self.transform)

    def _prepared(self, gallery: EmbeddingSet, direction: str) -> PreparedGallery:
        prepare = partial(prepare_gallery, scorers=self.scorers_[direction])
        return self._cache.prepared(gallery, direction, self.transform, prepare)

    def save(self, path: str | Path) -> Path:
        """Write the fitted pipeline (processors, scorers, label models, the guard's selection)
        to one ``.safetensors``, no pickle (:mod:`xcm_debias.debiased_file`); the wrapped
        retriever is not saved."""
        self._check_is_fitted()
        fitted = (self.processors, self.scorers_, self.label_models_, self.cross_fit, self.seed)
        return write_debiased(path, DebiasedState(*fitted, self.selection_))

    @staticmethod
    def load(path: str | Path, retriever: Retriever | None = None) -> Debiased:
        """Rebuild a fitted ``Debiased`` saved with ``save`` over ``retriever`` (default
        ``ExactRetriever()``)."""
        state = read_debiased(path)
        retriever = ExactRetriever() if retriever is None else retriever
        out = Debiased.assemble(
            retriever, state.processors, state.scorers, state.cross_fit, state.seed
        )
        out.label_models_, out.selection_ = state.label_models, state.selection
        return out

    @staticmethod
    def assemble(
        retriever: Retriever,
        processors: PostProcessor | None,
        scorers: Mapping[str, list[ScoreNormalizer]],
        cross_fit: bool | int = False,
        seed: int = 0,
    ) -> Debiased:
        """A fitted ``Debiased`` from already fitted ``processors`` and per-direction ``scorers``
        (as ``load`` rebuilds one)."""
        if processors is not None and not processors.is_fitted:
            raise NotFittedError("processors: expected fitted processors, got unfitted ones")
        fitted = {d: list(s) for d, s in scorers.items() if s}
        out = Debiased(
            retriever, processors, {d: list(s) for d, s in fitted.items()}, cross_fit, seed
        )
        out.scorers_ = fitted
        out._fitted = True
        return out


def _check_has_method(value: object, method: str, name: str, expected: str, call: str) -> None:
    if not callable(getattr(value, method, None)):
        raise TypeError(
            f"{name}: expected {expected} (an object with {call}), got {type(value).__name__}"
        )


def _label_models(
    processors: PostProcessor | None,
    scorers: Mapping[str, list[ScoreNormalizer]],
    calibration: EmbeddingSet,
    seed: int,
) -> LabelModels | None:
    """Classifiers for the group labels the fitted stages read, to fill them in at search."""
    labels = used_labels(processors, [s for ss in scorers.values() for s in ss])
    return LabelModels(labels, seed=seed).fit(calibration) if labels else None
