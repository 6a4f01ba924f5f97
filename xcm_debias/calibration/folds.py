"""Item folds and the one out-of-fold loop of cross-fitting.

Cross-fitting (Chernozhukov et al. 2018, "Double/debiased machine learning") keeps a fitted
stage from grading its own homework: calibration items are dealt to ``F`` folds, and each
fold's rows are transformed (or scored) by a copy of the stage fitted on the other folds.
Items, not rows, are dealt, so an item's images and captions always share a fold and no copy
ever sees a translation of the row it transforms.

This module depends on :mod:`xcm_debias.data` alone: :class:`xcm_debias.processors.Chain`,
:class:`xcm_debias.Debiased` and the recall guard (:mod:`xcm_debias.calibration.guard`) all
deal their folds here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np
import torch

from xcm_debias.data import EmbeddingSet


class Transformer(Protocol):
    """Anything fitted with ``transform(data) -> EmbeddingSet``."""

    def transform(self, data: EmbeddingSet) -> EmbeddingSet: ...


def item_folds(calibration: EmbeddingSet, n_folds: int, seed: int, owner: str) -> np.ndarray:
    """Fold of each row for cross-fitting, by item: an item's images and captions share a fold.

    The items are permuted with ``seed`` and dealt round-robin to ``min(n_folds, n_items)``
    folds, so every fold holds at least one item: asking for more folds than there are
    calibration items gives leave-one-item-out, the limit of F-fold cross-fitting. Fold numbers
    run from 0 to the effective number of folds − 1. ``owner`` prefixes the error raised when
    fewer than 2 items leave nothing to fit a fold's copy on.
    """
    if not isinstance(calibration, EmbeddingSet):
        raise TypeError(f"calibration: expected an EmbeddingSet, got {type(calibration).__name__}")
    if isinstance(n_folds, bool) or not isinstance(n_folds, (int, np.integer)) or n_folds < 2:
        raise ValueError(f"n_folds: expected an integer >= 2, got {n_folds!r}")
    items, inverse = np.unique(calibration.item, return_inverse=True)
    if len(items) < 2:
        raise ValueError(
            f"{owner}.fit: cross-fitting expected at least 2 calibration items (a fold's copy is "
            f"fitted on the other items), got {len(items)}"
        )
    n_effective = min(int(n_folds), len(items))
    item_fold = np.empty(len(items), dtype=np.int64)
    item_fold[np.random.default_rng(seed).permutation(len(items))] = (
        np.arange(len(items)) % n_effective
    )
    return item_fold[inverse.reshape(-1)]


def out_of_fold(
    data: EmbeddingSet,
    folds: np.ndarray,
    fit_copy: Callable[[EmbeddingSet], Transformer],
    where: str,
) -> EmbeddingSet:
    """``data`` with each fold's rows transformed by ``fit_copy(rows of the other folds)``.

    ``folds`` (from :func:`item_folds`) gives each row's fold; a fold with no row is skipped.
    A copy that cannot be fitted raises a ValueError starting with ``where`` (which stage) and
    naming the fold.
    """
    folds = np.asarray(folds)
    if folds.shape != (len(data),):
        raise ValueError(f"folds: expected shape ({len(data)},), got {folds.shape}")
    out: torch.Tensor | None = None
    for fold in range(int(folds.max()) + 1):
        held_out = folds == fold
        if not held_out.any():
            continue
        try:
            copy = fit_copy(data[~held_out])
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{where} fitted without fold {fold} failed: {exc}") from exc
        part = copy.transform(data[held_out]).embeddings.float()
        if out is None:
            out = torch.empty(len(data), part.shape[1], dtype=torch.float32)
        out[torch.from_numpy(held_out)] = part
    assert out is not None  # every row lies in some fold
    return data.with_embeddings(out)
