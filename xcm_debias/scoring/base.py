r"""ScoreNormalizer: the contract of score-level methods, applied as offsets on any index.

Every method in this package, once fitted, turns the query×gallery score ``s(q, g) = q·g`` into

.. math:: \operatorname{score}(q, g) = q·g + u(q)·v(g),

where ``v(g) ∈ R^a`` are **gallery columns** (computed once per gallery, from the gallery row and
the fitted calibration banks) and ``u(q) ∈ R^a`` are **query columns** (per query: a constant 1,
the query's group offsets, or a 0/1 gate from its raw top-1). The method's normalised score, in
its log domain, is ``scale · score(q, g)`` plus a per-query constant, which changes no ranking
(inverted softmax: ``β s − log Z(g)``; CSLS: ``2 s − r_k(g) − r_k(q)``). So appending ``u(q)`` to
``q`` and ``v(g)`` to ``g`` reproduces the method exactly on any inner-product index, without a
query×gallery matrix: this is how :class:`xcm_debias.Debiased` applies it.

Rows are expected L2-normalised (``Debiased`` normalises them); ``s`` is then the cosine.

Stages compose. A stage fitted after others sees their effect through :class:`ScoredRows`:
``data`` (the plain rows and their labels) plus ``offsets`` (the columns earlier stages
appended), so its cross-modal scores are ``[q, u_prev]·[g, v_prev]`` while same-modality
similarities (DBNorm's gallery bank) use the plain rows.

The fitted-module machinery is shared with :class:`xcm_debias.processors.PostProcessor` through
:class:`xcm_debias.fitted.FittedModule`: constructor arguments stored untouched and validated in
``fit``; fitted tensors in registered buffers, JSON metadata in ``fitted_meta``; ``save``/``load``
through one safetensors file, no pickle; a registry of class names of its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from xcm_debias._validation import as_gallery_indices, check_positive_int
from xcm_debias.data import EmbeddingSet
from xcm_debias.fitted import FittedModule


@dataclass(frozen=True)
class ScoredRows:
    """Rows of one side of the score matrix, as a score-level stage sees them.

    Attributes:
        data: the rows (processed, L2-normalised embeddings) with their labels.
        offsets: ``[n, a]`` float32 columns appended by earlier stages (``a`` may be 0).
    """

    data: EmbeddingSet
    offsets: torch.Tensor

    @staticmethod
    def of(value: EmbeddingSet | ScoredRows, name: str) -> ScoredRows:
        """Wrap an EmbeddingSet (no earlier stage) or check a ScoredRows."""
        if isinstance(value, ScoredRows):
            return value
        if isinstance(value, EmbeddingSet):
            return ScoredRows(value, torch.zeros(len(value), 0))
        raise TypeError(
            f"{name}: expected an EmbeddingSet or ScoredRows, got {type(value).__name__}"
        )

    def __post_init__(self) -> None:
        if self.offsets.ndim != 2 or self.offsets.shape[0] != len(self.data):
            raise ValueError(
                f"offsets: expected shape [{len(self.data)}, a], got {tuple(self.offsets.shape)}"
            )

    @property
    def plain(self) -> torch.Tensor:
        """``[n, D]`` float32 rows without any stage's columns."""
        return self.data.embeddings.float()

    @property
    def augmented(self) -> torch.Tensor:
        """``[n, D + a]``: the rows with earlier stages' columns (cross-modal products)."""
        return torch.cat([self.plain, self.offsets.float()], dim=1)

    def select(self, mask: np.ndarray) -> ScoredRows:
        """The rows where the boolean ``mask`` is True."""
        return ScoredRows(self.data[mask], self.offsets[torch.from_numpy(np.asarray(mask))])

    def extended(self, columns: torch.Tensor) -> ScoredRows:
        """The same rows with ``columns`` appended to the offsets."""
        return ScoredRows(self.data, torch.cat([self.offsets.float(), columns.float()], dim=1))


