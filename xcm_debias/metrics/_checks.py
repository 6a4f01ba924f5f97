"""Input checks shared by the metric functions (each names the argument, expected, received)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor | Sequence[object]


def as_numpy(values: object, name: str) -> np.ndarray:
    """``values`` as a numpy array (a torch tensor is copied to CPU; a list is converted)."""
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().numpy()
    if isinstance(values, np.ndarray):
        return values
    if isinstance(values, Sequence) and not isinstance(values, str):
        return np.asarray(values)
    raise TypeError(
        f"{name}: expected a numpy array, a torch tensor or a sequence, got {type(values).__name__}"
    )


def as_labels(values: object, name: str, length: int | None = None) -> np.ndarray:
    """A 1-D array of string labels (``""`` means absent)."""
    array = as_numpy(values, name)
    if array.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D label array, got shape {array.shape}")
    if length is not None and len(array) != length:
        raise ValueError(f"{name}: expected {length} labels (one per query/row), got {len(array)}")
    return array.astype(np.str_)


def as_ranks(values: object, name: str) -> np.ndarray:
    """A non-empty 1-D int64 array of 1-based ranks."""
    array = as_numpy(values, name)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(
            f"{name}: expected a non-empty 1-D array of ranks, got shape {array.shape}"
        )
    if array.dtype.kind == "f":
        if not np.isfinite(array).all() or (array != np.round(array)).any():
            raise ValueError(f"{name}: expected whole finite ranks, got non-integer values")
    elif array.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected integer ranks, got dtype {array.dtype}")
    array = array.astype(np.int64)
    if array.min() < 1:
        raise ValueError(f"{name}: expected 1-based ranks >= 1, got minimum {array.min()}")
    return array


def as_values(values: object, name: str, length: int | None = None) -> np.ndarray:
    """A non-empty 1-D float64 array of finite per-query values."""
    array = as_numpy(values, name)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name}: expected a non-empty 1-D array, got shape {array.shape}")
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected numbers, got dtype {array.dtype}")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise ValueError(
            f"{name}: expected finite values, got {int((~np.isfinite(array)).sum())} NaN/inf"
        )
    if length is not None and len(array) != length:
        raise ValueError(f"{name}: expected {length} values (one per query), got {len(array)}")
    return array


def as_mask(values: object, name: str, length: int | None = None) -> np.ndarray:
    """A 1-D boolean array."""
    array = as_numpy(values, name)
    if array.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D boolean array, got shape {array.shape}")
    if array.dtype != bool:
        raise TypeError(f"{name}: expected booleans, got dtype {array.dtype}")
    if length is not None and len(array) != length:
        raise ValueError(f"{name}: expected {length} values (one per query), got {len(array)}")
    return array


def as_relevance(values: object, name: str) -> np.ndarray:
    """A ``[Q, k]`` boolean matrix (relevance of each retrieved slot), Q ≥ 1, k ≥ 1."""
    array = as_numpy(values, name)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name}: expected a non-empty [Q, k] matrix, got shape {array.shape}")
    if array.dtype != bool:
        raise TypeError(f"{name}: expected a boolean matrix, got dtype {array.dtype}")
    return array


def as_indices(values: object, name: str, n_gallery: int | None = None) -> np.ndarray:
    """A non-empty ``[Q, k]`` int64 matrix of gallery row indices."""
    array = as_numpy(values, name)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(
            f"{name}: expected a non-empty [Q, k] index matrix, got shape {array.shape}"
        )
    if array.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected integer gallery indices, got dtype {array.dtype}")
    array = array.astype(np.int64)
    if n_gallery is not None and (array.min() < 0 or array.max() >= n_gallery):
        raise ValueError(
            f"{name}: expected gallery indices in [0, {n_gallery}), "
            f"got {array.min()}..{array.max()}"
        )
    return array
