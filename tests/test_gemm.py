"""The product libraries of ``xcm_debias.gemm``: which one ``"auto"`` takes, that each computes
``a @ bᵀ`` within float32 rounding of the float64 product, and that the one-thread limit covers
torch (and each pool thread's own OpenMP count) and is lifted afterwards."""

from __future__ import annotations

import ctypes
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from xcm_debias import ExactRetriever, gemm

ONEDNN = gemm.onednn_preferred()
LIBRARIES = ["numpy", "torch"] + (["onednn"] if ONEDNN else [])


@pytest.fixture
def auto(monkeypatch):
    """``BACKEND = "auto"`` resolved afresh in the test (and as before after it)."""
    monkeypatch.setattr(gemm, "BACKEND", "auto")
    monkeypatch.setitem(gemm._AUTO, "choice", None)


def float32_bound(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Largest error of a float32 dot product of length d against the exact one:
    ``d · 2⁻²⁴ · Σ|aᵢ bᵢ|`` (plus the rounding of the result)."""
    d = a.shape[1]
    return (d + 1) * 2.0**-24 * (a.double().abs() @ b.double().abs().T)


def test_the_probe_is_hand_computed_and_a_named_library_is_used(auto, monkeypatch):
    a = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    b = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    expected = torch.tensor([[1.0, 3.0], [3.0, 7.0], [5.0, 11.0]])
    for library in LIBRARIES:
        monkeypatch.setattr(gemm, "BACKEND", library)
        assert gemm.backend() == library
        assert torch.equal(gemm.inner_products(a, b, torch.empty(3, 2)), expected)


def test_auto_takes_onednn_only_on_an_avx512_cpu_with_a_working_probe(auto, monkeypatch):
    expected = "onednn" if ONEDNN else "numpy"
    assert gemm.backend() == expected
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert not gemm.onednn_preferred()
    assert gemm.backend() == expected  # resolved once per process


@pytest.mark.skipif(not ONEDNN, reason="oneDNN is not the fastest library on this CPU")
@pytest.mark.parametrize(
    ("variable", "value", "taken"),
    [
        ("ONEDNN_MAX_CPU_ISA", "AVX2", False),
        ("DNNL_MAX_CPU_ISA", "avx2_vnni", False),
        ("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16", True),
        ("ONEDNN_MAX_CPU_ISA", "ALL", True),
    ],
)
def test_a_cap_on_onednn_below_avx512_leaves_numpy(monkeypatch, variable, value, taken):
    monkeypatch.setenv(variable, value)
    assert gemm.onednn_preferred() is taken


@pytest.mark.skipif(not ONEDNN, reason="oneDNN is not the fastest library on this CPU")
def test_auto_leaves_small_products_to_numpy_and_gives_large_ones_to_onednn(auto):
    small = torch.empty(10, 6)
    assert gemm.inner_products(torch.ones(10, 8), torch.ones(6, 8), small) is small
    side = 2**9  # 256 × 512 × 512 = 2**26 multiply-adds: the threshold
    a, b = torch.randn(side // 2, side), torch.randn(side, side)
    assert a.shape[0] * b.shape[0] * a.shape[1] == gemm.ONEDNN_MIN_MACS
    buffer = torch.empty(side // 2, side)
    large = gemm.inner_products(a, b, buffer)
    assert large.data_ptr() != buffer.data_ptr()  # oneDNN's own new tensor
    assert bool(((large.double() - a.double() @ b.double().T).abs() <= float32_bound(a, b)).all())


def test_a_failing_onednn_probe_leaves_numpy(auto, monkeypatch):
    def missing(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("no mkldnn")

    monkeypatch.setattr(gemm, "_onednn_linear", missing)
    assert not gemm.onednn_preferred()
    monkeypatch.setattr(gemm, "_onednn_linear", lambda a, b: a @ b.T + 1)  # wrong numbers
    assert not gemm.onednn_preferred()
    assert gemm.backend() == "numpy"


def test_an_unknown_backend_is_named(monkeypatch):
    monkeypatch.setattr(gemm, "BACKEND", "blis")
    with pytest.raises(ValueError, match=r"BACKEND: expected one of .*'onednn'.*got 'blis'"):
        gemm.backend()


@pytest.mark.parametrize("library", LIBRARIES)
@settings(max_examples=25, deadline=None)
@given(
    m=st.integers(1, 70),
    n=st.integers(1, 70),
    d=st.integers(1, 40),
    seed=st.integers(0, 2**16),
)
def test_every_library_is_within_float32_rounding_of_the_float64_product(library, m, n, d, seed):
    previous = gemm.BACKEND
    gemm.BACKEND = library
    try:
        g = torch.Generator().manual_seed(seed)
        a, b = torch.randn(m, d, generator=g), torch.randn(n, d, generator=g)
        a_before, b_before = a.clone(), b.clone()
        out = gemm.inner_products(a, b, torch.empty(m, n))
    finally:
        gemm.BACKEND = previous
    assert out.shape == (m, n) and out.dtype == torch.float32
    exact = a.double() @ b.double().T
    assert bool(((out.double() - exact).abs() <= float32_bound(a, b)).all())
    assert torch.equal(a, a_before) and torch.equal(b, b_before)


def test_empty_products_take_the_buffer(monkeypatch):
    monkeypatch.setattr(gemm, "BACKEND", "onednn")
    out = gemm.inner_products(torch.empty(0, 4), torch.ones(3, 4), torch.empty(0, 3))
    assert out.shape == (0, 3)


@pytest.mark.parametrize("library", LIBRARIES)
def test_search_and_ranks_agree_through_every_library(monkeypatch, library):
    """Top-k equal to the float64 dense order and ``rank_of`` equal to each row's place in it,
    with the queries in parallel blocks, through each library."""
    monkeypatch.setattr(gemm, "BACKEND", library)
    g = torch.Generator().manual_seed(4)
    q = torch.nn.functional.normalize(torch.randn(37, 16, generator=g), dim=1)
    x = torch.nn.functional.normalize(torch.randn(203, 16, generator=g), dim=1)
    retriever = ExactRetriever(block_size=16)
    ranking = retriever.search(q, x, 9)
    order = torch.argsort(q.double() @ x.double().T, dim=1, descending=True, stable=True)
    assert torch.equal(ranking.indices, order[:, :9])
    targets = torch.arange(37) * 5 % 203
    expected_ranks = (order == targets[:, None]).int().argmax(dim=1) + 1
    assert torch.equal(retriever.rank_of(q, x, targets), expected_ranks)


def _openmp_threads() -> ctypes.CDLL | None:
    """torch's OpenMP runtime (libgomp beside it), to read a thread's own OpenMP count."""
    found = sorted((Path(torch.__file__).parent / "lib").glob("libgomp*.so*"))
    return ctypes.CDLL(str(found[0])) if found else None


def test_the_limit_makes_pool_threads_single_threaded_and_leaves_the_caller_alone():
    torch_before = torch.get_num_threads()
    blas_before = [lib.num_threads for lib in gemm._blas().lib_controllers]
    openmp = _openmp_threads()

    def counts(limit_here: bool) -> tuple[int, int]:
        if limit_here:
            gemm.single_thread_here()
        native = openmp.omp_get_max_threads() if openmp is not None else torch.get_num_threads()
        return torch.get_num_threads(), native

    torch.set_num_threads(2)
    try:
        with gemm.one_thread_per_product(2):
            assert all(lib.num_threads == 1 for lib in gemm._blas().lib_controllers)
            with ThreadPoolExecutor(1) as pool:  # a new thread takes torch's setting: 2
                assert pool.submit(counts, False).result() == (2, 2)
            with ThreadPoolExecutor(1) as pool:
                assert pool.submit(counts, True).result() == (1, 1)
            assert torch.get_num_threads() == 2  # the caller's own count is untouched
        with ThreadPoolExecutor(1) as pool:  # outside the limit: nothing changes
            assert pool.submit(counts, True).result() == (2, 2)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(torch_before)
    assert [lib.num_threads for lib in gemm._blas().lib_controllers] == blas_before
