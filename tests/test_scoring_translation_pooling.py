from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scoring_fixtures import multilingual_corpus, rankings, unit_rows

from xcm_debias import EmbeddingSet, ExactRetriever
from xcm_debias.debiased import Debiased
from xcm_debias.scoring import ExposureShuffle, InvertedSoftmax, ScoreNormalizer
from xcm_debias.scoring.translation_pooling import TranslationPooling
from xcm_debias.scoring.translation_sets import (
    MinedPairs,
    margin_for_precision,
    mutual_pairs,
    translation_sets,
)
from xcm_debias.shards import ShardedGallery
from xcm_debias.streamed_search import tile_wise

LANGS = ("en", "de", "sw")


def brute_pairs(x: np.ndarray, langs: np.ndarray, k: int) -> dict[tuple[int, int], float]:
    """Mutual nearest neighbours across each pair of languages and their ratio margin,
    written from Artetxe & Schwenk's formula on the full cosine matrix (float64)."""
    out = {}
    names = sorted(set(langs.tolist()) - {"", "und"})
    for a_i, a in enumerate(names):
        for b in names[a_i + 1 :]:
            ia, ib = np.flatnonzero(langs == a), np.flatnonzero(langs == b)
            s = x[ia] @ x[ib].T
            for r in range(len(ia)):
                c = int(np.argmax(s[r]))
                if int(np.argmax(s[:, c])) != r:
                    continue
                da = np.sort(s[r])[::-1][: min(k, len(ib))].mean()
                db = np.sort(s[:, c])[::-1][: min(k, len(ia))].mean()
                denom = (da + db) / 2  # not positive: margin 0 (documented)
                out[(int(ia[r]), int(ib[c]))] = s[r, c] / denom if denom > 0 else 0.0
    return out


def test_mutual_pairs_of_a_hand_made_gallery():
    # en rows 0, 1; de rows 2, 3 (0<->2 and 1<->3 are translations); sw row 4
    x = torch.tensor(
        [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.8, 0.6, 0.0], [0.0, 0.8, 0.6], [0.0, 0.0, 1.0]]
    )
    langs = np.array(["en", "en", "de", "de", "sw"])
    pairs = mutual_pairs(x, langs, k=2)
    got = {
        (int(a), int(b)): m for a, b, m in zip(pairs.first, pairs.second, pairs.margin, strict=True)
    }
    # de-en, de-sw, en-sw (sorted names); row 4 ties both en rows at 0 and takes row 0
    assert set(got) == {(2, 0), (3, 1), (3, 4), (0, 4)}
    # margin(2, 0): cos 0.8; row 2's en cosines 0.8, 0.6; row 0's de cosines 0.8, 0.0
    assert got[(2, 0)] == pytest.approx(0.8 / ((0.7 + 0.4) / 2))
    assert got[(3, 1)] == pytest.approx(0.8 / ((0.4 + 0.7) / 2))
    # one sw row: row 3's density is its one sw cosine (k capped at 1)
    assert got[(3, 4)] == pytest.approx(0.6 / ((0.6 + 0.3) / 2))
    assert got[(0, 4)] == 0.0  # a zero density: no margin


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(2, 30),
    n_langs=st.integers(1, 4),
    k=st.integers(1, 5),
    block=st.integers(1, 9),
    seed=st.integers(0, 1000),
)
def test_mutual_pairs_equal_the_brute_force_formula(n, n_langs, k, block, seed):
    x = unit_rows(n, 6, seed=seed)
    langs = np.array(["ab", "cd", "ef", "und"][:n_langs])[np.arange(n) % n_langs]
    pairs = mutual_pairs(x, langs, k=k, block_size=block)
    got = {
        (int(a), int(b)): m for a, b, m in zip(pairs.first, pairs.second, pairs.margin, strict=True)
    }
    expected = brute_pairs(x.double().numpy(), langs, k)
    assert set(got) == set(expected)
    for key, margin in expected.items():
        assert got[key] == pytest.approx(margin, rel=1e-5)


