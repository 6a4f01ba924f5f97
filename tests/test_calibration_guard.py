"""The recall guard: paired recall constraints, the choice rule, labels as they come, save/load."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy.stats import norm

import xcm_debias
from xcm_debias import Debiased, EmbeddingSet, ExactRetriever
from xcm_debias.calibration.evaluation import Outcomes, bias
from xcm_debias.calibration.guard import RecallGuard, group_margin
from xcm_debias.calibration.selection import Selection
from xcm_debias.worlds import world_calibration_test

_GB = {"class": "GroupBalance", "params": {"temperature": 0.02}}
_IS = {"class": "InvertedSoftmax", "params": {"beta": 20.0}}
# a deliberately harsh balancer: forces the top-1 language mix at almost any recall cost
_HARSH = {"class": "GroupBalance", "params": {"temperature": 0.0005}}
SMALL_OPTIONS = {
    "processors": {"none": [], "LA": [{"class": "LanguageAlignment", "params": {}}]},
    "t2i": {"none": [], "GB": [_GB]},
    "i2t": {"none": [], "IS": [_IS], "harsh": [_HARSH]},
    # these tests are about the constraints and the choice rule, not the minimum calibration
    # size for score stages (test_too_few_calibration_items_... keeps it)
    "min_items_for_scoring": 0,
}


@pytest.fixture(scope="module")
def small_world() -> tuple[EmbeddingSet, EmbeddingSet]:
    # 30 calibration items: each of the guard's two folds ranks against 15 items' captions,
    # enough for a harsh balancer's recall loss to show
    return world_calibration_test(seed=0, n_items=150)


@pytest.fixture(scope="module")
def guarded(small_world) -> Debiased:
    calibration, _ = small_world
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return xcm_debias.recommended(ExactRetriever(), **SMALL_OPTIONS).fit(calibration)


def _outcomes(hits: list[int], groups: list[str] | None = None) -> Outcomes:
    hit = np.array(hits, dtype=bool)
    return Outcomes("t2i", hit, np.array(groups or ["de"] * len(hit)))


def test_paired_loss_plus_z_standard_errors_decides_admissibility():
    base, cand = _outcomes([1] * 10), _outcomes([1] * 9 + [0])
    # d = base − cand: nine 0s and one 1; mean 0.1, sample sd sqrt(0.1), SE sqrt(0.1)/sqrt(10) = 0.1
    strict = RecallGuard(max_recall_loss=0.15, z=1.0)
    (reason,) = strict._violations(base, cand, {}, {})
    assert "loss 0.100 + 1.00·SE 0.100 > 0.15" in reason
    assert RecallGuard(max_recall_loss=0.2, z=1.0)._violations(base, cand, {}, {}) == []
    assert RecallGuard(max_recall_loss=0.1, z=0.0)._violations(base, cand, {}, {}) == []


def test_each_group_is_guarded_not_only_the_mean():
    groups = ["de"] * 5 + ["sw"] * 5
    base = _outcomes([1] * 10, groups)
    cand = _outcomes([1] * 5 + [1, 1, 1, 0, 0], groups)  # Swahili loses 2 of 5, overall 2 of 10
    reasons = RecallGuard(max_recall_loss=0.25, z=0.0)._violations(base, cand, {}, {})
    # sw differences 0,0,0,1,1: mean 0.4, sample sd sqrt(0.3), SE sqrt(0.3)/sqrt(5) = 0.245
    assert reasons == ["t2i recall@1 group sw: loss 0.400 − 0.00·SE 0.245 > 0.25"]


def test_group_margin_is_the_bonferroni_quantile():
    # independent implementation: scipy's normal quantile of 1 − Φ(−z)/G
    for z, groups in [(1.0, 8), (1.0, 2), (2.0, 5), (0.5, 1)]:
        expected = norm.ppf(1.0 - norm.cdf(-z) / groups)
        assert group_margin(z, groups) == pytest.approx(expected, rel=1e-9)
    assert group_margin(1.0, 1) == pytest.approx(1.0, rel=1e-9)
    # Φ⁻¹(1 − 0.158655/8) = Φ⁻¹(0.980168)
    assert group_margin(1.0, 8) == pytest.approx(2.0572, abs=1e-4)
    assert group_margin(0.0, 8) == 0.0


def test_a_group_is_rejected_only_beyond_the_bonferroni_margin():
    # 2 groups at z = 1: margin Φ⁻¹(1 − 0.15866/2) = 1.4097. sw differences 0,0,0,1,1 (loss 0.4,
    # SE 0.245): 0.4 − 1.4097·0.245 = 0.0547 — rejected at a guard of 0.05, admitted at 0.06
    groups = ["de"] * 5 + ["sw"] * 5
    base = _outcomes([1] * 10, groups)
    cand = _outcomes([1] * 5 + [1, 1, 1, 0, 0], groups)
    loose = dict(z=1.0)
    reasons = RecallGuard(max_recall_loss=0.05, **loose)._violations(base, cand, {}, {})
    assert "t2i recall@1 group sw: loss 0.400 − 1.41·SE 0.245 > 0.05" in reasons
    # overall: loss 0.2 + 1·SE 0.133 = 0.333: above either guard, so only the group line differs
    assert not any(
        "group" in r
        for r in RecallGuard(max_recall_loss=0.06, **loose)._violations(base, cand, {}, {})
    )


def test_a_candidate_that_loses_the_named_culture_is_rejected():
    hit = np.ones(10, dtype=bool)
    explicit = np.array([False] * 2 + [True] * 8)

    def outcomes(named: list[int]) -> Outcomes:
        return Outcomes(
            "t2i", hit, np.full(10, "de"), named=np.array(named, dtype=bool), explicit=explicit
        )

    base = outcomes([0, 0] + [1] * 8)
    # 6 of the 8 explicit queries lose their named culture: mean 0.75, SE sqrt(3/14)/sqrt(8)
    wiped = outcomes([0, 0] + [1, 1] + [0] * 6)
    guard = RecallGuard(max_recall_loss=0.01, z=1.0)
    (reason,) = guard._violations(base, wiped, {}, {})
    assert reason == "t2i named_culture@1: loss 0.750 − 1·SE 0.164 > 0.01"
    # one loss in eight is within one SE of the guard: not a confident harm
    assert guard._violations(base, outcomes([0, 0] + [1] * 7 + [0]), {}, {}) == []
    assert guard._violations(base, base, {}, {}) == []


def test_hubness_constraint_uses_the_tolerance():
    base = _outcomes([1, 1])
    guard = RecallGuard(hubness_tolerance=0.5)
    key = "t2i/hubness_skew@10"
    assert guard._violations(base, base, {key: 1.0}, {key: 1.5}) == []
    (reason,) = guard._violations(base, base, {key: 1.0}, {key: 1.6})
    assert reason.startswith(key)


def test_the_plain_option_is_always_admissible_and_matches_the_plain_retriever(guarded):
    selection = guarded.selection_
    by_name = {c.name: c for c in selection.candidates}
    for direction in ("t2i", "i2t"):
        plain = by_name[f"none | {direction}: none"]
        assert plain.admissible and plain.reasons == []
        assert plain.metrics == by_name[f"plain retriever ({direction})"].metrics


def test_the_harsh_balancer_is_rejected_for_its_recall_loss(guarded):
    by_name = {c.name: c for c in guarded.selection_.candidates}
    for p in ("none", "LA"):
        harsh = by_name[f"{p} | i2t: harsh"]
        assert not harsh.admissible
        assert any("i2t recall@1" in r for r in harsh.reasons), harsh.reasons
    assert "harsh" not in guarded.selection_.chosen


def test_the_choice_is_admissible_and_least_biased_up_to_the_tolerance(guarded):
    selection = guarded.selection_
    chosen = {c.direction: c for c in selection.chosen_candidates()}
    assert set(chosen) == {"t2i", "i2t"}
    p_name = chosen["t2i"].name.split(" | ")[0]
    assert chosen["i2t"].name.startswith(p_name + " | ")
    for direction, row in chosen.items():
        assert row.admissible
        rivals = [
            c
            for c in selection.candidates
            if c.direction == direction and c.admissible and c.name.startswith(p_name + " | ")
        ]
        lowest = min(bias(c.metrics, direction) for c in rivals)
        assert bias(row.metrics, direction) <= lowest + 0.01 + 1e-12
    # the fitted pipeline is the chosen configuration
    assert [type(s).__name__ for s in guarded.scorers_.get("i2t", [])] == [
        s["class"] for s in selection.config["scoring"].get("i2t", [])
    ]


def test_with_everything_allowed_the_least_biased_image_to_text_option_wins(small_world):
    calibration, _ = small_world
    guard = RecallGuard(max_recall_loss=1.0, hubness_tolerance=1e9, **SMALL_OPTIONS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        selection = guard.select(ExactRetriever(), calibration, 5)
    p_name = selection.chosen.split(" | ")[0]
    rows = [c for c in selection.candidates if c.direction == "i2t" and c.name.startswith(p_name)]
    assert all(c.admissible for c in rows)
    best = min(bias(c.metrics, "i2t") for c in rows)
    (chosen,) = [c for c in selection.chosen_candidates() if c.direction == "i2t"]
    assert bias(chosen.metrics, "i2t") <= best + 0.01


def test_selection_saves_and_loads_with_the_pipeline(guarded, small_world, tmp_path):
    _, test = small_world
    path = guarded.save(tmp_path / "guarded.safetensors")
    loaded = Debiased.load(path)
    assert loaded.selection_ is not None
    assert loaded.selection_.to_dict() == guarded.selection_.to_dict()
    a = guarded.search(test.texts, test.images, 5)
    b = loaded.search(test.texts, test.images, 5)
    assert torch.equal(a.indices, b.indices)
    assert Selection.from_dict(guarded.selection_.to_dict()) == guarded.selection_


def test_a_corpus_without_culture_labels_fits_and_skips_culture_stages(small_world):
    calibration, test = small_world
    bare = calibration.with_labels(culture=np.array([""] * len(calibration), dtype=object))
    assert not bare.images.has_label("culture")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fair = xcm_debias.recommended(ExactRetriever(), **SMALL_OPTIONS).fit(bare)
    notes = " ".join(fair.selection_.notes)
    assert "no culture labels" in notes and "GB" in notes
    assert all(
        s["class"] != "GroupBalance" for s in fair.selection_.config["scoring"].get("t2i", [])
    )
    ranking = fair.search(test.texts, test.images.with_labels(culture=[""] * len(test.images)), 3)
    assert ranking.indices.shape == (len(test.texts), 3)
    assert torch.isfinite(ranking.scores).all()


def test_recommended_keeps_its_plain_call_and_validates_the_guard_arguments():
    fair = xcm_debias.recommended(ExactRetriever())
    assert isinstance(fair, Debiased) and fair.guard is not None
    assert fair.guard.max_recall_loss == 0.01
    with pytest.raises(
        ValueError, match=r"max_recall_loss: expected a number in \[0, 1\], got 1.5"
    ):
        xcm_debias.recommended(ExactRetriever(), max_recall_loss=1.5)
    with pytest.raises(ValueError, match="z: expected a finite number >= 0, got -1"):
        RecallGuard(z=-1)
    with pytest.raises(ValueError, match="n_folds"):
        RecallGuard(n_folds=1)
    with pytest.raises(ValueError, match=r"i2t\['x'\]\[0\]"):
        RecallGuard(i2t={"x": [{"params": {}}]})
    with pytest.raises(TypeError, match="guard: expected a recall guard"):
        Debiased(ExactRetriever(), guard=object())
    assert math.isclose(RecallGuard().z, 1.0)


def test_too_few_calibration_items_leave_only_embedding_level_candidates():
    calibration, _ = world_calibration_test(seed=0, n_items=60)  # 12 calibration items
    options = {k: v for k, v in SMALL_OPTIONS.items() if k != "min_items_for_scoring"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        selection = RecallGuard(**options).select(ExactRetriever(), calibration, 5)
    assert "12 calibration items (< min_items_for_scoring = 30)" in " ".join(selection.notes)
    scored = {c.name.split(": ")[1] for c in selection.candidates if " | " in c.name}
    assert scored == {"none"}
    assert selection.config["scoring"] == {}
