"""Statistics shared by the embedding-level processors.

Covariances (Ledoit–Wolf shrinkage), one-hot labels, group means, symmetric matrix powers and
orthonormal bases, plus the label plumbing every processor needs (encoding string labels
against the classes seen at fit, explicit errors for small groups, a warning for unseen ones).
Fit statistics are computed in float64; processors store float32 buffers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch

from xcm_debias import gemm, soft_labels
from xcm_debias.data import EmbeddingSet
from xcm_debias.safe_norm import safe_scaled_rows, unit_rows

STAT_DTYPE = torch.float64
SHRINKAGE_NAMES = ("ledoit-wolf", "none")


def prepare(x: torch.Tensor, normalize: bool, dtype: torch.dtype = STAT_DTYPE) -> torch.Tensor:
    """``x`` in ``dtype``, L2-normalised per row when ``normalize`` (safely for huge or tiny
    rows, see :mod:`xcm_debias.safe_norm`); never the caller's tensor."""
    if normalize:
        return unit_rows(safe_scaled_rows(x).to(dtype))
    return x.to(dtype).clone()


def check_shrinkage(value: object, who: str) -> str | float:
    """Validate a ``shrinkage`` argument: ``"ledoit-wolf"``, ``"none"`` or a float in [0, 1]."""
    if isinstance(value, str):
        if value not in SHRINKAGE_NAMES:
            raise ValueError(
                f"{who}: shrinkage: expected one of {SHRINKAGE_NAMES} or a number in [0, 1], "
                f"got {value!r}"
            )
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
        raise TypeError(
            f"{who}: shrinkage: expected one of {SHRINKAGE_NAMES} or a number in [0, 1], "
            f"got {value!r}"
        )
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{who}: shrinkage: expected a number in [0, 1], got {value}")
    return float(value)


