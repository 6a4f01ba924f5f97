from __future__ import annotations

import math

import pytest
import torch
from scoring_fixtures import multilingual_corpus

from xcm_debias import EmbeddingSet, ExactRetriever, Ranking
from xcm_debias.tune import Objective, grid_candidates, sweep, top1_metrics


def hand_corpus() -> EmbeddingSet:
    e = torch.eye(6)

    def unit(v: torch.Tensor) -> torch.Tensor:
        return v / v.norm()

    images = EmbeddingSet(
        e[:3], modality="image", item=["i0", "i1", "i2"], culture=["en", "de", "en"]
    )
    captions = torch.stack(
        [
            e[0],  # en i0 -> image 0 (hit)
            unit(e[0] + 0.5 * e[1]),  # en i1 -> image 0 (miss, tugged to en)
            e[2],  # en i2 -> image 2 (hit)
            unit(e[1] + 0.5 * e[0]),  # de i0 -> image 1 (miss, tugged to de)
            e[1],  # de i1 -> image 1 (hit)
            unit(e[2] + 0.1 * e[5]),  # de i2 -> image 2 (hit)
        ]
    )
    texts = EmbeddingSet(
        captions,
        modality="text",
        item=["i0", "i1", "i2"] * 2,
        language=["en"] * 3 + ["de"] * 3,
    )
    return EmbeddingSet.concat([images, texts])


def test_top1_metrics_hand_computed():
    m = top1_metrics(ExactRetriever(), hand_corpus())
    assert m["t2i/recall@1"] == pytest.approx(4 / 6)
    assert m["i2t/recall@1"] == pytest.approx(1.0)
    # i2t top-1 languages: en, de, en against a half/half gallery
    assert m["i2t/language_share@1/lang=en"] == pytest.approx(2 / 3)
    assert m["i2t/language_tv@1"] == pytest.approx(1 / 6)
    assert m["t2i/own_culture@1/lang=en"] == pytest.approx(1.0)
    assert m["t2i/own_culture_chance/lang=en"] == pytest.approx(2 / 3)
    assert m["t2i/own_culture@1/lang=de"] == pytest.approx(2 / 3)
    assert m["t2i/own_culture_chance/lang=de"] == pytest.approx(1 / 3)
    assert m["t2i/own_culture_excess@1"] == pytest.approx(1 / 3)
    assert m["t2i/own_culture_abs_excess@1"] == pytest.approx(1 / 3)


def test_top1_metrics_maps_languages_to_cultures():
    m = top1_metrics(ExactRetriever(), hand_corpus(), culture_of_language={"de": "en"})
    # de queries' top-1 cultures: de, de, en -> 1/3 in "en"; chance: 2 of 3 relevant images
    assert m["t2i/own_culture@1/lang=de"] == pytest.approx(1 / 3)
    assert m["t2i/own_culture_chance/lang=de"] == pytest.approx(2 / 3)


def test_objective_arithmetic_and_missing_keys():
    metrics = {
        "t2i/recall@1": 0.8,
        "i2t/recall@1": 0.6,
        "i2t/language_tv@1": 0.2,
        "t2i/own_culture_abs_excess@1": 0.1,
    }
    assert Objective()(metrics) == pytest.approx(0.7 - 0.2 - 0.1)
    assert Objective(tv_weight=2.0, culture_weight=0.5)(metrics) == pytest.approx(0.7 - 0.4 - 0.05)
    with pytest.raises(KeyError, match="i2t/language_tv@1"):
        Objective()({"t2i/recall@1": 1.0})


class NoisyRetriever:
    """Exact retrieval of queries blurred by ``noise``; records the rows it was fitted on."""

    fitted_on: list[set[str]] = []

    def __init__(self, noise: float, tag: int = 0) -> None:
        self.noise = noise
        self.inner = ExactRetriever()

    def fit(self, calibration: EmbeddingSet) -> NoisyRetriever:
        NoisyRetriever.fitted_on.append(set(calibration.id.tolist()))
        return self

    def search(self, queries: EmbeddingSet, gallery: EmbeddingSet, k: int) -> Ranking:
        g = torch.Generator().manual_seed(len(queries))
        blur = self.noise * torch.randn(len(queries), queries.dim, generator=g)
        return self.inner.search(queries.with_embeddings(queries.embeddings + blur), gallery, k)


def test_sweep_picks_the_best_candidate_on_an_inner_split_only():
    calibration = multilingual_corpus(n_items=30, dim=12, seed=1)
    NoisyRetriever.fitted_on = []
    result = sweep(NoisyRetriever, {"noise": [3.0, 0.0], "tag": [0, 1]}, calibration, seed=2)
    assert [row["params"] for row in result.table] == [
        {"noise": 3.0, "tag": 0},
        {"noise": 3.0, "tag": 1},
        {"noise": 0.0, "tag": 0},
        {"noise": 0.0, "tag": 1},
    ]
    assert result.best_params == {"noise": 0.0, "tag": 0}  # first of the tied best
    assert result.best_score == pytest.approx(result.table[2]["objective"])
    assert result.table[2]["objective"] > result.table[0]["objective"]
    inner, validation = calibration.split_items(test_size=0.5, seed=2)
    for seen in NoisyRetriever.fitted_on[:4]:
        assert seen == set(inner.id.tolist())
        assert not seen & set(validation.id.tolist())
    assert NoisyRetriever.fitted_on[4] == set(calibration.id.tolist())  # the refit
    assert isinstance(result.best_model, NoisyRetriever) and result.best_model.noise == 0.0


def test_sweep_records_failing_candidates_and_fails_when_all_do():
    calibration = multilingual_corpus(n_items=20, dim=8, seed=3)

    def build(noise: float) -> NoisyRetriever:
        if noise < 0:
            raise ValueError("noise: expected >= 0")
        return NoisyRetriever(noise)

    result = sweep(build, {"noise": [-1.0, 0.0]}, calibration, refit=False)
    assert result.table[0]["error"] == "noise: expected >= 0"
    assert result.table[0]["objective"] == -math.inf
    assert result.best_params == {"noise": 0.0} and result.best_model is None
    with pytest.raises(ValueError, match="every candidate failed"):
        sweep(build, [{"noise": -1.0}], calibration)


def test_grid_candidates_validates_the_grid():
    assert grid_candidates({"a": [1, 2], "b": ["x"]}) == [{"a": 1, "b": "x"}, {"a": 2, "b": "x"}]
    assert grid_candidates([{"a": 1}]) == [{"a": 1}]
    with pytest.raises(ValueError, match=r"grid\['a'\]"):
        grid_candidates({"a": []})
    with pytest.raises(ValueError, match="at least one candidate"):
        grid_candidates([])
