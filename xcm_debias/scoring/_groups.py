"""Group labels of score-level stages: reading a label column and indexing fitted groups."""

from __future__ import annotations

import warnings

import numpy as np
import torch

from xcm_debias import soft_labels
from xcm_debias.data import EmbeddingSet

ONE_GROUP = "*"


def group_labels(data: EmbeddingSet, label: str | None, who: str, name: str) -> np.ndarray:
    """The ``label`` column of ``data`` as strings (all ``"*"`` when ``label`` is None).

    ``who`` (the method) and ``name`` (the argument) make the error say what was missing.
    """
    if label is None:
        return np.full(len(data), ONE_GROUP)
    return soft_labels.label_column(data, label, who, name)


def group_weights(
    data: EmbeddingSet, label: str | None, names: list[str], who: str, name: str
) -> torch.Tensor:
    """``[n, len(names)]`` weights of each row over the fitted groups ``names``: one-hot for a
    labelled row, the soft label for an inferred one (see :mod:`xcm_debias.soft_labels`), all
    zero (no offset, with an ``UnseenGroupWarning``) for a group unseen in calibration; all
    ones when ``label`` is None (one group)."""
    if label is None:
        return torch.ones(len(data), len(names))
    return soft_labels.group_weights(data, label, names, who, name)


def absent_label(data: EmbeddingSet, label: str | None) -> bool:
    """True when ``label`` names a column that no row of ``data`` carries (absent or all empty)."""
    if label is None:
        return False
    try:
        column = data.label(label)
    except KeyError:
        return True
    return bool(column.dtype.kind == "U" and (column == "").all())


def skipped_stage(who: str, label: str | None, bank: EmbeddingSet) -> str:
    """Warn that ``who`` is skipped because no calibration row of ``bank`` carries ``label``, and
    return the one-line reason kept in the stage's ``fitted_meta["skipped"]``."""
    message = (
        f"{who} skipped: no {label!r} label on any calibration {bank.modality[0]} row "
        "(the stage applies no offset)"
    )
    warnings.warn(message, UserWarning, stacklevel=4)
    return message