def test_sets_merge_by_margin_and_never_hold_two_rows_of_one_language():
    langs = np.array(["en", "de", "fr", "de"])
    # 0-1 (0.9) and 0-2 (0.8) merge; 2-3 (0.7) would bring a second German row: refused
    pairs = MinedPairs(np.array([0, 0, 2]), np.array([1, 2, 3]), np.array([0.9, 0.8, 0.7]))
    assert translation_sets(pairs, langs, 0.5).tolist() == [0, 0, 0, 3]
    # below the threshold nothing merges
    assert translation_sets(pairs, langs, 0.95).tolist() == [0, 1, 2, 3]
    # with 0-1 too weak, 2-3 comes before the refused join of {0,2} with 1? no: 0-2, 2-3 merge
    assert translation_sets(pairs, langs, 0.75).tolist() == [0, 0, 0, 3]


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 25),
    n_pairs=st.integers(0, 40),
    threshold=st.floats(0.0, 1.0),
    seed=st.integers(0, 1000),
)
def test_sets_are_language_disjoint_unions_of_accepted_pairs(n, n_pairs, threshold, seed):
    rng = np.random.default_rng(seed)
    langs = rng.choice(["a", "b", "c", "d"], size=n)
    first, second = rng.integers(0, n, n_pairs), rng.integers(0, n, n_pairs)
    margin = rng.random(n_pairs)
    sets = translation_sets(MinedPairs(first, second, margin), langs, threshold)
    for s in np.unique(sets):
        members = np.flatnonzero(sets == s)
        assert s == members.min()
        assert len(set(langs[members])) == len(members)
        if len(members) > 1:  # every member is linked to another through an accepted pair
            linked = {
                int(a) for a, b, m in zip(first, second, margin, strict=True) if m >= threshold
            } | {int(b) for a, b, m in zip(first, second, margin, strict=True) if m >= threshold}
            assert set(members.tolist()) <= linked


def test_margin_for_precision_takes_the_longest_prefix_that_is_precise_enough():
    pairs = MinedPairs(np.zeros(5, int), np.zeros(5, int), np.array([5.0, 4.0, 3.0, 2.0, 1.0]))
    correct = np.array([True, True, False, True, True])
    assert margin_for_precision(pairs, correct, 1.0) == 4.0
    assert margin_for_precision(pairs, correct, 0.75) == 1.0  # 4 of 5 = 0.8
    assert margin_for_precision(pairs, correct, 0.8) == 1.0
    assert margin_for_precision(pairs, np.array([False] * 5), 0.5) == float("inf")
    # a tie is accepted or refused as a whole
    tied = MinedPairs(np.zeros(3, int), np.zeros(3, int), np.array([2.0, 1.0, 1.0]))
    assert margin_for_precision(tied, np.array([True, True, False]), 0.9) == 2.0
    with pytest.raises(ValueError, match="correct: expected shape"):
        margin_for_precision(pairs, correct[:3], 0.9)


def corpus_split(seed: int = 0, n_items: int = 24):
    corpus = multilingual_corpus(n_items=n_items, dim=12, languages=LANGS, seed=seed, noise=0.2)
    return corpus.normalized().split_items(test_size=0.5, seed=seed)


def dense_pooled(
    queries: torch.Tensor, gallery: torch.Tensor, sets: np.ndarray, dim: int = 12
) -> np.ndarray:
    """``[q, u] · [normalised mean of the set's rows, mean of its columns]`` from the set ids,
    in float64 (the first ``dim`` columns are the embedding)."""
    g = gallery.double().numpy()
    pooled = np.stack([g[sets == s].mean(axis=0) for s in sets])
    pooled[:, :dim] /= np.linalg.norm(pooled[:, :dim], axis=1, keepdims=True)
    return queries.double().numpy() @ pooled.T


def test_scores_equal_the_pooled_formula_and_members_tie():
    calibration, test = corpus_split(seed=2)
    stage = TranslationPooling().fit(calibration.images, calibration.texts)
    threshold = stage.fitted_meta["min_margin"]
    assert threshold is not None and stage.fitted_meta["calibration_precision"] >= 0.99
    gallery = test.texts
    pairs = mutual_pairs(gallery.embeddings, gallery.language, 4)
    sets = translation_sets(pairs, gallery.language, threshold)
    assert len(np.unique(sets)) < len(sets)  # some translations are pooled
    scores = stage.scores(test.images, gallery).double().numpy()
    assert np.allclose(scores, dense_pooled(test.images.embeddings, gallery.embeddings, sets))
    for s in np.unique(sets):
        members = np.flatnonzero(sets == s)
        assert np.allclose(scores[:, members], scores[:, members[:1]], atol=1e-6)


