"""Shared statistics of the processors: Ledoit–Wolf vs sklearn, powers, bases, label plumbing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.covariance import LedoitWolf, ledoit_wolf_shrinkage

from xcm_debias import gemm
from xcm_debias.processors import _stats


@pytest.mark.parametrize(("n", "d"), [(200, 10), (30, 50), (12, 12)])
def test_ledoit_wolf_equals_sklearn(n: int, d: int) -> None:
    rng = np.random.default_rng(n + d)
    x = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) + 3.0
    cov, delta = _stats.covariance(torch.from_numpy(x), "ledoit-wolf")
    reference = LedoitWolf().fit(x)
    assert delta == pytest.approx(ledoit_wolf_shrinkage(x), abs=1e-10)
    assert delta == pytest.approx(reference.shrinkage_, abs=1e-10)
    np.testing.assert_allclose(cov.numpy(), reference.covariance_, atol=1e-10, rtol=1e-8)
    # the Gram-free path (no sample covariance passed) agrees too
    assert _stats.ledoit_wolf_shrinkage(torch.from_numpy(x)) == pytest.approx(delta, abs=1e-10)


def test_covariance_none_and_fixed_shrinkage_by_hand() -> None:
    x = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0], [2.0, 4.0]], dtype=torch.float64)
    cov, delta = _stats.covariance(x, "none")
    assert delta == 0.0
    torch.testing.assert_close(cov, torch.tensor([[1.0, 0.0], [0.0, 4.0]], dtype=torch.float64))
    cov, _ = _stats.covariance(x, 0.5)  # ½S + ½·(tr S/2)·I = ½S + 1.25·I
    torch.testing.assert_close(cov, torch.tensor([[1.75, 0.0], [0.0, 3.25]], dtype=torch.float64))
    var = _stats.diagonal_variance(x, 0.5)
    torch.testing.assert_close(var, torch.tensor([1.75, 3.25], dtype=torch.float64))


def test_sym_powers_invert_and_pseudo_invert() -> None:
    a = torch.tensor([[4.0, 0.0, 0.0], [0.0, 9.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    q, _ = torch.linalg.qr(
        torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    )
    s = q @ a @ q.T
    root, inv_root = _stats.sym_powers(s, (0.5, -0.5))
    torch.testing.assert_close(root @ root, s)
    expected = q @ torch.diag(torch.tensor([0.5, 1 / 3, 0.0], dtype=torch.float64)) @ q.T
    torch.testing.assert_close(inv_root, expected)  # the zero eigenvalue stays zero


def test_orth_basis_drops_the_one_hot_null_direction() -> None:
    codes = np.array([0, 1, 2, 0, 1, 2, 0])
    z = _stats.one_hot(codes, 3)
    x = torch.randn(7, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    cross = (x - x.mean(0)).T @ (z - z.mean(0))  # columns sum to zero: rank 2, not 3
    basis = _stats.orth_basis(cross)
    assert basis.shape == (5, 2)
    torch.testing.assert_close(basis.T @ basis, torch.eye(2, dtype=torch.float64))


def test_one_hot_is_one_column_per_class_never_ordinal() -> None:
    z = _stats.one_hot(np.array([2, 0, 1]), 3)
    torch.testing.assert_close(z, torch.eye(3, dtype=torch.float64)[[2, 0, 1]])


def test_group_means_by_hand() -> None:
    x = torch.tensor([[1.0, 0.0], [3.0, 2.0], [5.0, 5.0]], dtype=torch.float64)
    means = _stats.group_means(x, np.array([0, 0, 1]), 2)
    torch.testing.assert_close(means, torch.tensor([[2.0, 1.0], [5.0, 5.0]], dtype=torch.float64))


def test_top_right_singular_matches_svd_both_shapes() -> None:
    g = torch.Generator().manual_seed(2)
    for n, d in ((40, 6), (4, 9)):
        x = torch.randn(n, d, dtype=torch.float64, generator=g)
        v = _stats.top_right_singular(x, 2)
        _, _, vh = torch.linalg.svd(x, full_matrices=False)
        # same subspace (signs are arbitrary)
        torch.testing.assert_close(v @ v.T, vh[:2].T @ vh[:2])


def test_small_group_error_names_the_group_and_count() -> None:
    with pytest.raises(
        ValueError, match=r"at least 2 calibration rows per language, got 1 for language 'sw'"
    ):
        _stats.classes_and_codes(np.array(["en", "en", "sw"]), "Who.fit", "language", 2)


def test_unseen_labels_warn_and_get_code_minus_one() -> None:
    with pytest.warns(UserWarning, match=r"\['xx'\] not seen at fit"):
        codes = _stats.codes_at_transform(
            np.array(["en", "xx", "de"]), ["de", "en"], "Who", "languages"
        )
    np.testing.assert_array_equal(codes, [1, -1, 0])


@pytest.mark.parametrize("bad", ["ledoit", -0.1, 1.5, True])
def test_check_shrinkage_rejects(bad: object) -> None:
    with pytest.raises((ValueError, TypeError), match="shrinkage"):
        _stats.check_shrinkage(bad, "Who.fit")


def _interleaved_codes(n: int, n_groups: int, seed: int) -> np.ndarray:
    """Random group codes with some −1 rows, then a run already in group order (the sliced path)."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(-1, n_groups, size=n)
    codes[n // 2 : n // 2 + 40] = np.repeat(np.arange(n_groups), 40 // n_groups + 1)[:40]
    return codes


@pytest.mark.parametrize("shift_only", [False, True])
@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("normalize", [True, False])
def test_apply_per_group_equals_per_row_affine_maps(
    normalize: bool, parallel: bool, shift_only: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Per row ``x_i @ W_g(i) + b_g(i)`` (x_i L2-normalised first), rows with code −1 only
    converted: in blocks of at most 8 rows, most gathered and a few sliced; serially with a
    torch callback, and on two parallel workers with :func:`_stats.affine_map` (also without
    weights: ``x_i + b_g(i)``, the shift of ``LanguageProjection(center)``)."""
    n, d, k = 203, 6, 3
    monkeypatch.setattr(_stats, "CHUNK_BYTES", 8 * 4 * d)
    g = torch.Generator().manual_seed(3)
    x = 2.0 * torch.randn(n, d, dtype=torch.float64, generator=g)
    weights, shifts = torch.randn(k, d, d, generator=g), torch.randn(k, d, generator=g)
    if shift_only:
        weights = torch.eye(d).expand(k, d, d)
    codes = _interleaved_codes(n, k, seed=4)
    before = x.clone()
    if parallel:
        monkeypatch.setattr(gemm, "product_workers", lambda: 2)
        fn = _stats.affine_map(None if shift_only else weights, shifts)
    else:
        fn = lambda group, rows, spare: torch.addmm(  # noqa: E731
            shifts[group], rows, weights[group], out=spare
        )
    out = _stats.apply_per_group(x, codes, fn, normalize, parallel=parallel)
    assert out.dtype == torch.float32 and out.shape == (n, d)
    torch.testing.assert_close(x, before, rtol=0, atol=0)  # the caller's tensor is untouched
    for i in range(n):
        row = x[i].float()
        if normalize:
            row = row / row.norm()
        expected = row if codes[i] < 0 else row @ weights[codes[i]] + shifts[codes[i]]
        torch.testing.assert_close(out[i], expected, rtol=1e-5, atol=1e-5)


def test_apply_per_group_in_place_blocks_and_consecutive_groups(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A map that edits its block in place (returns ``rows``) gives the same rows on the
    gathered and the sliced path, and a block of one group never sees another's rows."""
    monkeypatch.setattr(_stats, "CHUNK_BYTES", 6 * 4 * 2)  # chunks of 6 rows
    x = torch.arange(60, dtype=torch.float32).reshape(30, 2)
    codes = np.r_[np.zeros(12, dtype=np.int64), np.tile([1, 0, -1], 6)]  # sorted, then interleaved
    seen: dict[int, set[int]] = {0: set(), 1: set()}

    def scale(group: int, rows: torch.Tensor, _: torch.Tensor) -> torch.Tensor:
        seen[group] |= {int(v) // 2 for v in rows[:, 0].tolist()}
        return rows.mul_(10.0 * (group + 1))

    out = _stats.apply_per_group(x, codes, scale, normalize=False)
    factor = torch.tensor([{-1: 1.0, 0: 10.0, 1: 20.0}[int(c)] for c in codes])
    torch.testing.assert_close(out, x * factor[:, None])
    assert seen == {g: set(np.flatnonzero(codes == g).tolist()) for g in (0, 1)}
    torch.testing.assert_close(x, torch.arange(60, dtype=torch.float32).reshape(30, 2))


def test_apply_per_group_normalises_huge_tiny_and_zero_rows_safely(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rows whose squared norm overflows or underflows float32, and all-zero rows, among ordinary
    ones, in gathered and consecutive blocks: each row is ``unit(x_i) @ W_g(i)`` as computed in
    float64 (a zero row stays zero), and ordinary rows are divided by their own norm."""
    monkeypatch.setattr(_stats, "CHUNK_BYTES", 5 * 4 * 4)  # blocks of at most 5 rows
    g = torch.Generator().manual_seed(5)
    x = torch.randn(24, 4, generator=g)
    x[1] *= 1e30  # |x|² = inf in float32
    x[6] *= 1e-30  # |x|² underflows to 0
    x[9] = 0.0
    x[14] *= 2.0**-45  # |x|² below 2⁻⁸⁰ but representable: the scaled path as well
    codes = np.r_[np.tile([0, 1], 6), np.zeros(6, dtype=np.int64), -np.ones(6, dtype=np.int64)]
    weights = torch.randn(2, 4, 4, generator=g)
    out = _stats.apply_per_group(
        x, codes, lambda group, rows, spare: torch.mm(rows, weights[group], out=spare), True
    )
    wide = x.double()
    norms = wide.norm(dim=1, keepdim=True)
    unit = torch.where(norms > 0, wide / torch.where(norms > 0, norms, 1.0), 0.0)
    for i in range(len(x)):
        expected = unit[i] if codes[i] < 0 else unit[i] @ weights[codes[i]].double()
        torch.testing.assert_close(out[i].double(), expected, rtol=1e-5, atol=1e-6)
    assert torch.equal(out[9], torch.zeros(4))


def test_codes_at_transform_with_unsorted_classes() -> None:
    """Classes in any order: each label gets the position of its class in ``classes``."""
    codes = _stats.codes_at_transform(
        np.array(["sw", "de", "en", "sw", "de"]), ["sw", "en", "de"], "Who", "languages"
    )
    np.testing.assert_array_equal(codes, [0, 2, 1, 0, 2])
