from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xcm_debias.metrics import relevance_at_k, relevant_counts, relevant_pairs


def test_relevant_pairs_by_hand():
    q_rows, g_rows = relevant_pairs(["a", "b", "c"], ["b", "a", "b", "x"])
    assert q_rows.tolist() == [0, 1, 1]
    assert g_rows.tolist() == [1, 0, 2]
    assert relevant_counts(["a", "b", "c"], ["b", "a", "b", "x"]).tolist() == [1, 2, 0]


def test_relevance_at_k_by_hand():
    rel = relevance_at_k(np.array([[1, 0], [3, 2]]), ["a", "b"], ["b", "a", "b", "x"])
    assert rel.tolist() == [[True, False], [False, True]]


labels = st.lists(st.sampled_from("abcde"), min_size=1, max_size=25)


@settings(max_examples=50, deadline=None)
@given(queries=labels, gallery=labels)
def test_relevant_pairs_equal_the_dense_comparison(queries, gallery):
    dense = np.array(queries)[:, None] == np.array(gallery)[None, :]
    q_rows, g_rows = relevant_pairs(queries, gallery)
    assert sorted(zip(q_rows.tolist(), g_rows.tolist(), strict=True)) == sorted(
        zip(*np.nonzero(dense), strict=True)
    )
    assert relevant_counts(queries, gallery).tolist() == dense.sum(axis=1).tolist()


def test_inputs_are_not_modified():
    queries, gallery = np.array(["a", "b"]), np.array(["b", "a", "b"])
    indices = np.array([[0, 1], [2, 0]])
    copies = queries.copy(), gallery.copy(), indices.copy()
    relevance_at_k(indices, queries, gallery)
    relevant_pairs(queries, gallery)
    for before, after in zip(copies, (queries, gallery, indices), strict=True):
        assert np.array_equal(before, after)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match=r"indices: expected gallery indices in \[0, 2\)"):
        relevance_at_k(np.array([[0, 2]]), ["a"], ["a", "b"])
    with pytest.raises(ValueError, match="indices: expected a non-empty \\[Q, k\\]"):
        relevance_at_k(np.array([0, 1]), ["a"], ["a", "b"])
    with pytest.raises(TypeError, match="indices: expected integer"):
        relevance_at_k(np.array([[0.0]]), ["a"], ["a", "b"])
    with pytest.raises(ValueError, match="query_items: expected 2 labels"):
        relevance_at_k(np.array([[0], [1]]), ["a"], ["a", "b"])
    with pytest.raises(ValueError, match="query_items: expected a 1-D"):
        relevant_pairs(np.array([["a"]]), ["a"])
