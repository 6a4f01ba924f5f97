from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scoring_fixtures import (
    assert_equal_up_to_row_constant,
    images,
    log_inverted_softmax,
    rankings,
    sims,
    texts,
)

from xcm_debias import EmbeddingSet
from xcm_debias.scoring import InvertedSoftmax


@pytest.mark.parametrize("beta", [1.0, 5.0, 20.0, 60.0])
def test_inverted_softmax_equals_dense_formula_up_to_a_per_query_constant(beta):
    bank, gallery_bank = texts(40, 12, seed=1), images(25, 12, seed=2)
    queries, gallery = texts(15, 12, seed=3), images(30, 12, seed=4)
    scorer = InvertedSoftmax(beta=beta).fit(bank, gallery_bank)
    ours = scorer.scores(queries, gallery).double().numpy() * scorer.scale
    dense = log_inverted_softmax(sims(queries, gallery), sims(bank, gallery), beta)
    assert_equal_up_to_row_constant(ours, dense, atol=2e-4 * max(beta, 1.0))
    assert np.array_equal(rankings(ours), rankings(dense))


def test_inverted_softmax_hand_computed_offsets():
    # 1-D rows: s(q, g) is the product of signs. Bank queries (+1, +1, −1); gallery (+1, −1).
    bank = EmbeddingSet(torch.tensor([[1.0], [1.0], [-1.0]]), modality="text")
    gallery = EmbeddingSet(torch.tensor([[1.0], [-1.0]]), modality="image")
    beta = 2.0
    scorer = InvertedSoftmax(beta=beta).fit(bank, gallery)
    columns = scorer.gallery_columns(gallery).columns[:, 0]
    # Z(g=+1) = 2e^2 + e^-2, Z(g=-1) = 2e^-2 + e^2; v(g) = −log Z(g)/β
    expected = [
        -math.log(2 * math.exp(2) + math.exp(-2)) / beta,
        -math.log(2 * math.exp(-2) + math.exp(2)) / beta,
    ]
    assert columns.tolist() == pytest.approx(expected, abs=1e-6)


def test_inverted_softmax_blockwise_equals_one_block():
    bank, gallery = texts(37, 8, seed=5), images(29, 8, seed=6)
    small = InvertedSoftmax(beta=30.0, block_size=4).fit(bank, gallery)
    large = InvertedSoftmax(beta=30.0).fit(bank, gallery)
    assert torch.allclose(
        small.gallery_columns(gallery).columns, large.gallery_columns(gallery).columns, atol=1e-5
    )


def test_inverted_softmax_demotes_a_hub():
    # gallery item 0 is close to every bank query (a hub); item 1 only to the test query
    bank = EmbeddingSet(torch.tensor([[1.0, 0.1], [1.0, -0.1], [1.0, 0.0]]), modality="text")
    gallery = EmbeddingSet(torch.tensor([[1.0, 0.0], [0.8, 0.6]]), modality="image")
    query = EmbeddingSet(torch.tensor([[0.95, 0.31]]), modality="text")
    scorer = InvertedSoftmax(beta=20.0).fit(bank.normalized(), gallery)
    raw = sims(query, gallery)[0]
    assert raw[0] > raw[1]
    normalised = scorer.scores(query, gallery)[0]
    assert normalised[1] > normalised[0]


@pytest.mark.parametrize("beta", [0.0, -1.0, float("nan"), True, "20"])
def test_inverted_softmax_rejects_bad_beta(beta):
    with pytest.raises((ValueError, TypeError), match="beta"):
        InvertedSoftmax(beta=beta).fit(texts(5, 4, 0), images(5, 4, 1))
