from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xcm_debias.metrics import group_mean, group_share, spread


def test_group_mean_by_hand():
    out = group_mean([1.0, 0.0, 1.0, 1.0], ["a", "a", "b", ""])
    assert out == {"a": 0.5, "b": 1.0}  # the unlabelled row belongs to no group


def test_group_share_by_hand():
    out = group_share(["x", "y", "x", "", "y"], ["a", "a", "a", "a", "b"])
    assert out == {"a": {"x": 0.5, "y": 0.25}, "b": {"x": 0.0, "y": 1.0}}


def test_spread_by_hand():
    s = spread({"de": 0.2, "en": 0.6, "sw": 1.0})
    assert (s.worst, s.best) == (0.2, 1.0)
    assert s.gap == pytest.approx(0.8)
    assert s.std == pytest.approx(np.sqrt(((0.2 - 0.6) ** 2 + 0 + 0.4**2) / 3))


@settings(max_examples=50, deadline=None)
@given(
    values=st.lists(st.floats(-5, 5), min_size=1, max_size=30),
    data=st.data(),
)
def test_group_mean_matches_a_loop_and_follows_relabelling(values, data):
    groups = data.draw(
        st.lists(st.sampled_from(["a", "b", "c"]), min_size=len(values), max_size=len(values))
    )
    out = group_mean(values, groups)
    v, g = np.array(values), np.array(groups)
    for name in set(groups):
        assert out[name] == pytest.approx(v[g == name].mean())
    renamed = {"a": "z", "b": "y", "c": "x"}
    relabelled = group_mean(values, [renamed[x] for x in groups])
    assert relabelled == pytest.approx({renamed[k]: val for k, val in out.items()})


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="groups: expected 2 labels"):
        group_mean([1.0, 2.0], ["a"])
    with pytest.raises(ValueError, match="values: expected finite values"):
        group_mean([np.nan], ["a"])
    with pytest.raises(ValueError, match="per_group: expected at least one group"):
        spread({})
    with pytest.raises(TypeError, match="per_group: expected a mapping"):
        spread([0.5])
    with pytest.raises(ValueError, match="categories: expected 1 labels"):
        group_share(["x", "y"], ["a"])
