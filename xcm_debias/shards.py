"""A gallery kept on disk as ``.npy`` shards, read tile by tile, ahead of the search.

Galleries of tens of millions of rows are stored the way clip-retrieval writes them: float16
``img_emb/img_emb_<n>.npy`` files, ``[rows, D]`` each, concatenated in shard order. A
:class:`ShardedGallery` reads their headers only (shape, dtype, where the data starts); its
rows are read when a search asks for them, one tile of ``block_size`` rows at a time. The exact
search takes the tiles as row ranges (:meth:`ShardedGallery.row_ranges`): its product workers
read a share of each tile themselves (:meth:`ShardedGallery.read`) while the kernel reads ahead
into its page cache. :meth:`ShardedGallery.tiles` reads whole tiles into three reused buffers
instead, the next by a background thread (the read releases the GIL) while the caller uses the
current one. Tiles are cut at multiples of ``block_size`` of the *global* row index (a tile may
span two shards), exactly as the in-memory search cuts the concatenated gallery, so both score
the same tiles and return the same ranking. The process holds a few tiles of the gallery, never
the gallery: it may be larger than memory.

Files are opened with plain reads (``readinto`` at the data offset numpy's header gives), not
mapped: mapped pages would count in the process's resident memory; read pages stay in the
kernel's page cache, which the kernel evicts as it needs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from xcm_debias._validation import check_positive_int
from xcm_debias.npfiles import load_numpy

_DTYPES = (np.float16, np.float32, np.float64)


def _shard_number(path: Path) -> tuple[int, str]:
    """Sort key: the trailing number of ``img_emb_12.npy`` (so 2 comes before 10), then name."""
    match = re.search(r"(\d+)$", path.stem)
    return (int(match.group(1)) if match else -1, path.name)


class ShardedGallery:
    """Gallery rows stored in ``.npy`` files, in the given order (see the module docstring).

    Args:
        paths: the shard files, in row order; each a 2-D float16/float32/float64 ``.npy``
            array (C order), all of one dimension and dtype.
    """

    def __init__(self, paths: Sequence[str | Path]) -> None:
        if isinstance(paths, (str, Path)) or not isinstance(paths, Sequence):
            raise TypeError(
                f"paths: expected a sequence of .npy paths, got {type(paths).__name__} "
                "(ShardedGallery.from_folder reads a folder)"
            )
        if not paths:
            raise ValueError("paths: expected at least one .npy shard, got none")
        self.paths = [Path(p) for p in paths]
        sizes, offsets, dims, dtypes = [], [], set(), set()
        for path in self.paths:
            array = load_numpy(path, mmap_mode="r")
            if not isinstance(array, np.memmap) or array.ndim != 2:
                raise ValueError(
                    f"paths: expected 2-D .npy arrays [rows, D], got shape "
                    f"{getattr(array, 'shape', None)} in {path}"
                )
            if array.dtype.type not in _DTYPES or not array.flags.c_contiguous:
                raise ValueError(
                    f"paths: expected float16/float32/float64 arrays in C order, got "
                    f"{array.dtype}{'' if array.flags.c_contiguous else ' (Fortran order)'} "
                    f"in {path}"
                )
            sizes.append(int(array.shape[0]))
            offsets.append(int(array.offset))
            dims.add(int(array.shape[1]))
            dtypes.add(array.dtype)
            del array
        if len(dims) != 1 or len(dtypes) != 1:
            raise ValueError(
                f"paths: expected shards of one dimension and dtype, got dimensions "
                f"{sorted(dims)} and dtypes {sorted(map(str, dtypes))}"
            )
        self.sizes = sizes
        self._data_offsets = offsets
        self.dim = dims.pop()
        self.dtype = np.dtype(dtypes.pop())
        self.starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        if self.n_rows == 0:
            raise ValueError("paths: expected at least one gallery row, got empty shards")

    @classmethod
    def from_folder(cls, folder: str | Path) -> ShardedGallery:
        """The shards of a folder: ``img_emb/img_emb_<n>.npy`` of a clip-retrieval output, or
        the folder's own ``*.npy`` files, in the order of their trailing number."""
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(
                f"folder: expected a folder of .npy shards, got {str(folder)!r}"
            )
        paths = sorted((folder / "img_emb").glob("img_emb_*.npy"), key=_shard_number)
        paths = paths or sorted(folder.glob("*.npy"), key=_shard_number)
        if not paths:
            raise ValueError(f"folder: expected .npy shards in {str(folder)!r}, found none")
        return cls(paths)

    def __repr__(self) -> str:
        return f"ShardedGallery({len(self.paths)} shards, {self.n_rows} x {self.dim} {self.dtype})"

    @property
    def n_rows(self) -> int:
        return int(self.starts[-1])

    def __len__(self) -> int:
        return self.n_rows

    def read(self, start: int, stop: int, out: np.ndarray | None = None) -> np.ndarray:
        """Rows ``start .. stop - 1`` (global indices) in the stored dtype, into ``out`` when
        given (a ``[stop - start, D]`` array of that dtype)."""
        if not 0 <= start <= stop <= self.n_rows:
            raise ValueError(
                f"start, stop: expected 0 <= start <= stop <= {self.n_rows}, got {start}, {stop}"
            )
        if out is None:
            out = np.empty((stop - start, self.dim), dtype=self.dtype)
        filled = 0
        for shard, rows, offset in self._pieces(start, stop):
            target = memoryview(out[filled : filled + rows]).cast("B")
            with open(self.paths[shard], "rb") as f:
                f.seek(offset)
                if f.readinto(target) != len(target):
                    raise ValueError(f"{self.paths[shard]}: shorter than its header says")
            filled += rows
        return out

    def _pieces(self, start: int, stop: int) -> Iterator[tuple[int, int, int]]:
        """``(shard, rows, byte offset in its file)`` of each shard's part of the global rows
        ``start .. stop - 1``, in order (empty shards and parts skipped)."""
        row_bytes = self.dim * self.dtype.itemsize
        first = int(np.searchsorted(self.starts, start, side="right")) - 1
        for shard in range(max(first, 0), len(self.paths)):
            lo = max(start, int(self.starts[shard]))
            hi = min(stop, int(self.starts[shard + 1]))
            if lo >= stop:
                return
            if hi > lo:
                yield (
                    shard,
                    hi - lo,
                    self._data_offsets[shard] + (lo - int(self.starts[shard])) * row_bytes,
                )

    def row_ranges(self, block_size: int, ahead: int = 2) -> Iterator[tuple[int, range]]:
        """``(start, range(start, stop))`` for the tiles ``[start, start + block_size)`` of the
        gallery, in order, without reading them: for callers that read their own parts of each
        tile (:meth:`read`, e.g. the exact search's workers, each a share of the rows). As each
        range is handed out, the kernel is asked to read the rows ``ahead`` tiles further into
        its page cache (``posix_fadvise(WILLNEED)``, which returns at once), so the reads find
        them there."""
        block = check_positive_int(block_size, "block_size")
        for start in range(0, self.n_rows, block):
            ahead_start = start + ahead * block
            self.will_need(min(ahead_start, self.n_rows), min(ahead_start + block, self.n_rows))
            yield start, range(start, min(start + block, self.n_rows))

    def will_need(self, start: int, stop: int) -> None:
        """Ask the kernel to start reading rows ``start .. stop - 1`` into its page cache (where
        the system offers ``posix_fadvise``; nothing otherwise)."""
        if not hasattr(os, "posix_fadvise"):
            return
        row_bytes = self.dim * self.dtype.itemsize
        for shard, rows, offset in self._pieces(start, stop):
            fd = os.open(self.paths[shard], os.O_RDONLY)
            try:
                os.posix_fadvise(fd, offset, rows * row_bytes, os.POSIX_FADV_WILLNEED)
            finally:
                os.close(fd)

    def tiles(self, block_size: int, prefetch: bool = True) -> Iterator[tuple[int, torch.Tensor]]:
        """``(start, rows)`` for the tiles ``[start, start + block_size)`` of the gallery, in
        order, as torch tensors of the stored dtype. Tiles are read into three reused buffers:
        a yielded tile stays as it is while the next one is asked for and used, and is
        overwritten when the one after that is asked for, so a caller may still score tile
        ``i`` while it asks for tile ``i + 1`` (:meth:`xcm_debias.topk.QueryBlocks.run` with
        ``window=2``). With ``prefetch``, the next tile is read by a background thread while the
        caller uses the current one."""
        block = check_positive_int(block_size, "block_size")
        starts = list(range(0, self.n_rows, block))
        buffers = [
            np.empty((min(block, self.n_rows), self.dim), dtype=self.dtype) for _ in range(3)
        ]

        def load(i: int) -> np.ndarray:
            stop = min(starts[i] + block, self.n_rows)
            return self.read(starts[i], stop, buffers[i % 3][: stop - starts[i]])

        if not prefetch:
            for i, start in enumerate(starts):
                yield start, torch.from_numpy(load(i))
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="xcm-shards") as pool:
            pending: Future[np.ndarray] = pool.submit(load, 0)
            for i, start in enumerate(starts):
                rows = pending.result()
                if i + 1 < len(starts):  # the buffer of tile i - 2, which the caller is done with
                    pending = pool.submit(load, i + 1)
                yield start, torch.from_numpy(rows)


__all__ = ["ShardedGallery"]
