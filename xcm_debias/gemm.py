"""Float32 matrix products into a caller's buffer, through the faster BLAS of the two at hand.

torch's CPU ``matmul`` calls MKL; numpy's calls the OpenBLAS its wheels ship. On the AMD EPYC
benchmark machine MKL takes a slower path (it does not dispatch its AVX-512 kernels on non-Intel
CPUs): OpenBLAS ran the same float32 GEMM about 20% faster per core (110 against 90 GFLOP/s per
core at 1000 × 4096 × 512), which is what faiss — also OpenBLAS — had over the exact search.
So products of CPU float32 tensors go through numpy on views of the same memory (no copy);
anything else (another dtype or device) through torch. Both compute each entry as a float32
dot product; which one ran never changes a result beyond float32 rounding, and within one
process every product of a given shape takes the same path.

``BACKEND`` (``"numpy"``, the default, or ``"torch"``) chooses for CPU float32 products; set it
once, before searching, e.g. on an Intel CPU where MKL is the faster, or to keep every thread
in torch's pool (OpenBLAS keeps its own worker threads, which spin for a while after each
product). ``benchmarks/exact_vs_faiss.py`` measures both.

Parallel products (:func:`product_workers`, :func:`one_thread_per_product`): instead of one BLAS
call spread over the cores, the exact search and the full-rank per-group maps of the processors
run one single-threaded product per core at once, each on its own block of rows, from a small
pool of Python threads (numpy releases the GIL while it multiplies). Each worker then also does
its block's own bookkeeping (the running top-k; the gathers, norms and scatters of a per-group
map), so that runs on every core rather than on one while the others wait, and no BLAS worker
spins between calls. (Routing the per-group maps' products alone through OpenBLAS, next to
torch's parallel copies, had made them 0.22× a bare matmul: torch's parallel regions waited for
the cores OpenBLAS's workers spun on.) While such a block runs, numpy's BLAS is limited to one
thread per call for the whole process (counted, so concurrent uses restore it only when the last
one ends).
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

BACKEND = "numpy"


def matmul_into(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``out = a @ b`` (``[m, k] @ [k, n]``; ``b`` may be a transposed view) and return ``out``."""
    if (
        BACKEND == "numpy"
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
_STATE: dict[str, Any] = {"blas": None, "active": 0, "limiter": None}


def _blas() -> Any:
    """threadpoolctl's handle on the BLAS libraries loaded in this process (numpy's among them),
    found once."""
    if _STATE["blas"] is None:
        from threadpoolctl import ThreadpoolController

        _STATE["blas"] = ThreadpoolController().select(user_api="blas")
    return _STATE["blas"]


def product_workers() -> int:
    """How many single-threaded tile products to run at once: the threads numpy's BLAS would use
    for one product (its own setting, e.g. ``OPENBLAS_NUM_THREADS``), at most the CPU count;
    1 (one product at a time, multi-threaded by the BLAS) with ``BACKEND = "torch"``, when the
    BLAS cannot be found or when it is already limited to one thread."""
    if BACKEND != "numpy":
        return 1
    with _LOCK:
        if _STATE["active"]:  # already inside a parallel search: its workers' setting
            return int(_STATE["workers"])
        threads = [int(lib.num_threads) for lib in _blas().lib_controllers]
    return max(1, min(max(threads, default=1), os.cpu_count() or 1))


@contextmanager
def one_thread_per_product(workers: int) -> Iterator[None]:
    """Within the block, numpy's BLAS runs each product on one thread (when ``workers`` > 1;
    nothing changes otherwise). Nested and concurrent uses share one limit, lifted when the last
    one leaves."""
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


def run_on_workers(workers: int, work: Callable[[int], None], name: str) -> None:
    """``work(w)`` for every worker ``w < workers`` at once, one Python thread each (named
    ``name``), every product single-threaded (:func:`one_thread_per_product`); a worker's error
    reaches the caller, after the BLAS gets its thread count back."""
    with (
        one_thread_per_product(workers),
        ThreadPoolExecutor(workers, thread_name_prefix=name) as pool,
    ):
        list(pool.map(work, range(workers)))


__all__ = ["matmul_into", "one_thread_per_product", "product_workers", "run_on_workers"]