@dataclass(frozen=True)
class GalleryColumns:
    """What a fitted stage appends to a gallery.

    Attributes:
        columns: ``[N, a]`` float32 ``v(g)``.
        active: ``[N, a]`` bool activation sets of gated columns (QB-Norm's set: gallery rows that
            are top-k for some bank query), or None when no column is gated. A gated query
            column is 1 when the query's raw top-1 is active for that column, else 0.
    """

    columns: torch.Tensor
    active: torch.Tensor | None = None


class ScoreNormalizer(FittedModule):
    """Base class of score-level methods (see the module docstring for the offset form).

    Subclasses implement ``_fit(query_bank, gallery_bank)``, ``_gallery_columns(gallery)``,
    the ``scale`` property, and, when the query columns are not the default (all ones, or the
    0/1 gate for gated columns), ``_query_columns``. ``needs_top1`` is True for dynamic (gated)
    methods. ``block_size`` bounds every product tile (memory O(block²)).
    """

    registry: ClassVar[dict[str, type[ScoreNormalizer]]] = {}
    _kind: ClassVar[str] = "score normaliser"
    _fit_hint: ClassVar[str] = "call fit(query_bank, gallery_bank) first"

    @property
    def needs_top1(self) -> bool:
        """True when query columns depend on each query's raw top-1 (dynamic methods)."""
        return False

    @property
    def needs_whole_gallery(self) -> bool:
        """True when one row's gallery columns depend on the other gallery rows (they are
        computed in one pass over the whole gallery, never tile by tile)."""
        return self.needs_top1

    @property
    def scale(self) -> float:
        """Factor from ``score`` units to the method's log-domain normalised score."""
        raise NotImplementedError(f"{type(self).__name__} must define scale")

    def _check_params(self) -> None:
        """Validate constructor arguments (called by ``fit``)."""
        self.block_size = check_positive_int(self.block_size, "block_size")

    # ------------------------------------------------------------------ fit
    def fit(
        self, query_bank: EmbeddingSet | ScoredRows, gallery_bank: EmbeddingSet | ScoredRows
    ) -> ScoreNormalizer:
        """Fit on calibration banks: queries of the query modality, rows of the gallery's."""
        q = ScoredRows.of(query_bank, "query_bank")
        g = ScoredRows.of(gallery_bank, "gallery_bank")
        if q.data.dim != g.data.dim or q.offsets.shape[1] != g.offsets.shape[1]:
            raise ValueError(
                f"gallery_bank: expected dimension {q.data.dim} + {q.offsets.shape[1]} offset "
                f"columns (as query_bank), got {g.data.dim} + {g.offsets.shape[1]}"
            )
        self._check_params()
        self.fitted_meta = {"dim": q.data.dim, "offset_dim": int(q.offsets.shape[1])}
        with torch.no_grad():
            self._fit(q, g)
        self.fitted_flag = torch.tensor(True)
        return self

    def fit_transform(
        self, query_bank: EmbeddingSet | ScoredRows, gallery_bank: EmbeddingSet | ScoredRows
    ) -> torch.Tensor:
        """``fit`` on the banks, then their dense ``[Q, N]`` normalised ``scores`` (small sets)."""
        return self.fit(query_bank, gallery_bank).scores(query_bank, gallery_bank)

    def _fit(self, query_bank: ScoredRows, gallery_bank: ScoredRows) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement _fit")

    # ---------------------------------------------------------------- apply
    def _rows_for_apply(self, value: EmbeddingSet | ScoredRows, name: str) -> ScoredRows:
        self.check_is_fitted()
        rows = ScoredRows.of(value, name)
        dim, offset_dim = self.fitted_meta["dim"], self.fitted_meta["offset_dim"]
        if rows.data.dim != dim or rows.offsets.shape[1] != offset_dim:
            raise ValueError(
                f"{name}: expected dimension {dim} + {offset_dim} offset columns (as the "
                f"calibration banks of {type(self).__name__}), got {rows.data.dim} + "
                f"{rows.offsets.shape[1]}"
            )
        return rows

    def gallery_columns(self, gallery: EmbeddingSet | ScoredRows) -> GalleryColumns:
        """``v(g)`` (and activation sets, for gated methods) for every gallery row."""
        rows = self._rows_for_apply(gallery, "gallery")
        with torch.no_grad():
            return self._gallery_columns(rows)

    def _gallery_columns(self, gallery: ScoredRows) -> GalleryColumns:
        raise NotImplementedError(f"{type(self).__name__} must implement _gallery_columns")

    def query_columns(
        self,
        queries: EmbeddingSet | ScoredRows,
        gallery_columns: GalleryColumns,
        top1: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``u(q)``, ``[Q, a]``, for the gallery whose columns are ``gallery_columns``.

        ``top1`` (``[Q]`` gallery row indices, each query's best row under the scores before this
        stage) is required by gated methods and ignored by the others.
        """
        rows = self._rows_for_apply(queries, "queries")
        if not isinstance(gallery_columns, GalleryColumns):
            raise TypeError(
                f"gallery_columns: expected GalleryColumns, got {type(gallery_columns).__name__}"
            )
        if self.needs_top1:
            top1 = _check_top1(top1, len(rows.data), gallery_columns.columns.shape[0], self)
        with torch.no_grad():
            return self._query_columns(rows, gallery_columns, top1)

    def _query_columns(
        self, queries: ScoredRows, gallery_columns: GalleryColumns, top1: torch.Tensor | None
    ) -> torch.Tensor:
        n, a = len(queries.data), gallery_columns.columns.shape[1]
        if gallery_columns.active is None or top1 is None:
            return torch.ones(n, a)
        return gallery_columns.active[top1].float()

    def scores(
        self, queries: EmbeddingSet | ScoredRows, gallery: EmbeddingSet | ScoredRows
    ) -> torch.Tensor:
        """Dense ``[Q, N]`` scores ``q·g + u(q)·v(g)``: for small sets, inspection and tests.

        Scalable retrieval goes through :class:`xcm_debias.Debiased`, which never forms this
        matrix. Gated methods take each query's top-1 under the scores before this stage.
        """
        q = self._rows_for_apply(queries, "queries")
        g = self._rows_for_apply(gallery, "gallery")
        with torch.no_grad():
            base = q.augmented @ g.augmented.T
            cols = self._gallery_columns(g)
            top1 = _dense_top1(base) if self.needs_top1 else None
            return base + self._query_columns(q, cols, top1) @ cols.columns.T

    # ------------------------------------------------------------ save/load
    @staticmethod
    def from_config(config: dict[str, Any], *, fitted_meta: bool = True) -> ScoreNormalizer:
        """Rebuild an (unfitted) normaliser from ``to_config`` output or a hand-written dict."""
        return ScoreNormalizer._from_registry(config, fitted_meta)

    def clone_unfitted(self) -> ScoreNormalizer:
        """A fresh, unfitted normaliser with the same constructor arguments."""
        return ScoreNormalizer.from_config(self.to_config(), fitted_meta=False)


def check_positive_float(value: object, name: str) -> float:
    """Return ``value`` as a finite float > 0 (bool rejected)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a positive number, got {value!r}")
    v = float(value)
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name}: expected a finite number > 0, got {v}")
    return v


def _check_top1(top1: object, n_queries: int, n_gallery: int, who: object) -> torch.Tensor:
    name = type(who).__name__
    if top1 is None:
        raise ValueError(
            f"{name}.query_columns: expected top1 (each query's raw top-1 gallery row, which "
            "the gate needs), got None"
        )
    return as_gallery_indices(top1, "top1", n_queries, n_gallery)


def _dense_top1(scores: torch.Tensor) -> torch.Tensor:
    """Row argmax with ties to the lower index (as ``blockwise_topk``)."""
    return torch.sort(scores, dim=1, descending=True, stable=True).indices[:, 0]
