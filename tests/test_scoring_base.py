from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import logsumexp
from scoring_fixtures import images, multilingual_corpus, texts

from xcm_debias import EmbeddingSet
from xcm_debias.processors import NotFittedError
from xcm_debias.scoring import (
    CSLS,
    DualInvertedSoftmax,
    ExposureShuffle,
    GroupBalance,
    InvertedSoftmax,
    QBNorm,
    ScoredRows,
    ScoreNormalizer,
    SinkhornNorm,
)


def all_scorers() -> list[ScoreNormalizer]:
    return [
        InvertedSoftmax(beta=15.0),
        QBNorm(beta=15.0, k=2),
        DualInvertedSoftmax(beta_query=10.0, beta_gallery=5.0),
        DualInvertedSoftmax(dynamic=True, k=2),
        CSLS(k=3),
        SinkhornNorm(beta=10.0, n_iters=3),
        GroupBalance(temperature=0.05),
        ExposureShuffle(width=0.2, gallery_group="culture"),
    ]


def labelled(seed: int) -> tuple[EmbeddingSet, EmbeddingSet, EmbeddingSet, EmbeddingSet]:
    corpus = multilingual_corpus(n_items=16, dim=8, seed=seed).normalized()
    calibration, test = corpus.split_items(test_size=0.5, seed=seed)
    return calibration.texts, calibration.images, test.texts, test.images


@pytest.mark.parametrize("scorer", all_scorers(), ids=lambda s: type(s).__name__)
def test_save_load_round_trip_gives_identical_scores(scorer, tmp_path):
    qbank, gbank, queries, gallery = labelled(seed=0)
    scorer.fit(qbank, gbank)
    loaded = ScoreNormalizer.load(scorer.save(tmp_path / "scorer.safetensors"))
    assert type(loaded) is type(scorer) and loaded.get_params() == scorer.get_params()
    assert torch.equal(loaded.scores(queries, gallery), scorer.scores(queries, gallery))


@pytest.mark.parametrize("scorer", all_scorers(), ids=lambda s: type(s).__name__)
def test_use_before_fit_raises_not_fitted(scorer):
    with pytest.raises(NotFittedError, match="not fitted"):
        scorer.gallery_columns(images(4, 8, 0))


@pytest.mark.parametrize("scorer", all_scorers(), ids=lambda s: type(s).__name__)
def test_fit_and_apply_never_modify_inputs(scorer):
    qbank, gbank, queries, gallery = labelled(seed=1)
    before = [x.embeddings.clone() for x in (qbank, gbank, queries, gallery)]
    scorer.fit(qbank, gbank)
    scorer.scores(queries, gallery)
    for x, saved in zip((qbank, gbank, queries, gallery), before, strict=True):
        assert torch.equal(x.embeddings, saved)


def test_dimension_mismatch_is_named():
    scorer = InvertedSoftmax().fit(texts(5, 4, 0), images(5, 4, 1))
    with pytest.raises(ValueError, match="gallery: expected dimension 4"):
        scorer.gallery_columns(images(5, 6, 2))
    with pytest.raises(ValueError, match="gallery_bank: expected dimension 4"):
        InvertedSoftmax().fit(texts(5, 4, 0), images(5, 6, 1))


def test_from_config_rejects_unknown_class():
    with pytest.raises(ValueError, match="unknown score normaliser class 'Nope'"):
        ScoreNormalizer.from_config({"class": "Nope", "params": {}})


def test_a_later_stage_sees_earlier_offsets_in_cross_modal_scores():
    # InvertedSoftmax fitted on banks that carry CSLS columns: Z(g) sums exp(β·score_csls)
    qbank, gbank, queries, gallery = labelled(seed=2)
    first = CSLS(k=2).fit(qbank, gbank)
    q_rows = ScoredRows.of(qbank, "q")
    g_rows = ScoredRows.of(gbank, "g")
    q_rows = q_rows.extended(first.query_columns(q_rows, first.gallery_columns(g_rows)))
    g_rows = g_rows.extended(first.gallery_columns(g_rows).columns)
    second = InvertedSoftmax(beta=7.0).fit(q_rows, g_rows)
    test_g = ScoredRows.of(gallery, "gallery")
    test_g = test_g.extended(first.gallery_columns(test_g).columns)
    bank_csls = first.scores(qbank, gallery).double().numpy()
    expected = -logsumexp(7.0 * bank_csls, axis=0) / 7.0
    got = second.gallery_columns(test_g).columns[:, 0].double().numpy()
    assert np.allclose(got, expected, atol=1e-5)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    beta=st.floats(0.5, 100.0),
    index=st.integers(0, 6),
)
def test_offsets_are_finite(seed, beta, index):
    qbank, gbank, queries, gallery = labelled(seed=seed % 7)
    scorer = [
        InvertedSoftmax(beta=beta),
        QBNorm(beta=beta),
        DualInvertedSoftmax(beta, beta, dynamic=True),
        CSLS(k=2),
        SinkhornNorm(beta=beta),
        GroupBalance(temperature=1.0 / beta),
        DualInvertedSoftmax(beta, 1.0),
    ][index]
    scorer.fit(qbank, gbank)
    assert torch.isfinite(scorer.gallery_columns(gallery).columns).all()
    assert torch.isfinite(scorer.scores(queries, gallery)).all()


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), index=st.integers(0, len(all_scorers()) - 1))
def test_rankings_are_invariant_to_gallery_permutation(seed, index):
    qbank, gbank, queries, gallery = labelled(seed=seed % 5)
    scorer = all_scorers()[index].fit(qbank, gbank)
    perm = np.random.default_rng(seed).permutation(len(gallery))
    scores = scorer.scores(queries, gallery)
    permuted = scorer.scores(queries, gallery[perm])
    assert torch.allclose(permuted, scores[:, perm], atol=1e-5)


def test_scored_rows_rejects_misaligned_offsets():
    with pytest.raises(ValueError, match="offsets: expected shape"):
        ScoredRows(texts(3, 4, 0), torch.zeros(2, 1))
