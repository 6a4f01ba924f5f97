"""Row norms that neither overflow nor underflow, for any finite row.

A float32 row of ``1e19`` entries has a norm of ``inf`` (its squares overflow), so a plain
``x / |x|`` turns it into zeros and cosine ranking silently returns index order; a row of
``1e-30`` entries has a norm of 0. Scaling a row by a power of two changes no direction and is
exact in floating point (every product, sum and square scales exactly), so the rows whose
largest entry lies outside ``[2^-40, 2^40]`` are scaled to a largest entry in ``[0.5, 1)``
first: their unit rows are then right, and every other row is computed bitwise as before.
"""

from __future__ import annotations

import torch

SAFE_EXPONENT = (
    40  # a largest entry in [2^-40, 2^40] keeps float32 norms² of D <= 2^40 rows in range
)


def safe_scaled_rows(x: torch.Tensor) -> torch.Tensor:
    """``x`` with each row outside the safe range scaled by a power of two (same dtype).

    Returns ``x`` itself (no copy) when no row needs it; a new tensor otherwise. All-zero rows
    stay zero. The scaling runs in the input dtype, so float64 rows beyond float32's range can
    be cast to float32 afterwards.
    """
    peak = x.abs().amax(dim=1)
    outside = (peak > 2.0**SAFE_EXPONENT) | ((peak < 2.0**-SAFE_EXPONENT) & (peak > 0))
    if not bool(outside.any()):
        return x
    _, exponent = torch.frexp(peak[outside].double())
    scale = torch.ldexp(torch.ones(len(exponent), dtype=torch.float64), -exponent)
    scaled = x.clone()
    # in float64: the factor itself may exceed float32's range (2^149 for subnormal rows)
    scaled[outside] = (x[outside].double() * scale[:, None]).to(x.dtype)
    return scaled


def unit_rows(x: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit L2 norm (all-zero rows stay zero); a new tensor, safe for any
    finite row (see the module docstring)."""
    return torch.nn.functional.normalize(safe_scaled_rows(x), dim=1)