def check_choice(value: object, name: str, choices: Sequence[str], who: str) -> str:
    """Return ``value`` when it is one of ``choices``; raise naming the argument otherwise."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{who}: {name}: expected one of {tuple(choices)}, got {value!r}")
    return value


def ledoit_wolf_shrinkage(x: torch.Tensor, sample_cov: torch.Tensor | None = None) -> float:
    """Ledoit–Wolf (2004) shrinkage intensity δ of the sample covariance of rows ``x``.

    With ``X`` centred, ``S = XᵀX/n``, ``μ = tr(S)/d``:
    ``β = (Σ_n ‖x_n‖⁴ / n − ‖S‖_F²) / (d·n)``, ``δ_F = (‖S‖_F² − 2μ·tr S + dμ²)/d``,
    ``δ = min(β, δ_F)/δ_F`` — the same estimator as ``sklearn.covariance.ledoit_wolf_shrinkage``.
    ``sample_cov`` (``S``, when already computed) saves one Gram product.
    """
    n, d = x.shape
    if d == 1:
        return 0.0
    xc = x - x.mean(dim=0)
    if sample_cov is not None:
        s_fro2 = float(sample_cov.square().sum())
    elif n >= d:
        s_fro2 = float((xc.T @ xc / n).square().sum())
    else:  # ‖S‖_F² = ‖XXᵀ‖_F²/n², the smaller Gram matrix
        s_fro2 = float((xc @ xc.T).square().sum()) / n**2
    row_sq = xc.square().sum(dim=1)
    trace = float(row_sq.sum()) / n
    mu = trace / d
    beta = (float(row_sq.square().sum()) / n - s_fro2) / (d * n)
    delta = (s_fro2 - 2.0 * mu * trace + d * mu**2) / d
    beta = min(beta, delta)
    return 0.0 if beta == 0 else beta / delta


def _intensity(x: torch.Tensor, shrinkage: str | float, sample_cov: torch.Tensor | None) -> float:
    if shrinkage == "ledoit-wolf":
        return ledoit_wolf_shrinkage(x, sample_cov)
    return 0.0 if shrinkage == "none" else float(shrinkage)


def covariance(x: torch.Tensor, shrinkage: str | float) -> tuple[torch.Tensor, float]:
    """Covariance ``(1 − δ)·S + δ·(tr S/d)·I`` of rows ``x`` (``S`` divides by n) and δ.

    ``shrinkage="ledoit-wolf"`` picks δ by :func:`ledoit_wolf_shrinkage` (sklearn's
    ``LedoitWolf``); ``"none"`` is the plain sample covariance (δ = 0); a float is δ itself.
    """
    n, d = x.shape
    xc = x - x.mean(dim=0)
    s = xc.T @ xc / n
    delta = _intensity(x, shrinkage, s)
    if delta == 0.0:
        return s, 0.0
    mu = torch.diagonal(s).sum() / d
    eye = torch.eye(d, dtype=s.dtype, device=s.device)
    return (1.0 - delta) * s + delta * mu * eye, delta


def whitened_cross_covariances(
    x: torch.Tensor,
    labels: Sequence[torch.Tensor],
    shrinkage: str | float,
    powers: Sequence[float] = (-0.5,),
) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """The covariance set-up of the linear erasers: ``(μ, [Σ_xℓ for ℓ in labels], [Σ^p])``.

    ``μ`` is the mean of rows ``x``, ``Σ`` their :func:`covariance` (shrunk by ``shrinkage``),
    ``Σ_xℓ = (x − μ)ᵀ(ℓ − ℓ̄)/n`` the cross-covariance with each label matrix ``ℓ`` (``[n, k]``,
    e.g. one-hot languages, culture profiles) and ``Σ^p`` the symmetric matrix powers in
    ``powers`` (``-0.5`` whitens, ``0.5`` un-whitens), from one eigendecomposition.
    """
    mean = x.mean(dim=0)
    sigma, _ = covariance(x, shrinkage)
    centred = x - mean
    crosses = [centred.T @ (z - z.mean(dim=0)) / x.shape[0] for z in labels]
    return mean, crosses, sym_powers(sigma, powers)


def diagonal_variance(x: torch.Tensor, shrinkage: str | float) -> torch.Tensor:
    """Diagonal of :func:`covariance` (the Ledoit–Wolf intensity still sees the full matrix)."""
    var = (x - x.mean(dim=0)).square().mean(dim=0)
    delta = _intensity(x, shrinkage, None)
    return (1.0 - delta) * var + delta * var.mean()


def top_right_singular(x: torch.Tensor, rank: int) -> torch.Tensor:
    """Top-``rank`` right singular vectors ``[d, rank]`` of ``x``, from its smaller Gram matrix."""
    n, d = x.shape
    if n >= d:
        _, evecs = torch.linalg.eigh(x.T @ x)
        return evecs[:, -rank:].flip(1)
    _, evecs = torch.linalg.eigh(x @ x.T)
    top = evecs[:, -rank:].flip(1)
    return unit_cols(x.T @ top)


def unit_cols(m: torch.Tensor) -> torch.Tensor:
    """Columns scaled to unit L2 norm (all-zero columns stay zero)."""
    return torch.nn.functional.normalize(m, dim=0)


def sym_eig(s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues and eigenvectors of a symmetric matrix (or batch), symmetrised first."""
    return torch.linalg.eigh((s + s.mT) / 2)


def eig_power(
    evals: torch.Tensor, evecs: torch.Tensor, power: float, rtol: float = 1e-10
) -> torch.Tensor:
    """``V diag(λ^power) Vᵀ``; eigenvalues at or below ``rtol·λ_max`` count as zero (a
    pseudo-power for negative powers, as ``torch.linalg.pinv`` does)."""
    keep = evals > rtol * evals[..., -1:].clamp_min(0)
    safe = torch.where(keep, evals, torch.ones_like(evals))
    scaled = torch.where(keep, safe.pow(power), torch.zeros_like(evals))
    return (evecs * scaled.unsqueeze(-2)) @ evecs.mT


def sym_powers(s: torch.Tensor, powers: Sequence[float], rtol: float = 1e-10) -> list[torch.Tensor]:
    """``[S^p for p in powers]`` of a symmetric PSD matrix (or batch), one eigendecomposition."""
    evals, evecs = sym_eig(s)
    return [eig_power(evals, evecs, power, rtol) for power in powers]


