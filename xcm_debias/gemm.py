"""Float32 matrix products through the fastest library at hand: oneDNN, OpenBLAS or MKL.

Three libraries can multiply CPU float32 tensors in this process, and they differ a lot:

- **oneDNN** (inside torch, ``torch.ops.mkldnn._linear_pointwise``): its just-in-time AVX-512
  kernels, chosen from the CPU's own features. On the AMD EPYC benchmark machine it ran a
  single-threaded 1000 × 2048 × 512 product at 180–215 GFLOP/s per core.
- **OpenBLAS** (numpy's wheels, and faiss's): it picks its kernel from the CPU or from the
  user's ``OPENBLAS_CORETYPE``. The benchmark machine's environment sets
  ``OPENBLAS_CORETYPE=Haswell`` (AVX2 kernels): 105–120 GFLOP/s per core.
- **MKL** (torch's ``matmul``): it does not dispatch its AVX-512 kernels on non-Intel CPUs; on
  that machine it ran 20% slower per core than OpenBLAS.

``BACKEND`` chooses for the products of the exact search, of rank counting, of the score
stages' gallery passes and of the processors' full-rank per-group maps (:func:`inner_products`):

- ``"auto"`` (the default) takes oneDNN for products of at least ``ONEDNN_MIN_MACS`` (2²⁶)
  multiply-adds when torch reports an AVX-512 CPU (``torch.backends.cpu.get_cpu_capability()``),
  nobody capped oneDNN below AVX-512 (``ONEDNN_MAX_CPU_ISA`` or ``DNNL_MAX_CPU_ISA``), and a
  probe product through it returns the right numbers. Otherwise it takes numpy. On AVX2 alone,
  oneDNN ran no faster than OpenBLAS; on a small product, compiling oneDNN's kernel for the
  shape costs more than the product.
- ``"onednn"`` (every size), ``"numpy"`` or ``"torch"`` (MKL) force a library, e.g.
  ``"numpy"`` to keep the OpenBLAS kernel the environment names.

The per-group maps take oneDNN with each map stored transposed (oneDNN multiplies by ``Wᵀ`` of
a contiguous ``W``), and :func:`matmul_into` (into a caller's buffer: numpy, or torch with
``BACKEND = "torch"``) where ``"auto"`` does not take oneDNN. Every library computes each entry
as a float32 dot product, so which one ran never changes a result beyond float32 rounding.
Within one process, the tile searches' products of a given shape (search, rank counting, a
streamed pass) take the same library with the same thread count, so a pair's score is the same
bits wherever they compute it. Set ``BACKEND`` once, before searching.
``benchmarks/exact_vs_faiss.py`` measures each library.

Parallel products (:func:`product_workers`, :func:`one_thread_per_product`): instead of one BLAS
call spread over the cores, the exact search and the full-rank per-group maps of the processors
run one single-threaded product per core at once, each on its own block of rows, from a small
pool of Python threads (numpy and torch release the GIL while they multiply). Each worker then
also does its block's own bookkeeping (the running top-k; the gathers, norms and scatters of a
per-group map), so that runs on every core rather than on one while the others wait, and no BLAS
worker spins between calls. (Routing the per-group maps' products alone through OpenBLAS, next to
torch's parallel copies, had made them 0.22× a bare matmul: torch's parallel regions waited for
the cores OpenBLAS's workers spun on.) While such a block runs, numpy's BLAS is limited to one
thread per call for the whole process (counted, so concurrent uses restore it only when the last
one ends), and every worker thread sets its own OpenMP thread count (oneDNN's and torch's) to
one; the caller's threads keep theirs.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

#: the library of the tile products: "auto", "onednn", "numpy" or "torch" (see the module's text)
BACKEND = "auto"
BACKENDS = ("auto", "onednn", "numpy", "torch")
#: ``ONEDNN_MAX_CPU_ISA`` values that leave oneDNN its AVX-512 kernels
_AVX512_ISAS = ("AVX512", "AVX10", "ALL", "DEFAULT")
_AUTO: dict[str, str | None] = {"choice": None}


def backend() -> str:
    """The library the tile products use now: ``BACKEND``, with ``"auto"`` resolved (once per
    process: oneDNN on an AVX-512 CPU when its probe product is right, numpy otherwise)."""
    if BACKEND not in BACKENDS:
        raise ValueError(f"xcm_debias.gemm.BACKEND: expected one of {BACKENDS}, got {BACKEND!r}")
    if BACKEND != "auto":
        return BACKEND
    if _AUTO["choice"] is None:
        _AUTO["choice"] = "onednn" if onednn_preferred() else "numpy"
    return str(_AUTO["choice"])


def onednn_preferred() -> bool:
    """Whether ``"auto"`` takes oneDNN: torch reports an AVX-512 CPU, neither
    ``ONEDNN_MAX_CPU_ISA`` nor ``DNNL_MAX_CPU_ISA`` caps oneDNN below AVX-512, and a probe product
    through it equals the hand-computed one."""
    if not torch.backends.cpu.get_cpu_capability().startswith("AVX512"):
        return False
    for variable in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        cap = os.environ.get(variable, "").strip().upper()
        if cap and not cap.startswith(_AVX512_ISAS):
            return False
    return torch.backends.mkldnn.is_available() and _onednn_probe()


def _onednn_probe() -> bool:
    """``[[1, 2], [3, 4], [5, 6]] @ [[1, 0], [1, 1]]ᵀ`` through oneDNN equals
    ``[[1, 3], [3, 7], [5, 11]]`` (False when the operator is missing or fails)."""
    a = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    b = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    try:
        out = _onednn_linear(a, b)
    except (AttributeError, RuntimeError, NotImplementedError):
        return False
    expected = torch.tensor([[1.0, 3.0], [3.0, 7.0], [5.0, 11.0]])
    return out.dtype == torch.float32 and not out.is_mkldnn and torch.equal(out, expected)


def _onednn_linear(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ bᵀ`` by oneDNN's float32 inner product (both contiguous CPU float32), a new tensor."""
    return torch.ops.mkldnn._linear_pointwise(a, b, None, "none", [], "")