def test_pooling_after_inverted_softmax_pools_its_offsets_too():
    calibration, test = corpus_split(seed=3)
    softmax = InvertedSoftmax(beta=10.0).fit(calibration.images, calibration.texts)
    stage = TranslationPooling(min_margin=1.0)
    from xcm_debias.scoring.base import ScoredRows

    def extended(rows: EmbeddingSet, kind: str) -> ScoredRows:
        base = ScoredRows.of(rows, kind)
        cols = softmax.gallery_columns(ScoredRows.of(test.texts, "gallery"))
        if kind == "gallery":
            return base.extended(cols.columns)
        return base.extended(softmax.query_columns(base, cols))

    q, g = extended(test.images, "queries"), extended(test.texts, "gallery")
    stage.fit(extended(calibration.images, "queries"), extended(calibration.texts, "gallery"))
    sets = translation_sets(mutual_pairs(g.plain, test.texts.language, 4), test.texts.language, 1.0)
    got = stage.scores(q, g).double().numpy()
    assert np.allclose(got, dense_pooled(q.augmented, g.augmented, sets), atol=1e-5)


def test_debiased_search_ranks_as_the_dense_formula_with_a_tie_splitting_shuffle():
    calibration, test = corpus_split(seed=4)
    fair = Debiased(
        ExactRetriever(block_size=5),
        scoring={"i2t": [TranslationPooling(), ExposureShuffle(width=1e-4)], "t2i": []},
    ).fit(calibration)
    ranking = fair.search(test.images, test.texts, len(test.texts))
    pool = fair.scorers_["i2t"][0]
    shuffle = fair.scorers_["i2t"][1]
    gallery = test.texts
    sets = translation_sets(
        mutual_pairs(gallery.embeddings, gallery.language, 4),
        gallery.language,
        pool.fitted_meta["min_margin"],
    )
    names = shuffle.fitted_meta["gallery_groups"]
    from xcm_debias.scoring.exposure_shuffle import row_uniforms

    keys = row_uniforms(test.images.embeddings, len(names), 0).numpy() ** (
        1 / shuffle.shares.double().numpy()
    )
    dense = dense_pooled(test.images.embeddings, gallery.embeddings, sets)
    dense = dense + shuffle.fitted_meta["width"] * keys[:, np.searchsorted(names, gallery.language)]
    # the same order up to float32 rounding (members of a set differ by width · key gaps only)
    got = np.take_along_axis(dense, ranking.indices.numpy(), axis=1)
    assert np.allclose(got, -np.sort(-dense, axis=1), atol=1e-6)
    agree = ranking.indices.numpy() == rankings(dense)
    assert agree.mean() > 0.95


def preferring_corpus(n_items: int, seed: int) -> EmbeddingSet:
    """Items with one image and one caption per language; the encoder resolves English best
    (least noise, no language direction), so plain image→text search puts English first."""
    g = torch.Generator().manual_seed(seed)
    dim = 16
    content = torch.randn(n_items, dim, generator=g)
    language_dir = {"en": 0.0, "de": 0.35, "sw": 0.6}
    parts = [
        EmbeddingSet(
            content + 0.1 * torch.randn(n_items, dim, generator=g),
            modality="image",
            item=[f"item{i}" for i in range(n_items)],
        )
    ]
    for lang, shift in language_dir.items():
        direction = torch.randn(dim, generator=g)
        rows = (
            content + shift * direction + (0.1 + shift / 2) * torch.randn(n_items, dim, generator=g)
        )
        parts.append(
            EmbeddingSet(
                rows,
                modality="text",
                item=[f"item{i}" for i in range(n_items)],
                language=[lang] * n_items,
            )
        )
    return EmbeddingSet.concat(parts).normalized()


