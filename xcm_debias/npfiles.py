"""Reading ``.npy``/``.npz`` files safely: never with pickle, never suggesting it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def load_numpy(path: str | Path, mmap_mode: str | None = None) -> Any:
    """``np.load`` without pickle; a file that is not a plain ``.npy``/``.npz`` gets a clear
    error (numpy's own message suggests ``allow_pickle=True``, which must never be used on
    files one did not write: unpickling runs arbitrary code)."""
    path = Path(path)
    try:
        return np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ValueError(
            f"{path}: not a readable {path.suffix or 'numpy'} file of plain arrays (damaged, "
            "truncated, another format, or Python objects, which xcm_debias never loads)"
        ) from None