def sym_power(s: torch.Tensor, power: float, rtol: float = 1e-10) -> torch.Tensor:
    """``S^power`` of a symmetric PSD matrix (or batch); see :func:`sym_powers`."""
    return sym_powers(s, (power,), rtol)[0]


def orth_basis(m: torch.Tensor, rtol: float = 1e-6) -> torch.Tensor:
    """Orthonormal basis ``[d, r]`` of the column span of ``m`` ``[d, k]``.

    Singular values at or below ``rtol·σ_max`` are dropped, so one-hot covariance columns, which
    always sum to zero, give ``r ≤ k − 1``.
    """
    if m.numel() == 0:
        return m.new_zeros(m.shape[0], 0)
    u, s, _ = torch.linalg.svd(m, full_matrices=False)
    if s.numel() == 0 or s[0] <= 0:
        return m.new_zeros(m.shape[0], 0)
    return u[:, s > rtol * s[0]]


def one_hot(codes: np.ndarray, n_classes: int, dtype: torch.dtype = STAT_DTYPE) -> torch.Tensor:
    """``[n, n_classes]`` indicator matrix of integer codes (one column per class, never ordinal)."""
    z = torch.zeros(len(codes), n_classes, dtype=dtype)
    z[torch.arange(len(codes)), torch.as_tensor(codes, dtype=torch.int64)] = 1.0
    return z


def group_means(x: torch.Tensor, codes: np.ndarray, n_groups: int) -> torch.Tensor:
    """``[n_groups, d]`` mean of the rows of each group (every group must be non-empty)."""
    index = torch.as_tensor(codes, dtype=torch.int64, device=x.device)
    sums = torch.zeros(n_groups, x.shape[1], dtype=x.dtype, device=x.device).index_add_(0, index, x)
    counts = torch.bincount(index, minlength=n_groups).to(x.dtype)
    return sums / counts.unsqueeze(1)


def classes_and_codes(
    labels: np.ndarray, who: str, what: str, min_count: int
) -> tuple[list[str], np.ndarray]:
    """Sorted distinct labels and each row's code; every class must have ``min_count`` rows."""
    classes, codes, counts = np.unique(labels, return_inverse=True, return_counts=True)
    small = [(str(c), int(n)) for c, n in zip(classes, counts, strict=True) if n < min_count]
    if small:
        name, count = small[0]
        raise ValueError(
            f"{who}: expected at least {min_count} calibration rows per {what}, got {count} for "
            f"{what} {name!r}"
            + (f" (and {len(small) - 1} more below the minimum)" if small[1:] else "")
        )
    return [str(c) for c in classes], codes.astype(np.int64)


def codes_at_transform(
    labels: np.ndarray, classes: Sequence[str], who: str, what: str
) -> np.ndarray:
    """Code of each row's label among the fitted ``classes``; ``-1`` for classes not seen at fit.

    Unseen classes trigger one :class:`~xcm_debias.soft_labels.UnseenGroupWarning` (a
    ``UserWarning``) naming them: those rows are left unchanged. Vectorised (a binary search
    among the sorted classes), not a per-row dictionary lookup: at a few hundred thousand rows
    the Python loop cost a visible share of a per-group GEMM.
    """
    return soft_labels.label_codes(labels, classes, who, what, stacklevel=4)


def language_codes(data: EmbeddingSet, classes: Sequence[str], who: str) -> np.ndarray:
    """Each row's language code among the fitted ``classes`` for a per-language map: ``-1``
    (identity) for a language unseen at fit (with a warning) and for an inferred language whose
    soft label is below the confidence threshold (see :mod:`xcm_debias.soft_labels`)."""
    return soft_labels.group_codes(data, "language", classes, who, "text")


def remove_low_rank(
    x: torch.Tensor, mean: torch.Tensor, right: torch.Tensor, left: torch.Tensor
) -> torch.Tensor:
    """``x − ((x − mean) rightᵀ) leftᵀ``, computed **in place** on ``x`` (a tensor of ours).

    ``right``, ``left``: ``[r, d]`` and ``[d, r]``. Only the ``[n, r]`` product is allocated:
    ``(x − mean) rightᵀ = x rightᵀ − mean rightᵀ``.
    """
    coords = (x @ right.T).sub_(mean @ right.T)
    return x.addmm_(coords, left.T, alpha=-1)


