from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xcm_debias.metrics import mrv, mrv_var, rank_spread_per_group

# item A: en 1, de 3 -> std 1, var 1; item B: en 2, de 2, sw 5 -> var 2, std sqrt(2);
# item C: one language only -> left out
RANKS = [1, 3, 2, 2, 5, 9]
ITEMS = ["A", "A", "B", "B", "B", "C"]
LANGS = ["en", "de", "en", "de", "sw", "en"]


def test_mrv_by_hand():
    assert rank_spread_per_group(RANKS, ITEMS, LANGS) == pytest.approx({"A": 1.0, "B": np.sqrt(2)})
    assert mrv(RANKS, ITEMS, LANGS) == pytest.approx((1 + np.sqrt(2)) / 2)
    assert mrv_var(RANKS, ITEMS, LANGS) == pytest.approx(1.5)


def test_rows_of_one_language_are_averaged_first():
    # item A: en ranks 1 and 3 (mean 2), de 4 -> std 1
    assert mrv([1, 3, 4], ["A", "A", "A"], ["en", "en", "de"]) == pytest.approx(1.0)


@settings(max_examples=50, deadline=None)
@given(
    per_item=st.lists(st.integers(1, 100), min_size=1, max_size=10),
    n_languages=st.integers(2, 5),
)
def test_mrv_is_zero_when_every_language_ranks_alike(per_item, n_languages):
    ranks = np.repeat(per_item, n_languages)
    items = np.repeat([f"i{i}" for i in range(len(per_item))], n_languages)
    langs = np.tile([f"l{j}" for j in range(n_languages)], len(per_item))
    assert mrv(ranks, items, langs) == 0.0
    assert mrv_var(ranks, items, langs) == 0.0


@settings(max_examples=30, deadline=None)
@given(data=st.data(), n_items=st.integers(1, 6), n_languages=st.integers(2, 4))
def test_mrv_equals_numpy_std_per_item(data, n_items, n_languages):
    ranks = data.draw(
        st.lists(st.integers(1, 50), min_size=n_items * n_languages, max_size=n_items * n_languages)
    )
    grid = np.array(ranks).reshape(n_items, n_languages)
    items = np.repeat([f"i{i}" for i in range(n_items)], n_languages)
    langs = np.tile([f"l{j}" for j in range(n_languages)], n_items)
    order = np.random.default_rng(n_items).permutation(len(ranks))  # row order is irrelevant
    assert mrv(np.array(ranks)[order], items[order], langs[order]) == pytest.approx(
        grid.std(axis=1).mean()
    )
    assert mrv_var(ranks, items, langs) == pytest.approx(grid.var(axis=1).mean())


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="expected at least one group ranked in two or more"):
        mrv([1, 2], ["A", "B"], ["en", "en"])
    with pytest.raises(ValueError, match="languages: expected 2 labels"):
        mrv([1, 2], ["A", "A"], ["en"])
    with pytest.raises(ValueError, match="ranks: expected 1-based ranks"):
        mrv([0, 2], ["A", "A"], ["en", "de"])
    with pytest.raises(ValueError, match="statistic: expected 'std' or 'var'"):
        rank_spread_per_group([1, 2], ["A", "A"], ["en", "de"], statistic="mad")
