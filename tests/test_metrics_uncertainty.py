"""Standard errors: hand values, the binomial formula, and the bootstrap against the analytic SE."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xcm_debias.metrics import bootstrap_se, mean_se, stratified_mean_se


def test_mean_se_of_a_share_is_the_binomial_se():
    hits = np.array([1, 1, 1, 0])  # p = 0.75, n = 4
    assert mean_se(hits) == pytest.approx(math.sqrt(0.75 * 0.25 / 4))
    assert mean_se([2.0, 4.0]) == pytest.approx(1.0 / math.sqrt(2))  # std 1
    assert math.isnan(mean_se([3.0]))


def test_stratified_mean_se_by_hand():
    # group a: [0, 1] (var 0.25, n 2); group b: [1, 1, 1] (var 0); empty label ignored
    values = [0.0, 1.0, 1.0, 1.0, 1.0, 5.0]
    groups = ["a", "a", "b", "b", "b", ""]
    assert stratified_mean_se(values, groups) == pytest.approx(math.sqrt(0.25 / 2) / 2)
    assert math.isnan(stratified_mean_se([0.0, 1.0, 2.0], ["a", "a", "b"]))  # b has one row


def test_bootstrap_se_of_a_mean_matches_the_analytic_se():
    values = np.random.default_rng(3).normal(size=400)
    se = bootstrap_se(lambda rows: values[rows].mean(), len(values), n_boot=2000, seed=1)
    assert se == pytest.approx(mean_se(values), rel=0.06)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**31), st.integers(2, 50))
def test_bootstrap_se_is_fixed_by_its_seed(seed, n):
    values = np.arange(n, dtype=float) ** 2

    def statistic(rows: np.ndarray) -> float:
        return float(values[rows].std())

    first = bootstrap_se(statistic, n, n_boot=20, seed=seed)
    assert first == bootstrap_se(statistic, n, n_boot=20, seed=seed)
    assert first >= 0


def test_bootstrap_se_ignores_undefined_resamples_and_needs_two_defined():
    flags = np.array([True, False, False, False])
    calls = []

    def defined_unless_all_false(rows: np.ndarray) -> float:
        calls.append(len(rows))
        return float(flags[rows].sum()) if flags[rows].any() else math.nan

    se = bootstrap_se(defined_unless_all_false, 4, n_boot=50, seed=0)
    assert calls == [4] * 50 and math.isfinite(se)
    assert math.isnan(bootstrap_se(lambda rows: math.nan, 4, n_boot=5))
    assert math.isnan(bootstrap_se(lambda rows: 1.0, 1, n_boot=5))  # one query: no spread


def test_errors_name_the_argument():
    with pytest.raises(TypeError, match="statistic: expected a callable"):
        bootstrap_se(3.0, 4)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_boot: expected an integer >= 2"):
        bootstrap_se(lambda rows: 0.0, 4, n_boot=1)
    with pytest.raises(ValueError, match="values: expected finite values"):
        mean_se([1.0, math.nan])
    with pytest.raises(ValueError, match="groups: expected 2 labels"):
        stratified_mean_se([1.0, 2.0], ["a"])
    with pytest.raises(ValueError, match="groups: expected at least one non-empty group"):
        stratified_mean_se([1.0, 2.0], ["", ""])
