"""Debiased: a Retriever that fits debiasing stages on calibration data and applies them.

``Debiased(retriever, processors, scoring)`` wraps any inner-product retriever:

* **fit(calibration)** fits the embedding-level ``processors`` (a PostProcessor or Chain) on the
  calibration set, then the score-level stages (``xcm_debias.scoring``) on the processed,
  L2-normalised calibration rows, separately for each retrieval direction: ``"t2i"`` (text
  queries, image gallery: query bank = calibration texts, gallery bank = calibration images)
  and ``"i2t"`` (the reverse). One scorer given for both directions is cloned per direction, so
  each direction has its own banks; a mapping ``{"t2i": ..., "i2t": ...}`` gives each its own.
  Score stages are fitted in order, each on the scores left by the earlier ones. ``fit`` sees
  the calibration rows only, never a test row; ``search`` never changes the fitted state.
* **search(queries, gallery, k)** transforms the gallery once (cached by object identity plus a
  fingerprint of all its bytes; an entry lives only as long as the caller's gallery object,
  and ``clear_cache()`` releases all) and each query batch on the fly, then applies the score stages as
  offsets: the gallery row becomes ``[g, v(g), pad(g)] / R`` and the query ``[q, u(q), 0] /
  |[q, u(q)]|``, whose inner product is ``score(q, g) = q·g + u(q)·v(g)`` up to a positive
  per-query factor. ``pad`` gives every gallery row the same norm ``R``, so the reduction is
  exact on inner-product, cosine and L2 indexes alike (the MIPS-to-NN reduction). Scores are
  returned in ``score`` units (the factor is undone): for the inverted softmax, ``s − log Z/β``.
  Dynamic (gated) stages take each query's top-1 with one ``k = 1`` search of the wrapped
  retriever on the scores before that stage — except a gated *last* stage under an
  ``ExactRetriever``: there the gate and the offset top-k come from one pass over the gallery
  (:class:`xcm_debias.gated_topk.GatedOffsetIndex`, same results), so QB-Norm costs about what
  plain retrieval does.
* **rank_of(queries, gallery, targets)** ranks through the same vectors and gates (the one-pass
  gated index's own ``rank_of`` when ``search`` uses it), so full-rank metrics agree with
  ``search``.

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

import weakref
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from xcm_debias._validation import check_positive_int
from xcm_debias.calibration.crossfit import (
    DIRECTIONS,
    fit_stages,
    processors_from_config,
    scoring_from_config,
)
from xcm_debias.calibration.labels import LabelModels, complete_calibration, used_labels
from xcm_debias.calibration.selection import RecallGuardLike, Selection
from xcm_debias.data import EmbeddingSet
from xcm_debias.fingerprint import content_fingerprint
from xcm_debias.fitted import NotFittedError, read_config, restore_buffers, write_safetensors
from xcm_debias.gated_topk import GatedOffsetIndex
from xcm_debias.plain_vectors import PlainOrSet, as_embedding_set, as_query_gallery, like_input
from xcm_debias.processors.base import PostProcessor, as_processor
from xcm_debias.retrieval import ExactRetriever, Ranking, Retriever
from xcm_debias.scoring.base import GalleryColumns, ScoredRows, ScoreNormalizer
from xcm_debias.topk import integral_targets

_CACHE_SIZE = 4
DEFAULT_FOLDS = 5

ScorerSpec = ScoreNormalizer | Sequence[ScoreNormalizer]
ScoringSpec = ScorerSpec | Mapping[str, ScorerSpec]


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
    """

    def __init__(
        self,
        retriever: Retriever,
        processors: PostProcessor | Sequence[PostProcessor] | None = None,
        scoring: ScoringSpec | None = None,
        cross_fit: bool | int = False,
        seed: int = 0,
        guard: RecallGuardLike | None = None,
    ) -> None:
        if not callable(getattr(retriever, "search", None)):
            raise TypeError(
                f"retriever: expected a Retriever (an object with search(queries, gallery, k)), "
                f"got {type(retriever).__name__}"
            )
        processors = as_processor(processors, "processors")
        self._n_folds = _n_folds(cross_fit)
        self.retriever = retriever
        self.processors = processors
        self.scoring = scoring
        self.cross_fit = cross_fit
        self.seed = check_positive_int(seed, "seed", minimum=0)
        if guard is not None and not callable(getattr(guard, "select", None)):
            raise TypeError(
                f"guard: expected a recall guard (an object with select(...)), got "
                f"{type(guard).__name__}"
            )
        self.guard = guard
        self.selection_: Selection | None = None
        self._templates = _scoring_templates(scoring)
        self.scorers_: dict[str, list[ScoreNormalizer]] = {}
        self.label_models_: LabelModels | None = None
        self._fitted = False
        self._cache: OrderedDict[int, _GalleryEntry] = OrderedDict()

    def __repr__(self) -> str:
        return (
            f"Debiased(retriever={self.retriever!r}, processors={self.processors!r}, "
            f"scoring={self._templates!r}, cross_fit={self.cross_fit})"
        )

    @property
    def is_fitted(self) -> bool:
        return self._fitted

    def _owner(self) -> str:
        return f"Debiased(cross_fit={self.cross_fit})"

    def _check_is_fitted(self) -> None:
        if not self._fitted:
            raise NotFittedError("Debiased: not fitted; call fit(calibration) before search")

    # ------------------------------------------------------------------ fit
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
            self.processors = processors_from_config(self.selection_.config.get("processors"))
            self._templates = _scoring_templates(
                scoring_from_config(self.selection_.config.get("scoring"))
            )
        self.scorers_ = fit_stages(
            self.processors, self._templates, calibration, self._n_folds, self.seed, self._owner()
        )
        # classifiers for the group labels the stages read, to fill them in at search
        labels = used_labels(self.processors, [s for ss in self.scorers_.values() for s in ss])
        self.label_models_ = (
            LabelModels(labels, seed=self.seed).fit(calibration) if labels else None
        )
        self._fitted = True
        return self

    # --------------------------------------------------------------- search
    def search(self, queries: PlainOrSet, gallery: PlainOrSet, k: int) -> Ranking:
        """Top-``k`` gallery rows per query after every fitted stage (scores in score units)."""
        self._check_is_fitted()
        queries, gallery = as_query_gallery(queries, gallery, map(DIRECTIONS.get, self.scorers_))
        _check_sets(queries, gallery)
        k = check_positive_int(k, "k")
        direction = self._direction(queries, gallery)
        if direction is None:
            return self.retriever.search(self.transform(queries), self._processed(gallery), k)
        prepared = self._prepared(gallery, direction)
        if self._fused_gate(direction, prepared):
            return self._search_fused(queries, prepared, direction, k)
        query_set, query_norms = self._query_vectors(queries, prepared, direction)
        index, radius = prepared.index(len(prepared.columns))
        ranking = self.retriever.search(query_set, index, k)
        return Ranking(
            indices=ranking.indices,
            scores=ranking.scores * (query_norms[:, None] * radius),
        )

    def _fused_gate(self, direction: str, prepared: _PreparedGallery) -> bool:
        """True when the last stage is gated on one column and the search is exact."""
        last = prepared.columns[-1] if prepared.columns else None
        return (
            isinstance(self.retriever, ExactRetriever)
            and last is not None
            and self.scorers_[direction][-1].needs_top1
            and last.active is not None
            and last.columns.shape[1] == 1
        )

    def _search_fused(
        self, queries: EmbeddingSet, prepared: _PreparedGallery, direction: str, k: int
    ) -> Ranking:
        """The gated last stage's gate and offset top-k in one pass (GatedOffsetIndex)."""
        index, rows, w_on, w_off = self._fused_inputs(queries, prepared, direction)
        indices, scores = index.search(rows, k, w_on, w_off)
        return Ranking(indices=indices, scores=scores)

    def _fused_inputs(
        self, queries: EmbeddingSet, prepared: _PreparedGallery, direction: str
    ) -> tuple[GatedOffsetIndex, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The gallery's GatedOffsetIndex, the query rows before the gated last stage, and the
        stage's query column for an active and for an inactive raw top-1."""
        last = len(prepared.columns) - 1
        rows = self._query_rows(queries, prepared, direction, last)
        columns = prepared.columns[last]
        active = columns.active[:, 0]
        # a gated query column depends on the raw top-1 only through the activation set:
        # evaluate it for an active and an inactive top-1 (either stands in when one is empty)
        on_row = int(active.float().argmax())
        off_row = int((~active).float().argmax())
        scorer = self.scorers_[direction][last]
        n = len(rows.data)
        w_on = scorer.query_columns(rows, columns, torch.full((n,), on_row))[:, 0]
        w_off = scorer.query_columns(rows, columns, torch.full((n,), off_row))[:, 0]
        index = prepared.gated(self.retriever.block_size)
        return index, rows.augmented, w_on, w_off

    def rank_of(
        self, queries: PlainOrSet, gallery: PlainOrSet, targets: torch.Tensor | np.ndarray
    ) -> torch.Tensor:
        """1-based rank of gallery row ``targets[i]`` for query i, consistent with ``search``."""
        self._check_is_fitted()
        queries, gallery = as_query_gallery(queries, gallery, map(DIRECTIONS.get, self.scorers_))
        _check_sets(queries, gallery)
        direction = self._direction(queries, gallery)
        if direction is None:
            query_set, index = self.transform(queries), self._processed(gallery)
        else:
            prepared = self._prepared(gallery, direction)
            if self._fused_gate(direction, prepared):  # the gate and scores search uses
                gated, rows, w_on, w_off = self._fused_inputs(queries, prepared, direction)
                return gated.rank_of(rows, torch.as_tensor(targets), w_on, w_off)
            query_set, _ = self._query_vectors(queries, prepared, direction)
            index, _ = prepared.index(len(prepared.columns))
        if callable(getattr(self.retriever, "rank_of", None)):
            return self.retriever.rank_of(query_set, index, targets)
        return _ranks_by_search(self.retriever, query_set, index, targets)

    # --------------------------------------------------------------- helpers
    def _direction(self, queries: EmbeddingSet, gallery: EmbeddingSet) -> str | None:
        q_modalities, g_modalities = set(queries.modality.tolist()), set(gallery.modality.tolist())
        if len(q_modalities) != 1 or len(g_modalities) != 1:
            return None
        pair = (q_modalities.pop(), g_modalities.pop())
        for direction, modalities in DIRECTIONS.items():
            if modalities == pair and self.scorers_.get(direction):
                return direction
        return None

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
        """Release every processed gallery this pipeline keeps.

        Up to four galleries are cached (the processed rows and the score-stage columns, a
        few times the gallery's size), each only while the caller's gallery object lives: an
        entry goes with its gallery. ``clear_cache`` releases them at once.
        """
        for entry in self._cache.values():
            entry.finalizer.detach()
        self._cache.clear()

    def _entry(self, gallery: EmbeddingSet) -> _GalleryEntry:
        """The cache entry of ``gallery``: keyed by the object, checked against a fingerprint
        of all its bytes (an edit, even through a numpy array sharing its memory, rebuilds it),
        and dropped when the caller's object is garbage-collected."""
        fingerprint = content_fingerprint(gallery)
        key = id(gallery)
        entry = self._cache.get(key)
        if entry is None or entry.ref() is not gallery or entry.fingerprint != fingerprint:
            if entry is not None:
                entry.finalizer.detach()
            processed = self.transform(gallery)
            entry = _GalleryEntry(
                weakref.ref(gallery),
                fingerprint,
                # never a strong reference to the caller's object: it would never be collected
                None if processed is gallery else processed,
                weakref.finalize(gallery, _evict, weakref.ref(self), key),
            )
            self._cache[key] = entry
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)[1].finalizer.detach()
        self._cache.move_to_end(key)
        return entry

    def _processed(self, gallery: EmbeddingSet) -> EmbeddingSet:
        processed = self._entry(gallery).processed
        return gallery if processed is None else processed

    def _prepared(self, gallery: EmbeddingSet, direction: str) -> _PreparedGallery:
        entry = self._entry(gallery)
        if direction not in entry.directions:
            processed = gallery if entry.processed is None else entry.processed
            rows = ScoredRows.of(processed.normalized(), "gallery")
            stage_rows, columns = [rows], []
            for scorer in self.scorers_[direction]:
                cols = scorer.gallery_columns(rows)
                rows = rows.extended(cols.columns)
                stage_rows.append(rows)
                columns.append(cols)
            entry.directions[direction] = _PreparedGallery(stage_rows, columns)
        return entry.directions[direction]

    def _query_vectors(
        self, queries: EmbeddingSet, prepared: _PreparedGallery, direction: str
    ) -> tuple[EmbeddingSet, torch.Tensor]:
        rows = self._query_rows(queries, prepared, direction, len(prepared.columns))
        return _query_set(rows)

    def _query_rows(
        self, queries: EmbeddingSet, prepared: _PreparedGallery, direction: str, stages: int
    ) -> ScoredRows:
        """The processed query rows with the columns of the first ``stages`` score stages."""
        rows = ScoredRows.of(self.transform(queries).normalized(), "queries")
        for stage, scorer in enumerate(self.scorers_[direction][:stages]):
            top1 = None
            if scorer.needs_top1:
                index, _ = prepared.index(stage)
                top1 = self.retriever.search(_query_set(rows)[0], index, 1).indices[:, 0]
            rows = rows.extended(scorer.query_columns(rows, prepared.columns[stage], top1))
        return rows

    # ------------------------------------------------------------ save/load
    def save(self, path: str | Path) -> Path:
        """Write the fitted pipeline (processors, scorers, label models) to one ``.safetensors``.

        Tensors are stored under ``processors.<name>``, ``scoring.<direction>.<stage>.<name>``
        and ``labels.<name>``;
        the JSON configs ride in the header. No pickle. The wrapped retriever is not saved.
        """
        self._check_is_fitted()
        tensors: dict[str, torch.Tensor] = {}
        if self.processors is not None:
            for key, value in self.processors.state_dict().items():
                tensors[f"processors.{key}"] = value.detach().cpu().contiguous()
        for direction, scorers in self.scorers_.items():
            for stage, scorer in enumerate(scorers):
                for key, value in scorer.state_dict().items():
                    tensors[f"scoring.{direction}.{stage}.{key}"] = (
                        value.detach().cpu().contiguous()
                    )
        if self.label_models_ is not None:
            for key, value in self.label_models_.state_dict().items():
                tensors[f"labels.{key}"] = value.detach().cpu().contiguous()
        config = {
            "class": "Debiased",
            "labels": None if self.label_models_ is None else self.label_models_.to_config(),
            "processors": None if self.processors is None else self.processors.to_config(),
            "scoring": {
                d: [s.to_config() for s in scorers] for d, scorers in self.scorers_.items()
            },
            "cross_fit": self.cross_fit,
            "seed": self.seed,
            "selection": None if self.selection_ is None else self.selection_.to_dict(),
        }
        return write_safetensors(path, tensors, config)

    @staticmethod
    def load(path: str | Path, retriever: Retriever | None = None) -> Debiased:
        """Rebuild a fitted ``Debiased`` saved with ``save`` over ``retriever``.

        ``retriever`` defaults to ``ExactRetriever()``.
        """
        config = read_config(path)
        if not isinstance(config, dict) or config.get("class") != "Debiased":
            raise ValueError(f"{path}: not a saved Debiased pipeline")
        state = load_file(str(Path(path)))
        processors = None
        if config["processors"] is not None:
            processors = PostProcessor.from_config(config["processors"])
            restore_buffers(processors, _substate(state, "processors."))
        scorers: dict[str, list[ScoreNormalizer]] = {}
        for direction, configs in config["scoring"].items():
            scorers[direction] = []
            for stage, scorer_config in enumerate(configs):
                scorer = ScoreNormalizer.from_config(scorer_config)
                restore_buffers(scorer, _substate(state, f"scoring.{direction}.{stage}."))
                scorers[direction].append(scorer)
        out = Debiased.assemble(
            ExactRetriever() if retriever is None else retriever,
            processors,
            scorers,
            cross_fit=config["cross_fit"],
            seed=config["seed"],
        )
        if config.get("labels") is not None:
            out.label_models_ = LabelModels.restore(config["labels"], _substate(state, "labels."))
        if config.get("selection") is not None:
            out.selection_ = Selection.from_dict(config["selection"])
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
        (as ``load`` rebuilds one, and the recall guard scores its candidates)."""
        if processors is not None and not processors.is_fitted:
            raise NotFittedError("processors: expected fitted processors, got unfitted ones")
        out = Debiased(
            retriever,
            processors,
            scoring={d: list(s) for d, s in scorers.items() if s},
            cross_fit=cross_fit,
            seed=seed,
        )
        out.scorers_ = {d: list(s) for d, s in scorers.items() if s}
        out._fitted = True
        return out


# ---------------------------------------------------------------------- internals
@dataclass
class _PreparedGallery:
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


@dataclass
class _GalleryEntry:
    """A cached gallery: a weak reference to the caller's object, the fingerprint of its
    content, the processed rows (None when the processors leave it unchanged), the prepared
    score-stage columns, and the finaliser that evicts the entry with the object."""

    ref: weakref.ref
    fingerprint: str
    processed: EmbeddingSet | None
    finalizer: weakref.finalize
    directions: dict[str, _PreparedGallery] = field(default_factory=dict)


def _evict(owner: weakref.ref, key: int) -> None:
    """Drop the cache entry ``key`` of ``owner()`` (a Debiased) whose gallery was collected."""
    debiased = owner()
    if debiased is not None:
        entry = debiased._cache.get(key)
        if entry is not None and entry.ref() is None:
            del debiased._cache[key]


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


def _n_folds(cross_fit: object) -> int:
    if cross_fit is True:
        return DEFAULT_FOLDS
    if cross_fit is False:
        return 0
    if not isinstance(cross_fit, (int, np.integer)):
        raise TypeError(f"cross_fit: expected a bool or a number of folds >= 2, got {cross_fit!r}")
    if cross_fit == 1 or cross_fit < 0:
        raise ValueError(
            f"cross_fit: expected False, True or a number of folds >= 2, got {cross_fit}"
        )
    return int(cross_fit)


def _scoring_templates(scoring: ScoringSpec | None) -> dict[str, list[ScoreNormalizer]]:
    if scoring is None:
        return {}
    if isinstance(scoring, Mapping):
        unknown = sorted(set(scoring) - set(DIRECTIONS))
        if unknown:
            raise ValueError(
                f"scoring: expected direction keys in {sorted(DIRECTIONS)}, got {unknown}"
            )
        templates = {d: _scorer_list(spec, f"scoring[{d!r}]") for d, spec in scoring.items()}
        return {d: t for d, t in templates.items() if t}
    scorers = _scorer_list(scoring, "scoring")
    return {d: scorers for d in DIRECTIONS} if scorers else {}


def _scorer_list(spec: object, name: str) -> list[ScoreNormalizer]:
    items = [spec] if isinstance(spec, ScoreNormalizer) else spec
    if not isinstance(items, Sequence) or isinstance(items, str):
        raise TypeError(
            f"{name}: expected a ScoreNormalizer or a sequence of them, got {type(spec).__name__}"
        )
    for i, item in enumerate(items):
        if not isinstance(item, ScoreNormalizer):
            raise TypeError(f"{name}[{i}]: expected a ScoreNormalizer, got {type(item).__name__}")
    return list(items)


def _check_sets(queries: object, gallery: object) -> None:
    for name, value in (("queries", queries), ("gallery", gallery)):
        if not isinstance(value, EmbeddingSet):
            raise TypeError(f"{name}: expected an EmbeddingSet, got {type(value).__name__}")


def _substate(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def _ranks_by_search(
    retriever: Retriever,
    queries: EmbeddingSet,
    gallery: EmbeddingSet,
    targets: torch.Tensor | np.ndarray,
) -> torch.Tensor:
    """Ranks from full-length searches in query batches (for retrievers without rank_of)."""
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
