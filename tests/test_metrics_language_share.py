from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xcm_debias.metrics import (
    faithfulness_loss,
    gallery_language_share,
    language_share_at_k,
    lbkl_at_k,
    total_variation,
    unfaithful_top1_share,
)

RETRIEVED = np.array([["en", "de"], ["en", "sw"], ["de", "en"]])


def test_language_share_by_hand():
    assert language_share_at_k(RETRIEVED, 1) == pytest.approx({"en": 2 / 3, "de": 1 / 3})
    assert language_share_at_k(RETRIEVED, 2) == pytest.approx({"en": 0.5, "de": 1 / 3, "sw": 1 / 6})
    assert gallery_language_share(["en", "de", "sw", "de"]) == {"de": 0.5, "en": 0.25, "sw": 0.25}


def test_total_variation_by_hand():
    third = {"en": 1 / 3, "de": 1 / 3, "sw": 1 / 3}
    assert total_variation({"en": 1.0}, third) == pytest.approx(2 / 3)
    assert total_variation({"en": 0.5, "de": 0.5}, {"fr": 1.0}) == pytest.approx(1.0)


@settings(max_examples=50, deadline=None)
@given(
    data=st.data(),
    gallery=st.lists(st.sampled_from(["en", "de", "sw", "ja"]), min_size=1, max_size=40),
)
def test_tv_is_zero_when_the_top1_mix_equals_the_gallery_mix(data, gallery):
    top1 = data.draw(st.permutations(gallery))
    shares = language_share_at_k(np.array(top1)[:, None], 1)
    assert total_variation(shares, gallery_language_share(gallery)) == pytest.approx(0.0, abs=1e-12)


def test_faithfulness_by_hand():
    rel = np.array([[False, True], [True, False], [False, False]])
    assert faithfulness_loss(rel, 1) == pytest.approx(2 / 3)
    assert faithfulness_loss(rel, 2) == pytest.approx(1 / 3)
    by_language = unfaithful_top1_share(rel, RETRIEVED)
    assert by_language == pytest.approx({"en": 1 / 3, "de": 1 / 3})
    assert sum(by_language.values()) == pytest.approx(faithfulness_loss(rel, 1))


def test_lbkl_by_hand():
    # at k = 1 the low-resource share is 0 or 1: 1/2 ln(1/2) + 1/2 ln(1/2 / 1e-9) for every query
    constant = 0.5 * math.log(0.5) + 0.5 * math.log(0.5 / 1e-9)
    assert constant == pytest.approx(9.668485737913262)
    assert lbkl_at_k(RETRIEVED, ["sw"], 1) == pytest.approx(constant)
    top = np.array([["sw", "en", "en"]])
    assert lbkl_at_k(top, ["sw"], 2) == pytest.approx(0.0, abs=1e-15)  # an even split
    assert lbkl_at_k(top, ["sw"], 3) == pytest.approx(0.05889151782819166)  # p = 1/3
    # discounted: weights 1 and 1/log2(3), p = 1 / (1 + 1/log2 3) = 0.61315
    assert lbkl_at_k(top, ["sw"], 2, discounted=True) == pytest.approx(0.026283446705196653)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="retrieved_languages: expected a non-empty \\[Q, k\\]"):
        language_share_at_k(np.array(["en"]), 1)
    with pytest.raises(ValueError, match="gallery_languages: expected at least one"):
        gallery_language_share([])
    with pytest.raises(ValueError, match="p: expected finite non-negative shares"):
        total_variation({"en": -0.1}, {"en": 1.0})
    with pytest.raises(TypeError, match="low_resource: expected a sequence"):
        lbkl_at_k(RETRIEVED, "sw", 1)
    with pytest.raises(ValueError, match="low_resource: expected at least one"):
        lbkl_at_k(RETRIEVED, [], 1)
    with pytest.raises(ValueError, match="retrieved_languages: expected 2 rows"):
        unfaithful_top1_share(np.array([[True], [False]]), RETRIEVED)
    with pytest.raises(ValueError, match="k: expected an integer >= 1"):
        faithfulness_loss(np.array([[True]]), 0)


def test_inputs_are_not_modified():
    retrieved = RETRIEVED.copy()
    lbkl_at_k(retrieved, ["sw"], 2, discounted=True)
    language_share_at_k(retrieved, 2)
    assert np.array_equal(retrieved, RETRIEVED)