#: under ``"auto"``, products of fewer multiply-adds go through numpy: oneDNN compiles a kernel
#: for each new shape on its first use (6–13 ms for small shapes, about 0.1 s for 1000 × 2048 ×
#: 512), more than a small product saves
ONEDNN_MIN_MACS = 2**26


def inner_products(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``a @ bᵀ`` (``[m, d]`` and ``[n, d]`` → ``[m, n]``) through :func:`backend`'s library.

    ``out`` is a contiguous ``[m, n]`` float32 buffer that numpy and torch write into; oneDNN
    writes only into buffers of its own, so through it the result is a new tensor. Callers use
    the returned tensor either way."""
    library = backend()
    if library == "onednn" and _onednn_ready(a, b, BACKEND == "auto"):
        return _onednn_linear(a.contiguous(), b.contiguous())
    return matmul_into(a, b.T, out)


def _onednn_ready(a: torch.Tensor, b: torch.Tensor, auto: bool) -> bool:
    macs = a.shape[0] * b.shape[0] * a.shape[1]
    return (
        _numpy_ready(a) and _numpy_ready(b) and macs > 0 and (macs >= ONEDNN_MIN_MACS or not auto)
    )


def matmul_into(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``out = a @ b`` (``[m, k] @ [k, n]``; ``b`` may be a transposed view) and return ``out``:
    through numpy, or through torch with ``BACKEND = "torch"`` or for tensors numpy cannot take
    (another dtype or device)."""
    if (
        backend() != "torch"
        and _numpy_ready(a)
        and _numpy_ready(b)
        and _numpy_ready(out)
        and out.is_contiguous()
    ):
        np.matmul(a.detach().numpy(), b.detach().numpy(), out=out.detach().numpy())
        return out
    return torch.matmul(a, b, out=out)


def _numpy_ready(x: torch.Tensor) -> bool:
    return x.device.type == "cpu" and x.dtype == torch.float32 and not x.requires_grad


_LOCK = threading.Lock()
_STATE: dict[str, Any] = {"blas": None, "openmp": None, "active": 0, "limiter": None}


def _blas() -> Any:
    """threadpoolctl's handle on the BLAS libraries loaded in this process (numpy's among them)."""
    return _threadpools("blas")


def _threadpools(user_api: str) -> Any:
    """threadpoolctl's handle on the libraries of ``user_api`` (``"blas"``, ``"openmp"``)
    loaded in this process, found once per API."""
    if _STATE[user_api] is None:
        from threadpoolctl import ThreadpoolController

        _STATE[user_api] = ThreadpoolController().select(user_api=user_api)
    return _STATE[user_api]


def product_workers() -> int:
    """How many single-threaded tile products to run at once: the threads the product's library
    would use for one product (torch's ``torch.get_num_threads()`` for oneDNN; numpy's BLAS's own
    setting, e.g. ``OPENBLAS_NUM_THREADS``), at most the CPU count; 1 (one product at a time,
    multi-threaded by the library) with ``BACKEND = "torch"``, when the BLAS cannot be found or
    when it is already limited to one thread."""
    library = backend()
    if library == "torch":
        return 1
    with _LOCK:
        if _STATE["active"]:  # already inside a parallel search: its workers' setting
            return int(_STATE["workers"])
        if library == "onednn":
            threads = [torch.get_num_threads()]
        else:
            threads = [int(lib.num_threads) for lib in _blas().lib_controllers]
    return max(1, min(max(threads, default=1), os.cpu_count() or 1))


@contextmanager
def one_thread_per_product(workers: int) -> Iterator[None]:
    """Within the block, numpy's BLAS runs each product on one thread (when ``workers`` > 1;
    nothing changes otherwise). Nested and concurrent uses share one limit, lifted when the last
    one leaves. The pool threads that run the products call :func:`single_thread_here` first
    (torch's thread count is each thread's own: the caller's stays as it is)."""
    if workers <= 1:
        yield
        return
    with _LOCK:
        if _STATE["active"] == 0:
            _STATE["limiter"] = _blas().limit(limits=1)
            _STATE["workers"] = workers
        _STATE["active"] += 1
    try:
        yield
    finally:
        with _LOCK:
            _STATE["active"] -= 1
            if _STATE["active"] == 0:
                _STATE["limiter"].restore_original_limits()
                _STATE["limiter"] = None


def single_thread_here() -> None:
    """Inside :func:`one_thread_per_product`, make the calling (pool) thread's own OpenMP count
    one, so that oneDNN and torch run single-threaded in it: a new thread takes torch's
    process-wide setting (two threads per worker on two cores, oversubscribed). Only this
    thread's count changes (``torch.set_num_threads`` would change every new thread's and leave
    the setting to whichever thread lifts the limit last). Nothing outside the limit."""
    with _LOCK:
        active = _STATE["active"]
    if active:
        one_openmp_thread_here()


def one_openmp_thread_here() -> None:
    """Make the calling thread's own OpenMP count one, so that torch's and oneDNN's operations
    run single-threaded in it; every other thread keeps its count. The product workers of
    :meth:`xcm_debias.topk.QueryBlocks.run` call it first: each runs its products, and the share
    of every tile it prepares, on its own core, and a parallel region in one of them would put
    a spinning OpenMP thread on a core the other worker's product runs on."""
    torch.get_num_threads()  # torch sets this thread's OpenMP count on first use: do it now
    _threadpools("openmp").limit(limits=1)


def run_on_workers(workers: int, work: Callable[[int], None], name: str) -> None:
    """``work(w)`` for every worker ``w < workers`` at once, one Python thread each (named
    ``name``), every product single-threaded (:func:`one_thread_per_product`); a worker's error
    reaches the caller, after numpy's BLAS gets its thread count back."""
    with (
        one_thread_per_product(workers),
        ThreadPoolExecutor(
            workers, thread_name_prefix=name, initializer=single_thread_here
        ) as pool,
    ):
        list(pool.map(work, range(workers)))


__all__ = [
    "BACKEND",
    "BACKENDS",
    "backend",
    "inner_products",
    "matmul_into",
    "one_openmp_thread_here",
    "one_thread_per_product",
    "onednn_preferred",
    "product_workers",
    "run_on_workers",
    "single_thread_here",
]