def test_top1_languages_spread_over_the_translations_without_losing_recall():
    calibration, test = preferring_corpus(120, seed=5).split_items(test_size=0.5, seed=5)
    plain = ExactRetriever().search(test.images, test.texts, 1).indices[:, 0].numpy()
    fair = Debiased(
        ExactRetriever(), scoring={"i2t": [TranslationPooling(), ExposureShuffle(width=1e-4)]}
    ).fit(calibration)
    top1 = fair.search(test.images, test.texts, 1).indices[:, 0].numpy()
    item_i, item_t, lang = test.images.item, test.texts.item, test.texts.language
    assert (item_t[plain] == item_i).mean() == 1.0
    assert (item_t[top1] == item_i).mean() == 1.0
    assert (lang[plain] == "en").mean() > 0.9
    shares = np.array([(lang[top1] == name).mean() for name in ("de", "en", "sw")])
    assert np.abs(shares - 1 / 3).max() < 0.15  # each language near a third of top-1 slots


def test_a_stage_needing_the_whole_gallery_is_not_tile_wise(tmp_path):
    calibration, test = corpus_split(seed=6)
    assert TranslationPooling().needs_whole_gallery
    assert not InvertedSoftmax().needs_whole_gallery
    assert not tile_wise(ExactRetriever(), [TranslationPooling()])
    fair = Debiased(ExactRetriever(), scoring={"t2i": [TranslationPooling()]}, stream=True)
    with pytest.warns(UserWarning, match="TranslationPooling skipped"):  # images: no language
        fair.fit(calibration)
    path = tmp_path / "shard0.npy"
    np.save(path, test.images.embeddings.numpy().astype(np.float16))
    with pytest.raises(ValueError, match="TranslationPooling"):
        fair.search(test.texts, ShardedGallery([path]), 3)


def test_no_language_label_skips_the_stage_and_unreachable_precision_pools_nothing():
    calibration, test = corpus_split(seed=7)
    bare = EmbeddingSet(calibration.texts.embeddings, modality="text", item=calibration.texts.item)
    with pytest.warns(UserWarning, match="TranslationPooling skipped"):
        stage = TranslationPooling().fit(calibration.images, bare)
    assert stage.scores(test.images, test.texts).shape == (len(test.images), len(test.texts))
    assert torch.equal(stage.gallery_columns(test.texts).columns, torch.zeros(len(test.texts), 12))
    lonely = EmbeddingSet(
        calibration.texts.embeddings, modality="text", language=calibration.texts.language
    )  # every row its own item: no mined pair is a true translation
    none = TranslationPooling().fit(calibration.images, lonely)
    assert none.fitted_meta["min_margin"] is None
    assert not none.gallery_columns(test.texts).columns.any()


def test_a_gallery_without_languages_at_search_is_an_error_that_names_the_label():
    calibration, test = corpus_split(seed=10)
    stage = TranslationPooling().fit(calibration.images, calibration.texts)
    bare = EmbeddingSet(test.texts.embeddings, modality="text")
    with pytest.raises(ValueError, match="TranslationPooling: expected a 'language' label"):
        stage.gallery_columns(bare)


def test_fitted_state_saves_and_loads(tmp_path):
    calibration, test = corpus_split(seed=8)
    stage = TranslationPooling(precision=0.95, k=3).fit(calibration.images, calibration.texts)
    path = tmp_path / "pool.safetensors"
    stage.save(path)
    loaded = ScoreNormalizer.load(path)
    assert isinstance(loaded, TranslationPooling)
    assert json.dumps(loaded.fitted_meta) == json.dumps(stage.fitted_meta)
    assert torch.equal(
        loaded.scores(test.images, test.texts), stage.scores(test.images, test.texts)
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"precision": 1.5}, "precision: expected a number in \\(0, 1\\], got 1.5"),
        ({"precision": 0}, "precision"),
        ({"k": 0}, "k: expected an integer >= 1, got 0"),
        ({"min_margin": -1.0}, "min_margin"),
        ({"gallery_group": ""}, "gallery_group: expected a label name"),
    ],
)
def test_invalid_arguments_are_named(kwargs, message):
    calibration, _ = corpus_split(seed=9)
    with pytest.raises((ValueError, TypeError), match=message):
        TranslationPooling(**kwargs).fit(calibration.images, calibration.texts)


def test_mutual_pairs_validates_its_inputs():
    with pytest.raises(ValueError, match="languages: expected shape"):
        mutual_pairs(unit_rows(4, 3, 0), np.array(["a", "b"]))
    with pytest.raises(ValueError, match="k: expected an integer >= 1, got 0"):
        mutual_pairs(unit_rows(4, 3, 0), np.array(["a", "b", "a", "b"]), k=0)
