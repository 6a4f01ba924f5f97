"""Shared statistics of the processors: Ledoit–Wolf vs sklearn, powers, bases, label plumbing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.covariance import LedoitWolf, ledoit_wolf_shrinkage

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
