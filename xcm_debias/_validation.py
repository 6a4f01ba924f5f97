"""Input checks shared by every public function.

Each check raises with a message that names the argument, what was expected and what came,
in the style of scikit-learn's ``check_array``: ``ValueError("queries: expected a 2-D
float tensor [N, D], got shape (3,)")``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def as_float_matrix(value: object, name: str, *, allow_empty: bool = False) -> torch.Tensor:
    """Return ``value`` as a 2-D floating torch tensor, without copying when it already is one.

    Raises ``TypeError`` for non-numeric input and ``ValueError`` for a wrong rank, an empty
    matrix (unless ``allow_empty``) or non-finite entries.
    """
    if isinstance(value, torch.Tensor):
        tensor = value
    elif isinstance(value, np.ndarray):
        if not np.issubdtype(value.dtype, np.number):
            raise TypeError(f"{name}: expected a float array, got dtype {value.dtype}")
        tensor = torch.from_numpy(np.ascontiguousarray(value))
    else:
        raise TypeError(
            f"{name}: expected a torch.Tensor or numpy array, got {type(value).__name__}"
        )
    if tensor.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{name}: expected a floating dtype (float16/bfloat16/float32/float64), "
            f"got {tensor.dtype}"
        )
    if tensor.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D tensor [N, D], got shape {tuple(tensor.shape)}")
    if not allow_empty and (tensor.shape[0] == 0 or tensor.shape[1] == 0):
        raise ValueError(
            f"{name}: expected a non-empty [N, D] tensor, got shape {tuple(tensor.shape)}"
        )
    check_finite(tensor, name)
    return tensor


def check_finite(tensor: torch.Tensor, name: str) -> None:
    """Raise ``ValueError`` naming the first row holding NaN or inf."""
    # fast path, one reduction: NaN and ±inf propagate through a sum, so a finite sum means
    # every entry is finite (an overflowing sum of finite entries only costs the full check)
    if tensor.numel() and bool(torch.isfinite(tensor.sum())):
        return
    finite = torch.isfinite(tensor)
    if not bool(finite.all()):
        bad_rows = (~finite).reshape(tensor.shape[0], -1).any(dim=1).nonzero().flatten()
        n_nan = int(torch.isnan(tensor).sum())
        n_inf = int(torch.isinf(tensor).sum())
        raise ValueError(
            f"{name}: expected finite values, got {n_nan} NaN and {n_inf} inf entries "
            f"(first bad row: {int(bad_rows[0])})"
        )


def as_gallery_indices(values: object, name: str, n_queries: int, n_gallery: int) -> torch.Tensor:
    """``values`` as an int64 tensor of one gallery row index per query, in ``[0, n_gallery)``."""
    t = torch.as_tensor(values)
    if t.dtype not in (torch.int64, torch.int32) or t.shape != (n_queries,):
        raise ValueError(
            f"{name}: expected an integer tensor of shape ({n_queries},), got {t.dtype} "
            f"{tuple(t.shape)}"
        )
    t = t.long()
    if len(t) and (int(t.min()) < 0 or int(t.max()) >= n_gallery):
        raise ValueError(
            f"{name}: expected gallery indices in [0, {n_gallery}), got "
            f"{int(t.min())}..{int(t.max())}"
        )
    return t


def check_positive_int(value: object, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` as an int >= ``minimum``; bool is rejected."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value}")
    return int(value)


def check_fraction(
    value: object, name: str, *, open_low: bool = True, open_high: bool = True
) -> float:
    """Return ``value`` as a float inside (0, 1) (bounds closed where asked)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name}: expected a number in (0, 1), got {value!r}")
    v = float(value)
    low_ok = v > 0 if open_low else v >= 0
    high_ok = v < 1 if open_high else v <= 1
    if not (low_ok and high_ok) or not np.isfinite(v):
        lo = "(" if open_low else "["
        hi = ")" if open_high else "]"
        raise ValueError(f"{name}: expected a number in {lo}0, 1{hi}, got {v}")
    return v


def as_label_array(values: object, name: str, n_rows: int) -> np.ndarray:
    """Return a per-row label column as a numpy unicode array of length ``n_rows``.

    A single string is broadcast to every row. ``None`` entries become the empty string,
    which means "absent" throughout the library (an image has no language).
    """
    if isinstance(values, str):
        return np.full(n_rows, values, dtype=f"<U{max(len(values), 1)}")
    if isinstance(values, torch.Tensor):
        values = values.cpu().numpy()
    if isinstance(values, np.ndarray):
        if values.ndim != 1:
            raise ValueError(f"{name}: expected a 1-D label array, got shape {values.shape}")
        seq: Sequence[object] = values.tolist()
    elif isinstance(values, Sequence):
        seq = values
    else:
        raise TypeError(
            f"{name}: expected a string, a list or a 1-D array of labels, got {type(values).__name__}"
        )
    if len(seq) != n_rows:
        raise ValueError(f"{name}: expected {n_rows} labels (one per row), got {len(seq)}")
    return np.array(["" if v is None else str(v) for v in seq], dtype=np.str_).reshape(n_rows)


def check_texts(texts: list[object], name: str = "texts") -> list[str]:
    """``texts`` when every entry is a non-empty string (``TypeError``/``ValueError`` naming
    the first that is not, as ``texts[3]``)."""
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"{name}[{i}]: expected a string, got {type(text).__name__}")
        if not text.strip():
            raise ValueError(f"{name}[{i}]: expected a non-empty string, got {text!r}")
    return texts  # type: ignore[return-value]