def subtract_group_rows(x: torch.Tensor, codes: np.ndarray, table: torch.Tensor) -> torch.Tensor:
    """``x[i] −= table[codes[i]]`` in place on ``x`` (a tensor of ours); rows with code −1 kept."""
    seen = codes >= 0
    if seen.all():
        return x.sub_(table[torch.from_numpy(codes)])
    rows = torch.from_numpy(np.flatnonzero(seen))
    return x.index_add_(0, rows, table[torch.from_numpy(codes[seen])], alpha=-1)


#: rows per block of :func:`apply_per_group`: this many bytes of float32 rows
CHUNK_BYTES = 8 * 2**20
#: squared row norms in this range are used as computed; rows outside it (huge, tiny or zero)
#: are normalised by the power-of-two-scaled path of :mod:`xcm_debias.safe_norm`
_PLAIN_SQUARES = (2.0**-80, 2.0**80)


def apply_per_group(
    x: torch.Tensor,
    codes: np.ndarray,
    fn: Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor],
    normalize: bool,
    parallel: bool = False,
) -> torch.Tensor:
    """A new float32 tensor: row i is ``fn(codes[i], ·)`` of row i of ``x``, L2-normalised first
    when ``normalize``; rows with code −1 are only converted (and normalised). ``x`` is untouched.

    ``fn(group, rows, spare)`` receives a block of rows of one group, which it may overwrite, and
    a block of the same shape that it may write its result into (``torch.mm(..., out=spare)``),
    and returns the new rows (``rows``, ``spare`` or any tensor of that shape). With
    ``parallel``, blocks run at once on parallel workers, one per core, each product on one
    thread (:func:`xcm_debias.gemm.one_thread_per_product`): ``fn`` must then make its products
    with :func:`xcm_debias.gemm.matmul_into` or :func:`xcm_debias.gemm.inner_products` and touch
    nothing but its block (see :func:`affine_map`).

    Why this shape: a per-group map costs one GEMM per group; what it costs beyond a bare
    ``x @ W`` is moving rows into and out of group order, and the GEMM calls themselves. So the
    rows are put in group order once (a stable sort of the codes, not of the rows) and each
    group's rows are taken in blocks of at most ``CHUNK_BYTES`` (split evenly, so no small tail
    block): a block is gathered into a reused buffer, normalised there, mapped by one GEMM of
    thousands of rows (with torch's MKL on one core, blocks under 1024 rows ran up to 1.4×
    slower per row) and written to its rows of the output (a scatter). A block whose rows are
    consecutive (encoders usually emit one language at a time; a single group) is read as a
    slice and its GEMM writes straight into the output. On the CPU the gathers, scatters and norms run in numpy, one thread per
    worker: torch's parallel copies of a few MiB each stalled on a busy machine, waiting for
    both threads. Ordinary rows are divided by their norm as numpy computes it (torch's
    ``normalize`` sums in another order: results agree to float32 rounding, not bit for bit).
    Serially, the output is zeroed first by torch's parallel fill when rows are scattered: the
    first write to each page of a new tensor is a page fault (about a fifth of a bare ``x @ W``
    here), which a scatter on one thread would take alone; parallel workers take them on every
    core as they scatter. (numpy's allocations, which ask for transparent huge pages, fault
    far less once warm, 0.03 s against 0.16–0.23 s to fill 400 MB here; but the first one in a
    process took 0.6–1.3 s on the benchmark machine, a virtual machine whose free 2 MiB blocks
    must be faulted in again by the host: a one-off transform of a 200k × 512 gallery through
    the Gaussian map took 1.2–1.4 s that way against 0.75–0.9 s with torch's pages.)
    """
    x = x.to(torch.float32)
    n, d = x.shape
    limit = max(1, CHUNK_BYTES // (4 * max(d, 1)))
    blocks = list(_group_blocks(codes, limit))
    workers = gemm.product_workers() if parallel and x.device.type == "cpu" else 1
    workers = min(workers, len(blocks))
    in_order = bool((codes[1:] >= codes[:-1]).all())
    out = x.new_empty(n, d) if in_order or workers > 1 else x.new_zeros(n, d)
    height = min(limit, n)
    buffers = [(x.new_empty(height, d), x.new_empty(height, d)) for _ in range(max(workers, 1))]

    def work(worker: int) -> None:
        buffer, scratch = buffers[worker]
        for group, index in blocks[worker :: max(workers, 1)]:
            _map_block(x, out, group, index, buffer, scratch, fn, normalize)

    if workers <= 1:
        work(0)
        return out
    gemm.run_on_workers(workers, work, "xcm-groups")
    return out


def affine_map(
    weights: torch.Tensor | None, shifts: torch.Tensor | None = None
) -> Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor]:
    """``fn`` for :func:`apply_per_group` (``parallel=True`` allowed): ``rows @ weights[g]``
    (``rows`` itself when ``weights`` is ``None``), plus ``shifts[g]`` when given.

    Where :func:`xcm_debias.gemm.backend` is oneDNN, the products go through
    :func:`xcm_debias.gemm.inner_products` with the map stored transposed (``weights[g]ᵀ``,
    made at a group's first block: oneDNN takes ``rows @ Wᵀ`` from a contiguous ``W``): about
    twice the rate of numpy's OpenBLAS on one core of the benchmark machine. Small blocks stay
    on numpy. Only the groups present are transposed: a streamed search transforms every tile,
    and transposing all maps each time (1.5 ms for 8 maps of 512 × 512) was work for groups a
    tile of images never uses."""
    onednn = weights is not None and gemm.backend() == "onednn" and weights.device.type == "cpu"
    transposed: dict[int, torch.Tensor] = {}  # workers may both fill a group: same values

    def product(group: int, rows: torch.Tensor, spare: torch.Tensor) -> torch.Tensor:
        if not onednn:
            return gemm.matmul_into(rows, weights[group], spare)
        if group not in transposed:
            transposed[group] = weights[group].T.contiguous()
        return gemm.inner_products(rows, transposed[group], spare)

    def fn(group: int, rows: torch.Tensor, spare: torch.Tensor) -> torch.Tensor:
        result = rows if weights is None else product(group, rows, spare)
        if shifts is not None:
            if result.device.type == "cpu":  # numpy: no torch parallel region inside a worker
                np.add(result.numpy(), shifts[group].numpy(), out=result.numpy())
            else:
                result.add_(shifts[group])
        return result

    return fn


