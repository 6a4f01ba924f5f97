"""Debiased without search-time labels: inferred languages and cultures, soft-label offsets,
unseen groups and a corpus without cultures."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_label_models import LANGS, corpus

from xcm_debias import Debiased, ExactRetriever
from xcm_debias.configs import build
from xcm_debias.processors import LanguageAlignment
from xcm_debias.scoring import ExposureShuffle, GroupBalance
from xcm_debias.soft_labels import UnseenGroupWarning, group_codes, strip_labels, with_inferred


def fitted() -> Debiased:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build("world_tuned").fit(corpus(strength=12.0))


FAIR = fitted()
TEST = corpus(strength=12.0, seed=1)  # languages and cultures identified without error


def test_label_free_search_equals_labelled_search_when_inference_is_right() -> None:
    """Well-separated groups: inferred labels are the true ones (posteriors within float
    rounding of one-hot), so rankings and scores match."""
    summary = FAIR.label_models_.summary()
    assert summary["language"]["accuracy"] == 1.0 and summary["culture"]["accuracy"] == 1.0
    for queries, gallery in ((TEST.texts, TEST.images), (TEST.images, TEST.texts)):
        labelled = FAIR.search(queries, gallery, 5)
        free = FAIR.search(strip_labels(queries), strip_labels(gallery), 5)
        assert torch.equal(free.indices, labelled.indices)
        torch.testing.assert_close(free.scores, labelled.scores, rtol=1e-4, atol=1e-5)
        targets = torch.arange(len(queries)) % len(gallery)
        assert torch.equal(
            FAIR.rank_of(strip_labels(queries), strip_labels(gallery), targets),
            FAIR.rank_of(queries, gallery, targets),
        )


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    language_mask=st.lists(st.booleans(), min_size=90, max_size=90),
    culture_mask=st.lists(st.booleans(), min_size=30, max_size=30),
    k=st.integers(1, 30),
)
def test_random_missing_labels_never_raise_and_scores_are_finite(
    language_mask: list[bool], culture_mask: list[bool], k: int
) -> None:
    texts, images = TEST.texts, TEST.images
    texts = texts.with_labels(language=np.where(language_mask, "", texts.language))
    images = images.with_labels(culture=np.where(culture_mask, "", images.culture))
    for queries, gallery in ((texts, images), (images, texts)):
        ranking = FAIR.search(queries, gallery, k)
        assert ranking.indices.shape == (len(queries), min(k, len(gallery)))
        assert torch.isfinite(ranking.scores).all()
        ranks = FAIR.rank_of(queries, gallery, torch.zeros(len(queries), dtype=torch.int64))
        assert ((ranks >= 1) & (ranks <= len(gallery))).all()


def test_corpus_without_culture_fits_and_searches() -> None:
    data = strip_labels(corpus(), ("culture",))
    with pytest.warns(UserWarning, match="GroupBalance skipped: no 'culture' label"):
        fair = build("world_tuned").fit(data)
    assert "skipped" in fair.scorers_["t2i"][0].fitted_meta
    assert set(fair.label_models_.summary()) == {"language"}
    test = strip_labels(TEST)
    ranking = fair.search(test.texts, test.images, 3)
    assert torch.isfinite(ranking.scores).all()
    # the skipped stage leaves text→image to the alignment alone
    plain = Debiased(ExactRetriever(), fair.processors).fit(data)
    assert torch.equal(ranking.indices, plain.search(test.texts, test.images, 3).indices)


def test_unseen_language_gets_the_identity_with_a_warning() -> None:
    """A language absent from calibration passes through every stage unchanged (a warning per
    stage that meets it) instead of raising."""
    texts = TEST.texts
    language = texts.language.copy()
    language[:10] = "xx"
    odd = texts.with_labels(language=language)
    with pytest.warns(UnseenGroupWarning, match=r"\['xx'\] not seen at fit"):
        moved = FAIR.transform(odd)
        ranking = FAIR.search(odd, TEST.images, 5)
        reverse = FAIR.search(TEST.images, odd, 5)
    unit = torch.nn.functional.normalize(texts.embeddings[:10].float(), dim=1)
    torch.testing.assert_close(moved.embeddings[:10], unit)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        FAIR.search(odd, TEST.images, 5)
    counted = [w.message for w in caught if issubclass(w.category, UnseenGroupWarning)]
    # LanguageAlignment and text→image GroupBalance each meet the 10 rows once
    assert sorted((m.who.split("(")[0], m.values, m.rows) for m in counted) == [
        ("GroupBalance", ["xx"], 10),
        ("LanguageAlignment", ["xx"], 10),
    ]
    assert torch.isfinite(ranking.scores).all() and torch.isfinite(reverse.scores).all()


def test_soft_gallery_labels_give_the_posterior_weighted_offset() -> None:
    """GroupBalance on a gallery with soft cultures: score = q·g − Σ_b p_b(g) c[A(q), b]."""
    texts, images = corpus().texts.normalized(), corpus().images.normalized()
    scorer = GroupBalance(temperature=0.05).fit(texts, images)
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(3), size=len(images)).astype(np.float32)
    p[:5] = 0.0  # no probability on any fitted culture: no offset
    everywhere = np.ones(len(images), bool)
    soft = with_inferred(
        strip_labels(images), "culture", everywhere, LANGS, p, images.culture, everywhere
    )
    scores = scorer.scores(texts, soft).double().numpy()
    c = scorer.offsets.double().numpy()
    a = np.searchsorted(scorer.fitted_meta["query_groups"], texts.language)
    expected = texts.embeddings.double().numpy() @ images.embeddings.double().numpy().T
    expected -= c[a] @ p.astype(np.float64).T
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-5)


def test_soft_caption_languages_weight_the_exposure_bonus() -> None:
    """ExposureShuffle on captions with soft languages: bonus = ε Σ_b p_b(g) κ_{q,b}."""
    texts, images = corpus().texts.normalized(), corpus().images.normalized()
    scorer = ExposureShuffle(width=0.1).fit(images, texts)
    p = np.random.default_rng(1).dirichlet(np.ones(3), size=len(texts)).astype(np.float32)
    everywhere = np.ones(len(texts), bool)
    soft = with_inferred(
        strip_labels(texts), "language", everywhere, LANGS, p, texts.language, everywhere
    )
    hard = scorer.gallery_columns(texts).columns.numpy()
    u = scorer.query_columns(images, scorer.gallery_columns(texts))
    scores = scorer.scores(images, soft).double().numpy()
    base = images.embeddings.double().numpy() @ texts.embeddings.double().numpy().T
    np.testing.assert_allclose(scores - base, u.double().numpy() @ p.T, rtol=1e-5, atol=1e-6)
    assert hard.sum(axis=1).tolist() == [1.0] * len(texts)


def test_per_group_maps_take_the_confident_argmax_or_the_identity() -> None:
    texts = corpus().texts
    align = LanguageAlignment().fit(texts)
    p = np.zeros((len(texts), 3), dtype=np.float32)
    p[:, 1] = 0.7  # every row most probably "en"...
    p[:, 2] = 0.3
    confident = np.arange(len(texts)) % 3 != 0  # ...but every third row below the threshold
    soft = with_inferred(
        strip_labels(texts),
        "language",
        np.ones(len(texts), bool),
        LANGS,
        p,
        texts.language,
        confident,
    )
    codes = group_codes(soft, "language", list(LANGS), "test", "text")
    expected = np.where(np.arange(len(texts)) % 3 == 0, -1, 1)
    np.testing.assert_array_equal(codes, expected)
    out = align.transform(soft).embeddings
    unit = torch.nn.functional.normalize(texts.embeddings.float(), dim=1)
    torch.testing.assert_close(out[::3], unit[::3])
    torch.testing.assert_close(out[1::3], unit[1::3] @ align.maps[1], rtol=1e-5, atol=1e-6)


def test_label_models_are_saved_and_loaded(tmp_path) -> None:
    path = FAIR.save(tmp_path / "fair.safetensors")
    again = Debiased.load(path)
    assert again.label_models_.summary() == FAIR.label_models_.summary()
    bare = strip_labels(TEST)
    first = FAIR.search(bare.texts, bare.images, 5)
    second = again.search(bare.texts, bare.images, 5)
    assert torch.equal(first.indices, second.indices)
    torch.testing.assert_close(first.scores, second.scores)
