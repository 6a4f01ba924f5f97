from __future__ import annotations

import numpy as np
import pytest
import torch
from scoring_fixtures import (
    activation_set,
    images,
    log_inverted_softmax,
    rankings,
    raw_top1,
    sims,
    texts,
)

from xcm_debias import EmbeddingSet
from xcm_debias.scoring import QBNorm


def dense_qb_norm(
    s_test: np.ndarray, s_bank: np.ndarray, beta: float, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """QB-Norm's dynamic inverted softmax as published: normalised rows if top-1 ∈ A, raw else."""
    out = s_test.copy()
    gated = np.isin(raw_top1(s_test), np.flatnonzero(activation_set(s_bank, k)))
    out[gated] = np.exp(log_inverted_softmax(s_test, s_bank, beta))[gated]
    return out, gated


@pytest.mark.parametrize("beta,k", [(5.0, 1), (20.0, 1), (20.0, 3), (40.0, 2)])
def test_qb_norm_rankings_equal_the_dense_dynamic_inverted_softmax(beta, k):
    bank, gallery_bank = texts(12, 6, seed=11), images(10, 6, seed=12)
    queries, gallery = texts(40, 6, seed=13), images(35, 6, seed=14)
    scorer = QBNorm(beta=beta, k=k).fit(bank, gallery_bank)
    ours = scorer.scores(queries, gallery)
    dense, gated = dense_qb_norm(sims(queries, gallery), sims(bank, gallery), beta, k)
    assert 0 < gated.sum() < len(gated)  # both branches exercised
    assert np.array_equal(rankings(ours), rankings(dense))
    # ungated queries keep their raw scores exactly; gated ones are log-normalised / β
    raw = sims(queries, gallery)
    assert np.allclose(ours.numpy()[~gated], raw[~gated], atol=1e-5)
    log_normalised = log_inverted_softmax(raw, sims(bank, gallery), beta)
    assert np.allclose(ours.numpy()[gated] * beta, log_normalised[gated], atol=2e-4 * beta)


def test_qb_norm_gate_hand_case():
    # bank query hits gallery 0 only (k = 1): A = {0}
    bank = EmbeddingSet(torch.tensor([[1.0, 0.0]]), modality="text")
    gallery = EmbeddingSet(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), modality="image")
    queries = EmbeddingSet(torch.tensor([[0.9, 0.1], [0.1, 0.9]]), modality="text")
    scorer = QBNorm(beta=10.0, k=1).fit(bank, gallery)
    columns = scorer.gallery_columns(gallery)
    assert columns.active[:, 0].tolist() == [True, False]
    gates = scorer.query_columns(queries, columns, top1=torch.tensor([0, 1]))
    assert gates[:, 0].tolist() == [1.0, 0.0]


def test_qb_norm_needs_top1():
    scorer = QBNorm().fit(texts(5, 4, 0), images(5, 4, 1))
    gallery = images(6, 4, 2)
    with pytest.raises(ValueError, match="top1"):
        scorer.query_columns(texts(3, 4, 3), scorer.gallery_columns(gallery))
    with pytest.raises(ValueError, match="top1"):
        scorer.query_columns(
            texts(3, 4, 3), scorer.gallery_columns(gallery), torch.tensor([0, 9, 1])
        )
