from __future__ import annotations

import numpy as np
import ot
import pytest
from scoring_fixtures import assert_equal_up_to_row_constant, images, sims, texts

from xcm_debias.scoring import InvertedSoftmax, SinkhornNorm


def ucofia_log_bias(s_bank: np.ndarray, beta: float, n_iters: int) -> np.ndarray:
    """UCoFiA's sinkhorn_knopp on exp(β S) (rows = bank queries): log of the column scaling."""
    k = np.exp(beta * s_bank - (beta * s_bank).max())
    b = 1.0 / k.sum(axis=0)
    for _ in range(n_iters):
        a = 1.0 / (k @ b)
        b = 1.0 / (a @ k)
    return np.log(b)


@pytest.mark.parametrize("n_iters", [0, 1, 4, 10])
@pytest.mark.parametrize("beta", [5.0, 20.0])
def test_sinkhorn_bias_equals_ucofia_procedure(n_iters, beta):
    bank, gallery = texts(30, 8, seed=41), images(22, 8, seed=42)
    scorer = SinkhornNorm(beta=beta, n_iters=n_iters).fit(bank, images(5, 8, seed=43))
    ours = scorer.gallery_columns(gallery).columns[:, 0].double().numpy() * beta
    reference = ucofia_log_bias(sims(bank, gallery), beta, n_iters)
    assert_equal_up_to_row_constant(ours[None, :], reference[None, :], atol=1e-4 * beta)


def test_sinkhorn_with_zero_iterations_is_the_inverted_softmax():
    bank, gallery, queries = texts(25, 6, seed=44), images(20, 6, seed=45), texts(9, 6, seed=46)
    sinkhorn = SinkhornNorm(beta=15.0, n_iters=0).fit(bank, gallery)
    inverted = InvertedSoftmax(beta=15.0).fit(bank, gallery)
    assert np.allclose(
        sinkhorn.scores(queries, gallery).numpy(),
        inverted.scores(queries, gallery).numpy(),
        atol=1e-6,
    )


def test_converged_sinkhorn_matches_pot():
    bank, gallery = texts(18, 6, seed=47), images(14, 6, seed=48)
    beta = 4.0
    scorer = SinkhornNorm(beta=beta, n_iters=400).fit(bank, images(3, 6, seed=49))
    ours = scorer.gallery_columns(gallery).columns[:, 0].double().numpy() * beta
    s = sims(bank, gallery)
    a, b = np.full(s.shape[0], 1 / s.shape[0]), np.full(s.shape[1], 1 / s.shape[1])
    _, log = ot.sinkhorn(a, b, -s, reg=1 / beta, numItermax=100_000, stopThr=1e-13, log=True)
    assert_equal_up_to_row_constant(ours[None, :], np.log(log["v"])[None, :], atol=1e-4)
