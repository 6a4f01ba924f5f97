from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp
from scoring_fixtures import (
    activation_set,
    assert_equal_up_to_row_constant,
    images,
    rankings,
    raw_top1,
    sims,
    texts,
)

from xcm_debias.scoring import DualInvertedSoftmax


def dense_log_dbnorm(s_test, s_qbank, s_gbank, beta_q, beta_g, dynamic, k):
    """log of DBNorm's product (Wang et al. 2023); ungated factors stay exp(β_i s)."""
    log_q = beta_q * s_test - logsumexp(beta_q * s_qbank, axis=0)[None, :]
    log_g = beta_g * s_test - logsumexp(beta_g * s_gbank, axis=0)[None, :]
    if dynamic:
        top1 = raw_top1(s_test)
        gate_q = activation_set(s_qbank, k)[top1]
        gate_g = activation_set(s_gbank, k)[top1]
        log_q = np.where(gate_q[:, None], log_q, beta_q * s_test)
        log_g = np.where(gate_g[:, None], log_g, beta_g * s_test)
    return log_q + log_g


@pytest.mark.parametrize("dynamic", [False, True])
@pytest.mark.parametrize("beta_q,beta_g,k", [(20.0, 20.0, 1), (5.0, 30.0, 2), (1 / 1.99, 3.0, 1)])
def test_dual_inverted_softmax_equals_the_paper_formula(dynamic, beta_q, beta_g, k):
    qbank, gbank = texts(15, 6, seed=21), images(12, 6, seed=22)
    queries, gallery = texts(30, 6, seed=23), images(26, 6, seed=24)
    scorer = DualInvertedSoftmax(beta_q, beta_g, dynamic=dynamic, k=k).fit(qbank, gbank)
    ours = scorer.scores(queries, gallery).double().numpy() * scorer.scale
    s = sims(queries, gallery)
    dense = dense_log_dbnorm(
        s, sims(qbank, gallery), sims(gbank, gallery), beta_q, beta_g, dynamic, k
    )
    assert_equal_up_to_row_constant(ours, dense, atol=3e-4 * (beta_q + beta_g))
    assert np.array_equal(rankings(ours), rankings(dense))


def test_gallery_bank_factor_uses_same_modality_similarity():
    # the gallery-bank normaliser sums exp(β₂ s(ĝ, g)) over gallery-bank *images*
    qbank, gbank, gallery = texts(10, 5, seed=1), images(9, 5, seed=2), images(7, 5, seed=3)
    scorer = DualInvertedSoftmax(beta_query=2.0, beta_gallery=3.0).fit(qbank, gbank)
    columns = scorer.gallery_columns(gallery).columns.double().numpy()
    expected_zg = logsumexp(3.0 * sims(gbank, gallery), axis=0)
    expected_zq = logsumexp(2.0 * sims(qbank, gallery), axis=0)
    assert np.allclose(columns[:, 0], -expected_zq / 5.0, atol=1e-5)
    assert np.allclose(columns[:, 1], -expected_zg / 5.0, atol=1e-5)
