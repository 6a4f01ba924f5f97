from __future__ import annotations

import numpy as np
import pytest
from scoring_fixtures import images, rankings, sims, texts

from xcm_debias.scoring import CSLS


def dense_csls(s_test, s_qbank_gallery, s_query_gbank, k):
    """2 s(q,g) − r_k(q) − r_k(g) (Conneau et al. 2018) from full matrices."""
    r_g = np.sort(s_qbank_gallery, axis=0)[-k:, :].mean(axis=0)
    r_q = np.sort(s_query_gbank, axis=1)[:, -k:].mean(axis=1)
    return 2 * s_test - r_q[:, None] - r_g[None, :]


@pytest.mark.parametrize("k", [1, 3, 10])
def test_csls_equals_the_dense_formula_exactly(k):
    qbank, gbank = texts(20, 8, seed=31), images(15, 8, seed=32)
    queries, gallery = texts(12, 8, seed=33), images(18, 8, seed=34)
    scorer = CSLS(k=k).fit(qbank, gbank)
    ours = scorer.scores(queries, gallery).double().numpy() * scorer.scale
    dense = dense_csls(sims(queries, gallery), sims(qbank, gallery), sims(queries, gbank), k)
    assert np.allclose(ours, dense, atol=1e-5)
    assert np.array_equal(rankings(ours), rankings(dense))


def test_csls_rejects_k_larger_than_a_bank():
    with pytest.raises(ValueError, match="k: expected at most 4"):
        CSLS(k=5).fit(texts(9, 4, 0), images(4, 4, 1))