def _group_blocks(codes: np.ndarray, limit: int) -> Iterator[tuple[int, np.ndarray]]:
    """``(group, rows)`` blocks: each group's rows (ascending) cut evenly into blocks of at most
    ``limit`` rows, groups in code order."""
    order = np.argsort(codes, kind="stable")
    ordered = codes[order]
    runs = np.r_[0, np.flatnonzero(ordered[1:] != ordered[:-1]) + 1, len(codes)]
    for run_start, run_stop in zip(runs[:-1], runs[1:], strict=True):
        size = run_stop - run_start
        edges = run_start + np.linspace(0, size, -(-size // limit) + 1).round().astype(np.int64)
        for first, end in zip(edges[:-1], edges[1:], strict=True):
            yield int(ordered[run_start]), order[first:end]


def _map_block(
    x: torch.Tensor,
    out: torch.Tensor,
    group: int,
    index: np.ndarray,
    buffer: torch.Tensor,
    scratch: torch.Tensor,
    fn: Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor],
    normalize: bool,
) -> None:
    """Rows ``index`` of ``x`` (one group's) through ``fn`` into the same rows of ``out``."""
    m = len(index)
    rows = buffer[:m]
    if index[-1] - index[0] == m - 1:  # consecutive rows (a stable sort keeps them in order)
        rows_at = slice(int(index[0]), int(index[0]) + m)
        _rows_into(x[rows_at], rows, normalize)
        target = out[rows_at]
    else:
        rows_at = None
        _gather(x, index, rows)
        _rows_into(rows, rows, normalize)
        target = scratch[:m]
    result = rows if group < 0 else fn(group, rows, target)
    if rows_at is None:
        _scatter(out, index, result)
    elif result is not target:
        target.copy_(result)


def _gather(x: torch.Tensor, index: np.ndarray, rows: torch.Tensor) -> None:
    """``rows[j] = x[index[j]]``."""
    if x.device.type == "cpu":
        np.take(x.detach().numpy(), index, axis=0, out=rows.numpy(), mode="clip")
    else:
        torch.index_select(x, 0, torch.from_numpy(index).to(x.device), out=rows)


def _scatter(out: torch.Tensor, index: np.ndarray, rows: torch.Tensor) -> None:
    """``out[index[j]] = rows[j]``."""
    if out.device.type == "cpu":
        out.numpy()[index] = rows.detach().numpy()
    else:
        out.index_copy_(0, torch.from_numpy(index).to(out.device), rows)


def _rows_into(source: torch.Tensor, rows: torch.Tensor, normalize: bool) -> None:
    """``rows = source``, L2-normalised per row when ``normalize`` (``source`` may be ``rows``).

    Rows of ordinary magnitude are divided by their norm as computed; huge, tiny and all-zero
    rows go through :func:`~xcm_debias.safe_norm.unit_rows` (zero rows stay zero)."""
    if not normalize:
        rows.copy_(source)
        return
    if source.device.type != "cpu":
        torch.nn.functional.normalize(safe_scaled_rows(source), dim=1, out=rows)
        return
    values, target = source.detach().numpy(), rows.numpy()
    squares = np.einsum("ij,ij->i", values, values)
    plain = (squares >= _PLAIN_SQUARES[0]) & (squares <= _PLAIN_SQUARES[1])  # False for NaN
    odd = None if plain.all() else np.flatnonzero(~plain)
    unsafe = None if odd is None else unit_rows(source[torch.from_numpy(odd)])
    np.divide(values, np.sqrt(squares, where=plain, out=np.ones_like(squares))[:, None], out=target)
    if unsafe is not None:
        rows[torch.from_numpy(odd)] = unsafe


def text_rows(calibration: EmbeddingSet, who: str) -> EmbeddingSet:
    """The calibration's text rows; a clear error when there are none."""
    mask = calibration.modality == "text"
    if not mask.any():
        raise ValueError(
            f"{who}: expected calibration text rows (captions with a language), got none "
            f"({len(calibration)} image rows)"
        )
    return calibration[mask]


def culture_profiles(
    calibration: EmbeddingSet, texts: EmbeddingSet, who: str
) -> tuple[list[str], torch.Tensor]:
    """Culture of each text row as a distribution over cultures ``[n, M]`` (float64).

    A text with its own ``culture`` label is one-hot on it; else a text whose extra column
    ``named_culture`` names a culture (a caption that asks for it in words) is one-hot on that;
    otherwise it takes the culture mix of its item's images (one-hot when they agree). Raises
    when a text row has none of these.
    """
    images = (calibration.modality == "image") & (calibration.culture != "")
    named = texts.extra.get("named_culture")
    own = texts.culture
    if named is not None:
        own = np.where(own != "", own, named.astype(str))
    names = sorted((set(own.tolist()) | set(calibration.culture[images].tolist())) - {""})
    index = {c: i for i, c in enumerate(names)}
    item_mix: dict[str, np.ndarray] = {}
    for item, cult in zip(
        calibration.item[images].tolist(), calibration.culture[images].tolist(), strict=True
    ):
        item_mix.setdefault(item, np.zeros(len(names)))[index[cult]] += 1.0
    profiles = np.zeros((len(texts), len(names)))
    missing = 0
    for row, (item, cult) in enumerate(zip(texts.item.tolist(), own.tolist(), strict=True)):
        if cult:
            profiles[row, index[cult]] = 1.0
        elif item in item_mix:
            profiles[row] = item_mix[item] / item_mix[item].sum()
        else:
            missing += 1
    if missing:
        raise ValueError(
            f"{who}: expected a 'culture' for every calibration text row (its own label or the "
            f"cultures of its item's images), got {missing} of {len(texts)} without one"
        )
    return names, torch.from_numpy(profiles)
