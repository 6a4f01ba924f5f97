"""Out-of-fold outcomes and their pooled metrics, against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xcm_debias import EmbeddingSet, ExactRetriever
from xcm_debias.calibration.evaluation import (
    Outcomes,
    bias,
    fold_outcomes,
    named_culture_loss,
    pooled_metrics,
)


def _t2i_outcomes() -> Outcomes:
    language = np.array(["de", "de", "fr", "fr"])
    return Outcomes(
        "t2i",
        hit=np.array([True, False, True, True]),
        group=language,
        own=np.array([True, True, False, False]),
        chance=np.array([0.5, 0.5, 0.25, 0.25]),
        query_language=language,
    )


def test_t2i_pooled_metrics_match_hand_computed_values():
    m = pooled_metrics(_t2i_outcomes())
    assert m["t2i/recall@1"] == pytest.approx(0.75)
    assert m["t2i/recall@1/lang=de"] == pytest.approx(0.5)
    assert m["t2i/recall@1/lang=fr"] == pytest.approx(1.0)
    # de: own 1.0 − chance 0.5 = +0.5; fr: 0.0 − 0.25 = −0.25
    assert m["t2i/own_culture_excess@1"] == pytest.approx(0.125)
    assert m["t2i/own_culture_abs_excess@1"] == pytest.approx(0.375)
    assert bias(m, "t2i") == pytest.approx(0.375)


def _explicit(named: list[bool]) -> Outcomes:
    """Six queries; the last two name a culture (explicit), ``named`` their top-1 outcome."""
    language = np.array(["de", "de", "fr", "fr", "de", "fr"])
    return Outcomes(
        "t2i",
        hit=np.ones(6, dtype=bool),
        group=language,
        own=np.array([True, False, False, False, True, True]),
        chance=np.full(6, 0.25),
        query_language=language,
        named=np.array([False] * 4 + named),
        explicit=np.array([False] * 4 + [True, True]),
    )


def test_named_culture_is_pooled_on_explicit_queries_and_own_culture_on_implicit_ones():
    m = pooled_metrics(_explicit([True, False]))
    assert m["t2i/named_culture@1"] == pytest.approx(0.5)
    # implicit only: de own 0.5 − 0.25 = +0.25, fr 0 − 0.25 = −0.25 (explicit rows, own in
    # both, would have made de +0.42 and fr +0.08)
    assert m["t2i/own_culture_excess@1"] == pytest.approx(0.0)
    assert m["t2i/own_culture_abs_excess@1"] == pytest.approx(0.25)
    # paired loss against a base that found both named cultures: mean 0.5, SE of (0, 1) / √2
    loss, se = named_culture_loss(_explicit([True, True]), _explicit([True, False]))
    assert loss == pytest.approx(0.5) and se == pytest.approx(np.std([0, 1], ddof=1) / np.sqrt(2))
    assert named_culture_loss(_t2i_outcomes(), _t2i_outcomes()) is None  # no explicit queries
    pooled = Outcomes.concat([_explicit([True, True]), _explicit([False, False])])
    assert pooled_metrics(pooled)["t2i/named_culture@1"] == pytest.approx(0.5)


def _i2t(top_languages: list[str]) -> Outcomes:
    """Four image queries against a gallery of half English, a quarter German and French."""
    expected = {"de": np.full(4, 0.25), "en": np.full(4, 0.5), "fr": np.full(4, 0.25)}
    return Outcomes(
        "i2t",
        hit=np.ones(4, dtype=bool),
        group=np.full(4, "*"),
        top_language=np.array(top_languages),
        expected=expected,
    )


def test_i2t_language_tv_is_half_the_l1_gap_to_the_fold_gallery_mix():
    balanced = pooled_metrics(_i2t(["en", "en", "de", "fr"]))
    assert balanced["i2t/language_tv@1"] == pytest.approx(0.0)
    skewed = pooled_metrics(_i2t(["en", "en", "en", "de"]))
    # shares en 0.75, de 0.25, fr 0 against 0.5 / 0.25 / 0.25: ½(0.25 + 0 + 0.25)
    assert skewed["i2t/language_tv@1"] == pytest.approx(0.25)
    assert bias(skewed, "i2t") == pytest.approx(0.25)


def test_concat_pools_folds_and_weights_skew_by_queries():
    a = Outcomes("t2i", np.array([True]), np.array(["de"]), skews=[(1.0, 1)])
    b = Outcomes("t2i", np.array([False, False, True]), np.array(["de"] * 3), skews=[(3.0, 3)])
    pooled = Outcomes.concat([a, b])
    m = pooled_metrics(pooled)
    assert m["t2i/recall@1"] == pytest.approx(0.5)
    assert m["t2i/hubness_skew@10"] == pytest.approx((1.0 + 9.0) / 4)
    with pytest.raises(ValueError, match="at least one fold"):
        Outcomes.concat([])


def test_fold_outcomes_on_a_hand_built_fold():
    # two items; item "a" has a German caption, item "b" a French one; images of cultures de, fr
    images = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    texts = torch.tensor([[0.9, 0.1], [0.8, 0.2]])  # both closest to image 0 (item a, culture de)
    held = EmbeddingSet.concat(
        [
            EmbeddingSet(images, modality="image", item=["a", "b"], culture=["de", "fr"]),
            EmbeddingSet(texts, modality="text", item=["a", "b"], language=["de", "fr"]),
        ]
    )
    t2i = fold_outcomes(ExactRetriever(), held, "t2i")
    assert t2i.hit.tolist() == [True, False]
    assert t2i.own.tolist() == [True, False]  # the fr query's top-1 is the de image
    assert t2i.chance.tolist() == [1.0, 1.0]  # each query's one relevant image has its culture
    i2t = fold_outcomes(ExactRetriever(), held, "i2t")
    assert i2t.group.tolist() == ["de", "fr"]
    assert i2t.top_language.tolist() == ["de", "fr"]
    assert i2t.hit.tolist() == [True, True]
    with pytest.raises(ValueError, match="direction"):
        fold_outcomes(ExactRetriever(), held, "t2t")
    with pytest.raises(ValueError, match="image and text rows for i2t, got 0 and 2"):
        fold_outcomes(ExactRetriever(), held.texts, "i2t")
