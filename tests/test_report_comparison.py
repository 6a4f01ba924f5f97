"""Comparison: deltas, missing keys, and the direction-aware verdict of each metric family."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from report_fixtures import after_report, before_report

from xcm_debias.report import BiasReport, Comparison, families


@pytest.fixture(scope="module")
def comparison() -> Comparison:
    return before_report().compare(after_report())


@pytest.mark.parametrize(
    ("key", "delta"),
    [
        ("t2i/recall@1", 0.0),
        ("t2i/recall@5", 0.0625),
        ("t2i/recall@1/lang=sw", 0.25),
        ("i2t/recall@1", -0.0625),
        ("t2i/own_culture@1/lang=en", -0.375),
        ("t2i/own_culture_excess@1", 0.125 / 3 - 2 / 3),
        ("i2t/language_tv@1", 1 / 12 - 5 / 12),
        ("t2i/mrv", -1.5),
        ("t2i/hubness_skew@10", -1.5),
        ("modality_gap", -0.3125),
    ],
)
def test_delta_is_after_minus_before_on_hand_values(comparison, key, delta):
    entry = comparison[key]
    assert entry.delta == entry.after - entry.before
    assert entry.delta == pytest.approx(delta, abs=1e-12)


def test_every_shared_key_has_a_delta_and_none_is_dropped(comparison):
    before, after = before_report(), after_report()
    shared = set(before.metrics) & set(after.metrics)
    assert set(comparison.delta) == shared
    assert set(comparison.keys()) == set(before.metrics) | set(after.metrics)
    assert comparison.missing == {"i2t/lbkl@1": "before", "t2i/mrr": "after"}
    lbkl = comparison["i2t/lbkl@1"]
    assert (lbkl.before, lbkl.after, lbkl.delta, lbkl.verdict) == (9.67, None, None, "missing")


@pytest.mark.parametrize(
    ("key", "verdict"),
    [
        ("t2i/recall@5", "better"),  # recall up
        ("i2t/recall@1", "worse"),  # recall down
        ("t2i/recall@1", "unchanged"),
        ("t2i/recall@1/lang=en", "worse"),
        ("i2t/language_tv@1", "better"),  # TV down
        ("t2i/own_culture_excess@1", "better"),  # |excess| down
        ("t2i/own_culture@1/lang=de", "better"),  # 1.0 -> 0.25 = chance
        ("i2t/language_share@1/lang=sw", "better"),  # 0 -> 0.375, gallery 1/3
        ("t2i/mrv", "better"),
        ("i2t/mrv", "worse"),  # 1.25 -> 1.5
        ("t2i/hubness_antihub@10", "better"),
        ("modality_gap", "neutral"),
        ("t2i/hubness_skew_null@10", "neutral"),
        ("t2i/own_culture_chance/lang=de", "neutral"),
        ("t2i/culture_share@1/lang=de/culture=de", "neutral"),
    ],
)
def test_verdict_follows_the_family_direction(comparison, key, verdict):
    assert comparison[key].verdict == verdict


def _pair(
    key: str, before: float, after: float, extra: dict[str, tuple[float, float]] | None = None
):
    extra = extra or {}
    b = BiasReport({key: before, **{k: v[0] for k, v in extra.items()}})
    a = BiasReport({key: after, **{k: v[1] for k, v in extra.items()}})
    return b.compare(a)[key].verdict


def test_toward_chance_overshoot_is_judged_by_distance():
    chance = {"t2i/own_culture_chance/lang=de": (0.25, 0.25)}
    # 0.40 -> 0.05: |0.15| -> |0.20|: moved below chance by more than it was above: worse
    assert _pair("t2i/own_culture@1/lang=de", 0.40, 0.05, chance) == "worse"
    assert _pair("t2i/own_culture@1/lang=de", 0.40, 0.30, chance) == "better"
    # without the chance level the direction is undefined, not guessed
    assert _pair("t2i/own_culture@1/lang=de", 0.40, 0.30) == "n/a"


def test_signed_excess_is_judged_by_absolute_value():
    assert _pair("t2i/own_culture_excess@1", 0.30, -0.10) == "better"
    assert _pair("t2i/own_culture_excess@1", 0.10, -0.30) == "worse"


def test_nan_gives_no_verdict_and_unknown_keys_are_neutral():
    assert _pair("t2i/recall@1", math.nan, 0.5) == "n/a"
    assert _pair("my/custom_metric", 0.1, 0.9) == "neutral"


directed = st.sampled_from(
    [
        "t2i/recall@1",
        "i2t/recall@10/culture=de",
        "i2t/language_tv@1",
        "t2i/mrv",
        "t2i/hubness_skew@10",
        "t2i/own_culture_excess@1",
    ]
)
value = st.floats(-10, 10, allow_nan=False)


@given(directed, value, value)
def test_swapping_before_and_after_swaps_better_and_worse(key, x, y):
    forward, backward = _pair(key, x, y), _pair(key, y, x)
    flip = {"better": "worse", "worse": "better", "unchanged": "unchanged"}
    assert backward == flip[forward]


@given(
    st.dictionaries(st.sampled_from(["a", "b/c", "t2i/recall@1", "x=1"]), value),
    st.dictionaries(st.sampled_from(["a", "b/c", "t2i/recall@1", "d"]), value),
)
def test_delta_and_missing_partition_the_union_of_keys(before, after):
    comparison = BiasReport(before).compare(BiasReport(after))
    assert set(comparison.delta) | set(comparison.missing) == set(before) | set(after)
    assert not set(comparison.delta) & set(comparison.missing)
    for key, delta in comparison.delta.items():
        assert delta == after[key] - before[key]


def test_with_verdict_lists_keys(comparison):
    assert "i2t/recall@1" in comparison.with_verdict("worse")
    assert set(comparison.with_verdict("missing")) == {"i2t/lbkl@1", "t2i/mrr"}
    with pytest.raises(ValueError, match="verdict: expected one of"):
        comparison.with_verdict("good")


def test_comparison_validates_its_inputs():
    with pytest.raises(TypeError, match="after: expected a BiasReport, got dict"):
        Comparison(before_report(), {"t2i/recall@1": 1.0})
    with pytest.raises(ValueError, match="labels: expected two non-empty strings"):
        Comparison(before_report(), after_report(), labels=("only one",))
    with pytest.raises(KeyError, match="expected a metric of either report"):
        Comparison(before_report(), after_report())["t2i/nothing"]


def test_family_table_sections_for_the_design_keys():
    expected = {
        "t2i/recall@1/lang=de": "retrieval",
        "i2t/recall@1/culture=de": "retrieval",
        "i2t/language_share@1/lang=de": "prevalence",
        "i2t/gallery_language_share/lang=de": "prevalence",
        "i2t/language_tv@1": "prevalence",
        "t2i/own_culture@1/lang=de": "tugging",
        "t2i/own_culture_hits@1/lang=de": "tugging",
        "t2i/own_culture_misses@1/lang=de": "tugging",
        "t2i/culture_share@1/lang=de/culture=ja": "tugging",
        "t2i/own_culture_excess@1": "tugging",
        "t2i/mrv": "consistency",
        "t2i/recall@1/worst_lang": "retrieval",
        "i2t/recall@1/best_culture": "retrieval",
        "t2i/recall@1/lang_gap": "consistency",
        "i2t/recall@1/culture_std": "consistency",
        "t2i/hubness_robin_hood@10": "hubness",
        "i2t/hubness_hub_occurrence@10": "hubness",
        "i2t/hubness_antihub_null@10": "hubness",
        "odmap@10": "retrieval",
        "i2t/faithfulness_loss@1/lang=sw": "prevalence",
        "t2i/hubness_skew@10": "hubness",
        "t2i/hubness_skew_null@10": "hubness",
        "t2i/hubness_antihub@10": "hubness",
        "modality_gap": "hubness",
        "something/else": "other",
    }
    assert {key: families.family_of(key).section for key in expected} == expected


@given(
    st.lists(st.text(alphabet="abc@1_", min_size=1, max_size=6), min_size=1, max_size=3),
    st.lists(
        st.tuples(
            st.text(alphabet="lang", min_size=1, max_size=4),
            st.text(alphabet="dexyz-", min_size=1, max_size=4),
        ),
        max_size=2,
    ),
)
def test_split_and_join_key_are_inverse(base_parts, qualifiers):
    key = families.join_key("/".join(base_parts), tuple(qualifiers))
    assert families.join_key(*families.split_key(key)) == key
