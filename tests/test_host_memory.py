"""Buffers of :mod:`xcm_debias.host_memory`: float32 CPU tensors of the asked shape, zeros when
asked, each on memory of its own that torch and numpy share."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from xcm_debias import host_memory


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 300), st.integers(0, 40))
def test_rows_have_the_shape_dtype_and_contents_asked(n: int, d: int) -> None:
    empty, zeros = host_memory.empty_rows(n, d), host_memory.zero_rows(n, d)
    for t in (empty, zeros):
        assert t.shape == (n, d) and t.dtype == torch.float32 and t.device.type == "cpu"
        assert t.is_contiguous()
    assert int(torch.count_nonzero(zeros)) == 0


def test_each_buffer_is_its_own_memory_shared_with_numpy() -> None:
    """Writes through torch show in the numpy view, and two buffers never alias."""
    a, b = host_memory.zero_rows(2048, 512), host_memory.zero_rows(2048, 512)  # 4 MiB each
    a[3, 7] = 2.5
    assert a.numpy()[3, 7] == np.float32(2.5)
    assert float(b.abs().sum()) == 0.0
    assert not np.shares_memory(a.numpy(), b.numpy())
