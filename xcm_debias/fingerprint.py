"""Full content fingerprints of embedding sets, for caches keyed by what a set holds.

A cache keyed by object identity or by sampled rows serves stale results after an edit (a
changed row of a 10000-row gallery, or an edit made through the numpy array a tensor shares
memory with, which torch's version counter never sees). :func:`content_fingerprint` reads every
byte: the embeddings' shape, dtype and bytes and every label column, through CRC-32 and
Adler-32 (zlib, together 64 bits; about 1 GB/s, a fraction of one search over the same rows).
It detects changes, it is not a cryptographic hash.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import torch

from xcm_debias.data import EmbeddingSet

_CHUNK = 1 << 26  # bytes hashed per call (zlib releases the GIL on each)


def _update(crc: int, adler: int, data: memoryview) -> tuple[int, int]:
    for start in range(0, len(data), _CHUNK):
        part = data[start : start + _CHUNK]
        crc, adler = zlib.crc32(part, crc), zlib.adler32(part, adler)
    return crc, adler


def tensor_bytes(x: torch.Tensor) -> memoryview:
    """The bytes of ``x`` (CPU, contiguous; bfloat16 read as raw 16-bit words)."""
    x = x.detach().cpu().contiguous()
    return memoryview(x.reshape(-1).view(torch.uint8).numpy()).cast("B")


def content_fingerprint(data: EmbeddingSet, columns: Sequence[str] | None = None) -> str:
    """A fingerprint of every embedding byte and of the label columns ``columns`` (default:
    every label and extra column)."""
    x = data.embeddings
    crc, adler = zlib.crc32(repr((tuple(x.shape), str(x.dtype))).encode()), 1
    crc, adler = _update(crc, adler, tensor_bytes(x))
    table = data.to_columns()
    for name in sorted(table) if columns is None else columns:
        crc, adler = _update(crc, adler, memoryview(name.encode()))
        crc, adler = _update(crc, adler, memoryview(np.ascontiguousarray(table[name])).cast("B"))
    return f"{crc:08x}{adler:08x}"
