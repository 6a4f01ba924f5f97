"""Soft labels: how inferred group labels (``language``, ``culture``) travel on an EmbeddingSet.

A row that lacks a label the debiasing stages need (a bare query string has no ``language``, a
photo collection no ``culture``) can have it inferred by a fitted classifier
(:class:`xcm_debias.calibration.labels.LabelModels`). The inference is written onto the set
itself, as ordinary columns, so it follows the rows through indexing, ``where``, ``concat``,
``with_embeddings``, ``with_labels`` and every processor without any special plumbing:

* the label column (``language`` / ``culture``) of an inferred row holds the classifier's most
  probable class, so a stage that knows nothing of soft labels still sees a valid label;
* ``inferred:<label>`` (bool extra column) marks the rows whose label was inferred (False on
  rows that carried their own label);
* ``soft:<label>=<class>`` (float32 extra columns, one per class of the classifier) hold the
  inferred row's **soft label**: its calibrated posterior probabilities. Rows that carried their
  own label hold zeros there (their label is the column);
* ``confident:<label>`` (bool extra column) is False on the inferred rows whose largest
  posterior is below the label model's threshold (True elsewhere);
* ``from_text:<label>`` (bool extra column, present when some row's ``language`` was read from
  its string rather than its embedding) marks those rows (their soft label is one-hot).

Stages read them through two functions:

* :func:`group_weights` (score-level offsets, e.g. GroupBalance, ExposureShuffle): ``[n, k]``
  weights over the stage's fitted groups — one-hot for a labelled row, the soft label for an
  inferred one. An offset linear in a one-hot group vector, ``u(q)·v(g)`` with ``v(g) =
  onehot(B(g))``, becomes the posterior-weighted offset ``Σ_b p_b(g) u_b(q)`` and stays exact on
  any inner-product index; a zero row means no offset (the identity).
* :func:`group_codes` (per-group maps, e.g. LanguageAlignment): the group of each row (an
  inferred row's most probable one), ``-1`` (identity) for an unconfident inferred row or a
  group unseen at fit. Offsets keep the full posterior even on unconfident rows: no offset is
  not a neutral choice there (an offset is relative to the other groups'), the expected offset
  is (on Multi30K, zeroing the offsets of rows below 0.9 confidence cost 3.6 points of
  image→text recall@1).

A label value unseen at fit (a language the calibration set did not have) gets the identity and
one :class:`UnseenGroupWarning` per call, naming the values and counting the rows.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch

from xcm_debias.data import LABELS, EmbeddingSet

INFERRED = "inferred:"
FROM_TEXT = "from_text:"
SOFT = "soft:"
CONFIDENT = "confident:"


class UnseenGroupWarning(UserWarning):
    """A row's group label was not seen at fit: the row gets the identity (no offset, no map).

    Carries what a report counts: ``who`` (the stage), ``values`` (the unseen labels) and
    ``rows`` (how many rows got the identity), e.g. from ``warnings.catch_warnings(record=True)``.
    """

    def __init__(self, message: str, who: str = "", values: Sequence[str] = (), rows: int = 0):
        super().__init__(message)
        self.who, self.values, self.rows = who, list(values), int(rows)


def inferred_name(label: str) -> str:
    """Name of the bool extra column marking the rows whose ``label`` was inferred."""
    return f"{INFERRED}{label}"


def from_text_name(label: str) -> str:
    """Name of the bool extra column marking the inferred rows whose ``label`` was read from
    their string (their soft label is one-hot), not from the embedding."""
    return f"{FROM_TEXT}{label}"


def soft_name(label: str, cls: str) -> str:
    """Name of the float extra column holding the soft label of class ``cls`` of ``label``."""
    return f"{SOFT}{label}={cls}"


def confident_name(label: str) -> str:
    """Name of the bool extra column: False on inferred rows below the confidence threshold."""
    return f"{CONFIDENT}{label}"


def inferred_rows(data: EmbeddingSet, label: str) -> np.ndarray:
    """Bool mask of the rows whose ``label`` was inferred (all False when none was)."""
    column = data.extra.get(inferred_name(label))
    if column is None:
        return np.zeros(len(data), dtype=bool)
    return column.astype(bool)


def soft_classes(data: EmbeddingSet, label: str) -> list[str]:
    """Classes of the soft-label columns of ``label`` on ``data`` (in column order)."""
    prefix = f"{SOFT}{label}="
    return [name[len(prefix) :] for name in data.extra if name.startswith(prefix)]


def soft_labels(data: EmbeddingSet, label: str, classes: Sequence[str]) -> np.ndarray:
    """``[n, len(classes)]`` float32 soft labels of ``label`` mapped onto ``classes``.

    A class without a column (the classifier never saw it) gets zero weight.
    """
    extra = data.extra
    out = np.zeros((len(data), len(classes)), dtype=np.float32)
    for j, cls in enumerate(classes):
        column = extra.get(soft_name(label, str(cls)))
        if column is not None:
            out[:, j] = column
    return out


def with_inferred(
    data: EmbeddingSet,
    label: str,
    rows: np.ndarray,
    classes: Sequence[str],
    soft: np.ndarray,
    best: np.ndarray,
    confident: np.ndarray,
) -> EmbeddingSet:
    """``data`` with ``label`` inferred on the rows of the bool mask ``rows``.

    ``soft`` (``[rows.sum(), len(classes)]``) are those rows' posteriors, ``best`` their most
    probable class names, ``confident`` whether that class is probable enough for a per-group
    map. Rows outside ``rows`` keep their label; a set that already holds soft-label columns of
    ``label`` keeps their values on those rows.
    """
    flags = inferred_rows(data, label) | rows
    column = data.label(label).astype(object)
    column[rows] = best
    extra = data.extra
    extra[inferred_name(label)] = flags
    sure = extra.get(confident_name(label), np.ones(len(data), dtype=bool)).astype(bool).copy()
    sure[rows] = confident
    extra[confident_name(label)] = sure
    previous = soft_labels(data, label, list(classes))
    for j, cls in enumerate(classes):
        values = previous[:, j].copy()
        values[rows] = soft[:, j]
        extra[soft_name(label, str(cls))] = values
    return _relabelled(data, {label: column.astype(str)}, extra)


def strip_labels(
    data: EmbeddingSet, names: Sequence[str] = ("language", "culture")
) -> EmbeddingSet:
    """``data`` with the labels ``names`` emptied on every row (to try label-free search)."""
    return _relabelled(data, {name: np.full(len(data), "") for name in names}, data.extra)


def _relabelled(
    data: EmbeddingSet, labels: dict[str, np.ndarray], extra: dict[str, np.ndarray]
) -> EmbeddingSet:
    """Same embeddings with ``labels`` replaced and ``extra`` as the extra columns.

    Not ``with_labels``: a set whose rows repeat (a query repeated once per relevant target,
    as rank computations build) has repeated ids, which ``with_labels`` refuses.
    """
    columns = {name: data.label(name) for name in LABELS}
    columns.update(labels)
    return EmbeddingSet._new(data.embeddings, columns, extra)


def _lookup(values: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """Index of each value among ``names``; ``-1`` where absent (vectorised binary search)."""
    if not len(names):
        return np.full(len(values), -1, dtype=np.int64)
    array = np.asarray(names, dtype=np.str_)
    by_name = np.argsort(array)
    at = np.searchsorted(array[by_name], values).clip(max=len(array) - 1)
    return np.where(array[by_name][at] == values, by_name[at], -1).astype(np.int64)


def label_codes(
    values: np.ndarray, names: Sequence[str], who: str, what: str, stacklevel: int = 3
) -> np.ndarray:
    """Index of each label value among the fitted ``names``; ``-1`` and one
    :class:`UnseenGroupWarning` (naming them and counting rows) for values unseen at fit."""
    codes = _lookup(values, names)
    unseen = codes < 0
    if unseen.any():
        seen_at_fit, missing = list(names), sorted(set(values[unseen].tolist()))
        message = (
            f"{who}: {what} {missing} not seen at fit ({len(seen_at_fit)} fitted: "
            f"{seen_at_fit}); their {int(unseen.sum())} row(s) get the identity (left "
            "unchanged, no offset)"
        )
        warnings.warn(
            UnseenGroupWarning(message, who, missing, int(unseen.sum())),
            stacklevel=stacklevel + 1,
        )
    return codes


def label_column(data: EmbeddingSet, label: str, who: str, name: str) -> np.ndarray:
    """The ``label`` column of ``data`` as strings; a ValueError when a row lacks it (``who``,
    the method, and ``name``, the argument, make the error say what was missing)."""
    try:
        column = data.label(label)
    except KeyError as err:
        raise ValueError(f"{who}: expected a {label!r} label on {name}, got none ({err})") from None
    data.require_label(label, who, f"{name} row")
    return column.astype(str)


def _hard_codes(
    data: EmbeddingSet, label: str, names: Sequence[str], who: str, name: str
) -> tuple[np.ndarray, np.ndarray]:
    """Codes of the labelled rows (``-1`` elsewhere) and the mask of the inferred rows."""
    column = label_column(data, label, who, name)
    inferred = inferred_rows(data, label)
    codes = np.full(len(data), -1, dtype=np.int64)
    codes[~inferred] = label_codes(column[~inferred], names, who, label, stacklevel=4)
    return codes, inferred


def group_codes(
    data: EmbeddingSet, label: str, names: Sequence[str], who: str, name: str
) -> np.ndarray:
    """Group code of each row among ``names`` for a per-group map; ``-1`` means identity.

    Labelled rows: their label's position (unseen at fit: ``-1`` with an
    :class:`UnseenGroupWarning`). Inferred rows: the most probable fitted class, or ``-1`` when
    the row is not confident (largest posterior below the threshold) or has no probability on
    any fitted class.
    """
    codes, inferred = _hard_codes(data, label, names, who, name)
    if inferred.any():
        soft = soft_labels(data[inferred], label, names)
        sure = data.extra.get(confident_name(label), np.ones(len(data), dtype=bool))[inferred]
        codes[inferred] = np.where(sure & (soft.sum(axis=1) > 0), soft.argmax(axis=1), -1)
    return codes


def group_weights(
    data: EmbeddingSet, label: str, names: Sequence[str], who: str, name: str
) -> torch.Tensor:
    """``[n, len(names)]`` float32 group weights of each row for a linear per-group offset.

    One-hot for a labelled row (all zero, with an :class:`UnseenGroupWarning`, for a group unseen
    at fit); the posterior for an inferred row, whatever its confidence (the expected offset).
    """
    codes, inferred = _hard_codes(data, label, names, who, name)
    weights = np.zeros((len(data), len(names)), dtype=np.float32)
    hard = np.flatnonzero((codes >= 0) & ~inferred)
    weights[hard, codes[hard]] = 1.0
    if inferred.any():
        weights[inferred] = soft_labels(data[inferred], label, names)
    return torch.from_numpy(weights)


__all__ = [
    "UnseenGroupWarning",
    "confident_name",
    "from_text_name",
    "group_codes",
    "group_weights",
    "inferred_name",
    "inferred_rows",
    "label_column",
    "label_codes",
    "soft_classes",
    "soft_labels",
    "soft_name",
    "strip_labels",
    "with_inferred",
]
