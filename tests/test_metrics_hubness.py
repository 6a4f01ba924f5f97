from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from xcm_debias.metrics import (
    antihub_share,
    hub_occurrence,
    k_occurrence,
    random_null,
    robin_hood_index,
    skewness,
)


def test_k_occurrence_counts_every_gallery_item_zeros_included():
    n_k = k_occurrence(np.array([[0, 1], [0, 2], [0, 1]]), 4)
    assert n_k.tolist() == [3, 2, 1, 0]


def test_hubness_measures_by_hand():
    n_k = np.array([3, 2, 1, 0])  # mean 1.5, symmetric
    assert skewness(n_k) == pytest.approx(0.0, abs=1e-15)
    assert antihub_share(n_k) == 0.25
    assert robin_hood_index(n_k) == pytest.approx(0.5 * (1.5 + 0.5 + 0.5 + 1.5) / 6)
    assert hub_occurrence(n_k) == pytest.approx(3 / 6)  # hubs: N_k >= 2 * 1.5
    # [0, 0, 0, 4]: m2 = 3, m3 = 6 -> 6 / 3^1.5
    assert skewness([0, 0, 0, 4]) == pytest.approx(6 / 3**1.5)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 40), min_size=2, max_size=60).filter(lambda x: len(set(x)) > 1))
def test_skewness_equals_scipy_population_skew(counts):
    assert skewness(counts) == pytest.approx(
        scipy.stats.skew(counts, bias=True), rel=1e-9, abs=1e-12
    )


def test_constant_occurrence_has_no_skewness():
    assert math.isnan(skewness([3, 3, 3]))
    assert robin_hood_index([3, 3, 3]) == 0.0


def test_hub_occurrence_equals_scikit_hubness_when_queries_equal_gallery():
    rng = np.random.default_rng(0)
    n, k = 200, 5
    scores = rng.normal(size=(n, n)) + rng.normal(size=n)[None, :] * 2  # popular items
    top = np.argsort(-scores, axis=1)[:, :k]
    n_k = k_occurrence(top, n)
    hubs = n_k >= 2 * k  # scikit-hubness: k-occurrence >= hub_size * k
    assert hub_occurrence(n_k) == pytest.approx(n_k[hubs].sum() / k / n)


def test_random_retriever_matches_its_null():
    rng = np.random.default_rng(1)
    n_queries, n_gallery, k = 1000, 5000, 10
    top = np.argpartition(rng.random((n_queries, n_gallery)), k, axis=1)[:, :k]
    n_k = k_occurrence(top, n_gallery)
    null = random_null(k, n_queries, n_gallery)
    assert null.lam == pytest.approx(2.0)
    assert null.antihub_share == pytest.approx((1 - k / n_gallery) ** n_queries)
    assert antihub_share(n_k) == pytest.approx(null.antihub_share, abs=0.02)
    assert skewness(n_k) == pytest.approx(null.skewness, abs=0.15)
    # Poisson limit for small k / N
    assert null.skewness == pytest.approx(1 / math.sqrt(null.lam), rel=0.01)
    assert null.antihub_share == pytest.approx(math.exp(-null.lam), rel=0.01)


def test_null_of_a_full_list_has_no_skewness():
    null = random_null(10, 4, 5)  # k capped at N = 5: every item in every list
    assert math.isnan(null.skewness) and null.antihub_share == 0.0


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="k_occurrence: expected at least one occurrence"):
        skewness([0, 0])
    with pytest.raises(ValueError, match="k_occurrence: expected finite non-negative counts"):
        antihub_share([1, -1])
    with pytest.raises(ValueError, match=r"indices: expected gallery indices in \[0, 2\)"):
        k_occurrence(np.array([[2]]), 2)
    with pytest.raises(ValueError, match="factor: expected a positive number"):
        hub_occurrence([1, 2], factor=0)
    with pytest.raises(ValueError, match="n_queries: expected an integer >= 1"):
        random_null(1, 0, 3)
