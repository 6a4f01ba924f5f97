from __future__ import annotations

import numpy as np
import pytest

from xcm_debias.metrics import decorrelated_by_objects, odmap_at_k


def test_decorrelated_queries_show_one_object_of_a_pair_alone():
    objects = ["cross;heart", "cross", "star", "heart;star", ""]
    mask = decorrelated_by_objects(objects, [("cross", "heart")])
    assert mask.tolist() == [False, True, False, True, False]
    two_pairs = decorrelated_by_objects(objects, [("cross", "heart"), ("star", "circle")])
    assert two_pairs.tolist() == [False, True, True, True, False]


def test_odmap_is_the_mean_ap_over_decorrelated_queries():
    ap = np.array([1.0, 0.5, 0.25, 0.0])
    assert odmap_at_k(ap, np.array([False, True, True, False])) == pytest.approx(0.375)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="decorrelated: expected at least one decorrelated query"):
        odmap_at_k([1.0], np.array([False]))
    with pytest.raises(ValueError, match=r"cooccurring_pairs\[0\]: expected two different"):
        decorrelated_by_objects(["a"], [("a", "a")])
    with pytest.raises(TypeError, match="cooccurring_pairs: expected a sequence"):
        decorrelated_by_objects(["a"], "ab")
    with pytest.raises(ValueError, match="cooccurring_pairs: expected at least one pair"):
        decorrelated_by_objects(["a"], [])
    with pytest.raises(ValueError, match="decorrelated: expected 2 values"):
        odmap_at_k([1.0, 0.0], np.array([True]))
