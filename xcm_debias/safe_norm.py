"""Row norms that neither overflow nor underflow, for any finite row.

A float32 row of ``1e19`` entries has a norm of ``inf`` (its squares overflow), so a plain
``x / |x|`` turns it into zeros and cosine ranking silently returns index order; a row of
``1e-30`` entries has a norm of 0. Scaling a row by a power of two changes no direction and is
exact in floating point (every product, sum and square scales exactly), so the rows whose
largest entry lies outside ``[2^-40, 2^40]`` are scaled to a largest entry in ``[0.5, 1)``
first: their unit rows are then right, and every other row is computed bitwise as before.
"""

from __future__ import annotations

import numpy as np
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


#: rows whose float32 norm is within this of 1 count as unit rows and are used as they are
UNIT_TOLERANCE = 2.0**-20


def cosine_rows(x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """``x`` as float32 rows of unit norm, the way the exact search scores them.

    Rows already of unit norm (within :data:`UNIT_TOLERANCE`, about 1e-6: rows that went through
    any normalisation in float32) are kept bit for bit; only the others are divided by their
    norm (safely for any finite magnitude, as :func:`unit_rows`). A block of unit float32 rows
    comes back as ``x`` itself (no copy), so normalised galleries are never copied. Each row's
    result depends on that row alone, so a gallery prepared whole, tile by tile or in parts of
    a tile gives the same rows. On the CPU, float16 and bfloat16 rows are converted by torch
    (vectorised: numpy's float16 cast took 2 ms of a 2048 × 512 tile against torch's
    0.1–0.3 ms; both are exact) and the rest runs in numpy (one thread: no OpenMP region
    competing with the BLAS threads of the product, see :mod:`xcm_debias.gemm`). Rows that need
    dividing are divided in the converted copy when there is one; the caller's rows are never
    written.

    Args:
        x: ``[N, D]`` rows of any floating dtype.
        out: a float32 ``[N, D]`` tensor on ``x``'s device to write the rows into (and return),
            e.g. a buffer reused for every tile of a search; a new tensor (or ``x``) otherwise.
    """
    if out is not None and (
        out.dtype != torch.float32 or out.shape != x.shape or out.device != x.device
    ):
        raise ValueError(
            f"out: expected a float32 tensor of shape {tuple(x.shape)} on {x.device}, got "
            f"{out.dtype} {tuple(out.shape)} on {out.device}"
        )
    # float64 rows beyond float32's range are first scaled by powers of two in float64
    source = safe_scaled_rows(x) if x.dtype == torch.float64 else x
    if x.device.type != "cpu":
        return _written(_cosine_rows_torch(source.float()), out)
    rows = source.float() if out is None else out.copy_(source)
    view = rows.detach().numpy()
    squares = np.einsum("ij,ij->i", view, view)
    # |x|² within 2·tol of 1 ⇔ |x| within tol of 1 (to first order); inf/NaN are never unit
    unit = np.abs(squares - 1) <= 2 * UNIT_TOLERANCE
    if unit.all():
        return rows
    if x.dtype == torch.float16:
        # every finite non-zero float16 lies in [2^-24, 65504], inside the safe range, and
        # D·65504² cannot overflow float32: only zero rows (squares 0) and infinite entries
        # (squares inf) leave the range; no pass over the entries is needed to find them
        outside = (squares == 0) | np.isinf(squares)
    else:
        peak = np.abs(view).max(axis=1)
        outside = (peak > 2.0**SAFE_EXPONENT) | (peak < 2.0**-SAFE_EXPONENT)
    if outside.any():  # huge or tiny rows (or zeros): scaled first
        return _written(_cosine_rows_torch(rows), out)
    denominators = np.where(unit, np.float32(1), np.sqrt(squares))[:, None]
    if out is None and x.dtype == torch.float32:  # rows is x: the caller's rows stay as they are
        return torch.from_numpy(view / denominators)
    np.divide(view, denominators, out=view)  # our own converted copy, or out
    return rows


def _written(rows: torch.Tensor, out: torch.Tensor | None) -> torch.Tensor:
    """``rows``, copied into ``out`` when there is one."""
    return rows if out is None else out.copy_(rows)


def _cosine_rows_torch(rows: torch.Tensor) -> torch.Tensor:
    unit = (torch.linalg.vector_norm(rows, dim=1) - 1).abs() <= UNIT_TOLERANCE
    scaled = safe_scaled_rows(rows)
    norms = torch.linalg.vector_norm(scaled, dim=1)
    if bool((norms == 0).any()):
        raise ValueError("rows: expected non-zero rows, got an all-zero row")
    return scaled / torch.where(unit, 1.0, norms)[:, None]
