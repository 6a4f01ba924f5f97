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
product). ``benchmarks/exact_vs_faiss.py`` measures both. The per-group maps of the processors
stay on torch: there each product alternates with torch's own parallel ops on the rows, which
then wait for the cores OpenBLAS's workers spin on (measured with OpenBLAS products, 1-minute
load about 1.7 on 2 cores: LanguageAlignment(ridge) 0.22× and OTRecenter(gaussian) 0.12× a bare
matmul, where docs/benchmarks.md has 0.74× and 0.76× with torch's).
"""

from __future__ import annotations

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


__all__ = ["matmul_into"]
