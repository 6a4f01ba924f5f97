from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import label_ranking_average_precision_score

from xcm_debias.metrics import average_precision_at_k, recall_at_k, reciprocal_rank


def test_recall_and_reciprocal_rank_by_hand():
    ranks = np.array([1, 3, 7])
    assert recall_at_k(ranks, 1).tolist() == [1.0, 0.0, 0.0]
    assert recall_at_k(ranks, 5).tolist() == [1.0, 1.0, 0.0]
    assert recall_at_k(torch.tensor([1, 3, 7]), 7).tolist() == [1.0, 1.0, 1.0]
    assert reciprocal_rank(ranks) == pytest.approx([1.0, 1 / 3, 1 / 7])


def test_average_precision_at_k_by_hand():
    rel = np.array([[True, False, True], [False, True, False]])
    # query 0: R = 2, hits at 1 and 3 -> (1 + 2/3) / 2; query 1: R = 3, k = 2 -> (1/2) / min(3, 2)
    ap = average_precision_at_k(rel, np.array([2, 3]), 3)
    assert ap == pytest.approx([(1 + 2 / 3) / 2, (1 / 2) / 3])
    ap2 = average_precision_at_k(rel, np.array([2, 3]), 2)
    assert ap2 == pytest.approx([1 / 2, (1 / 2) / 2])


def dense_relevance(seed: int, n_q: int, n_g: int, n_items: int):
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(n_q, n_g))
    g_items = rng.integers(0, n_items, n_g)
    q_items = g_items[rng.integers(0, n_g, n_q)]  # every query has a relevant row
    truth = q_items[:, None] == g_items[None, :]
    order = np.argsort(-scores, axis=1, kind="stable")
    rel = np.take_along_axis(truth, order, axis=1)
    return scores, truth, rel


@pytest.mark.parametrize("seed", range(4))
def test_full_depth_ap_equals_sklearn_label_ranking_ap(seed):
    scores, truth, rel = dense_relevance(seed, 30, 40, 8)
    ap = average_precision_at_k(rel, truth.sum(axis=1), 40)
    per_query = [
        label_ranking_average_precision_score(truth[i : i + 1], scores[i : i + 1])
        for i in range(30)
    ]
    assert ap == pytest.approx(per_query, abs=1e-12)
    assert ap.mean() == pytest.approx(label_ranking_average_precision_score(truth, scores))


@pytest.mark.parametrize("seed", range(3))
def test_ap_at_k_equals_the_direct_inquire_formula(seed):
    _, truth, rel = dense_relevance(seed, 20, 30, 6)
    k = 5
    expected = []
    for row, r in zip(rel, truth.sum(axis=1), strict=True):
        total = sum(row[:i].sum() / i for i in range(1, k + 1) if row[i - 1])
        expected.append(total / min(r, k))
    assert average_precision_at_k(rel[:, :k], truth.sum(axis=1), k) == pytest.approx(expected)


@settings(max_examples=50, deadline=None)
@given(
    ranks=st.lists(st.integers(1, 50), min_size=1, max_size=30),
    k1=st.integers(1, 60),
    k2=st.integers(1, 60),
)
def test_recall_is_monotone_in_k(ranks, k1, k2):
    low, high = sorted((k1, k2))
    assert (recall_at_k(ranks, low) <= recall_at_k(ranks, high)).all()
    assert recall_at_k(ranks, max(ranks)).all()


def test_recall_from_ranks_equals_any_hit_in_the_top_k():
    _, truth, rel = dense_relevance(7, 25, 30, 5)
    first = rel.argmax(axis=1) + 1
    for k in (1, 3, 10, 30):
        assert recall_at_k(first, k).tolist() == rel[:, :k].any(axis=1).astype(float).tolist()


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="first_ranks: expected 1-based ranks >= 1, got minimum 0"):
        recall_at_k([0, 1], 1)
    with pytest.raises(ValueError, match="k: expected an integer >= 1, got 0"):
        recall_at_k([1], 0)
    with pytest.raises(ValueError, match="first_ranks: expected a non-empty"):
        reciprocal_rank([])
    with pytest.raises(ValueError, match="n_relevant: expected at least one relevant"):
        average_precision_at_k(np.array([[False]]), [0], 1)
    with pytest.raises(TypeError, match="relevance: expected a boolean matrix"):
        average_precision_at_k(np.array([[1]]), [1], 1)
    with pytest.raises(ValueError, match="n_relevant: expected 2 values"):
        average_precision_at_k(np.array([[True], [True]]), [1], 1)
    with pytest.raises(ValueError, match="n_relevant: expected R_q >="):
        average_precision_at_k(np.array([[True, True]]), [1], 2)


def test_inputs_are_not_modified():
    ranks = np.array([3, 1])
    rel = np.array([[False, True], [True, False]])
    counts = np.array([1, 2])
    copies = ranks.copy(), rel.copy(), counts.copy()
    recall_at_k(ranks, 1)
    reciprocal_rank(ranks)
    average_precision_at_k(rel, counts, 2)
    assert all(np.array_equal(a, b) for a, b in zip(copies, (ranks, rel, counts), strict=True))
