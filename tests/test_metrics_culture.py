from __future__ import annotations

import math

import numpy as np
import pytest

from xcm_debias.metrics import by_outcome, own_culture_at_1, own_culture_chance, own_culture_excess


def test_own_culture_at_1_by_hand():
    assert own_culture_at_1(["de", "ja", "sw"], ["de", "de", "sw"]).tolist() == [1.0, 0.0, 1.0]


def test_chance_is_the_own_culture_share_among_relevant_images():
    # query 0 (item a, own de): relevant a/de, a/ja, a/ja -> 1/3; query 1 (item b, own ja): b/de -> 0
    chance = own_culture_chance(
        ["a", "b"], ["de", "ja"], ["a", "a", "b", "a", "c"], ["de", "ja", "de", "ja", "ja"]
    )
    assert chance == pytest.approx([1 / 3, 0.0])


def test_excess_by_hand():
    own = {"de": 1.0, "sw": 0.5}
    chance = {"de": 0.25, "sw": 0.25}
    assert own_culture_excess(own, chance) == pytest.approx(((1 - 0.25) + (0.5 - 0.25)) / 2)


def test_hits_and_misses_by_hand():
    hits, misses = by_outcome(
        [1.0, 0.0, 1.0, 1.0, 0.0],
        ["de", "de", "de", "sw", "sw"],
        np.array([True, True, False, False, False]),
    )
    assert hits["de"] == pytest.approx(0.5)
    assert math.isnan(hits["sw"])  # no sw query hit
    assert misses == pytest.approx({"de": 1.0, "sw": 0.5})


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="own_cultures: expected an own culture for every query"):
        own_culture_at_1(["de"], [""])
    with pytest.raises(ValueError, match="own_cultures: expected 2 labels"):
        own_culture_at_1(["de", "ja"], ["de"])
    with pytest.raises(ValueError, match="query_items: expected at least one relevant gallery row"):
        own_culture_chance(["z"], ["de"], ["a"], ["de"])
    with pytest.raises(ValueError, match="gallery_cultures: expected 1 labels"):
        own_culture_chance(["a"], ["de"], ["a"], ["de", "ja"])
    with pytest.raises(ValueError, match="chance: expected the languages of own"):
        own_culture_excess({"de": 1.0}, {"sw": 0.5})
    with pytest.raises(TypeError, match="hit: expected booleans"):
        by_outcome([1.0], ["de"], np.array([1]))
