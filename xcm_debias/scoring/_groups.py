"""Group labels of score-level stages: reading a label column and indexing fitted groups."""

from __future__ import annotations

import numpy as np

from xcm_debias.data import EmbeddingSet

ONE_GROUP = "*"


def group_labels(data: EmbeddingSet, label: str | None, who: str, name: str) -> np.ndarray:
    """The ``label`` column of ``data`` as strings (all ``"*"`` when ``label`` is None).

    ``who`` (the method) and ``name`` (the argument) make the error say what was missing.
    """
    if label is None:
        return np.full(len(data), ONE_GROUP)
    try:
        column = data.label(label)
    except KeyError as err:
        raise ValueError(f"{who}: expected a {label!r} label on {name}, got none ({err})") from None
    data.require_label(label, who, f"{name} row")
    return column.astype(str)


def group_index(
    data: EmbeddingSet, label: str | None, names: list[str], who: str, name: str
) -> np.ndarray:
    """Index of each row's group in the fitted ``names``; a group unseen at fit is an error."""
    labels = group_labels(data, label, who, name)
    lookup = {g: i for i, g in enumerate(names)}
    unseen = sorted(set(labels.tolist()) - set(lookup))
    if unseen:
        raise ValueError(
            f"{who}: {name} holds {label!r} groups unseen in calibration: {unseen[:5]}; "
            f"fitted groups: {names}"
        )
    return np.array([lookup[g] for g in labels.tolist()], dtype=np.int64)
