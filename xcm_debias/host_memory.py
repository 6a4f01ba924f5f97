"""New CPU float32 tensors whose pages the kernel may back with transparent huge pages.

A new gallery-sized tensor costs more than its arithmetic on its first writes: each 4 KiB page
is a page fault the kernel answers with a zeroed page. Filling a new ``200000 × 512`` float32
tensor (400 MB) took 0.18–0.23 s from torch's allocator on the benchmark machine, as much as a
third of a bare ``x @ W`` of that size, and 0.03 s from numpy's. numpy advises the kernel
(``madvise(MADV_HUGEPAGE)``, Linux) to back its allocations of 4 MiB or more with 2 MiB pages
when transparent huge pages are in ``madvise`` mode (the common default; the machine's
``/sys/kernel/mm/transparent_hugepage/enabled`` says), so they fault 512× less often; torch's
CPU allocator does not. The buffers here are numpy's, shared with torch without a copy
(``torch.from_numpy``): on other systems, or with huge pages off, they are ordinary memory.
"""

from __future__ import annotations

import numpy as np
import torch


def empty_rows(n: int, d: int) -> torch.Tensor:
    """An uninitialised ``[n, d]`` float32 CPU tensor (see the module docstring)."""
    return torch.from_numpy(np.empty((n, d), dtype=np.float32))


def zero_rows(n: int, d: int) -> torch.Tensor:
    """A zeroed ``[n, d]`` float32 CPU tensor (see the module docstring)."""
    return torch.from_numpy(np.zeros((n, d), dtype=np.float32))


__all__ = ["empty_rows", "zero_rows"]
