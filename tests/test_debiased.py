from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import logsumexp
from scoring_fixtures import (
    activation_set,
    multilingual_corpus,
    rankings,
    raw_top1,
    sims,
)

import xcm_debias.configs as configs
from xcm_debias import EmbeddingSet, ExactRetriever
from xcm_debias.calibration.labels import CalibrationLabelWarning
from xcm_debias.debiased import Debiased
from xcm_debias.faiss_retriever import FaissRetriever
from xcm_debias.processors import NotFittedError, PostProcessor
from xcm_debias.processors.base import item_folds
from xcm_debias.scoring import (
    CSLS,
    DualInvertedSoftmax,
    GroupBalance,
    InvertedSoftmax,
    QBNorm,
    ScoredRows,
    SinkhornNorm,
)

DIRECTIONS = {"t2i": ("texts", "images"), "i2t": ("images", "texts")}


class ShiftTexts(PostProcessor):
    """Test processor: text rows move by ``mean(images) − mean(texts)`` (a modality-gap shift)."""

    def __init__(self) -> None:
        super().__init__()

    def _fit(self, calibration: EmbeddingSet) -> None:
        x = calibration.embeddings.float()
        texts = torch.from_numpy(calibration.modality == "text")
        self.set_state("shift", x[~texts].mean(dim=0) - x[texts].mean(dim=0))

    def forward(self, x: torch.Tensor, data: EmbeddingSet) -> torch.Tensor:
        return torch.where(torch.from_numpy(data.modality == "text")[:, None], x + self.shift, x)


def split(seed: int = 0, n_items: int = 24) -> tuple[EmbeddingSet, EmbeddingSet]:
    corpus = multilingual_corpus(n_items=n_items, dim=12, seed=seed)
    return corpus.split_items(test_size=0.5, seed=seed)


def sides(data: EmbeddingSet, direction: str) -> tuple[EmbeddingSet, EmbeddingSet]:
    q, g = DIRECTIONS[direction]
    return getattr(data, q), getattr(data, g)


def dense_reference(name: str, calibration: EmbeddingSet, test: EmbeddingSet, direction: str):
    """Score units of the paper formulas on full matrices (normalised rows)."""
    qbank, gbank = (x.normalized() for x in sides(calibration, direction))
    queries, gallery = (x.normalized() for x in sides(test, direction))
    s, s_bank = sims(queries, gallery), sims(qbank, gallery)
    if name == "inverted_softmax":
        return s - logsumexp(20.0 * s_bank, axis=0)[None, :] / 20.0
    if name == "qb_norm":
        gate = activation_set(s_bank, 2)[raw_top1(s)]
        return s - gate[:, None] * logsumexp(20.0 * s_bank, axis=0)[None, :] / 20.0
    if name == "dbnorm_dynamic":
        s_gbank = sims(gbank, gallery)
        top1 = raw_top1(s)
        gate_q = activation_set(s_bank, 1)[top1][:, None]
        gate_g = activation_set(s_gbank, 1)[top1][:, None]
        log_zq = logsumexp(10.0 * s_bank, axis=0)[None, :]
        log_zg = logsumexp(30.0 * s_gbank, axis=0)[None, :]
        return s - (gate_q * log_zq + gate_g * log_zg) / 40.0
    if name == "csls":
        r_g = np.sort(s_bank, axis=0)[-3:, :].mean(axis=0)
        r_q = np.sort(sims(queries, gbank), axis=1)[:, -3:].mean(axis=1)
        return s - r_g[None, :] / 2 - r_q[:, None] / 2
    raise AssertionError(name)


SCORERS = {
    "inverted_softmax": lambda: InvertedSoftmax(beta=20.0),
    "qb_norm": lambda: QBNorm(beta=20.0, k=2),
    "dbnorm_dynamic": lambda: DualInvertedSoftmax(10.0, 30.0, dynamic=True, k=1),
    "csls": lambda: CSLS(k=3),
}
RETRIEVERS = {
    "exact": lambda: ExactRetriever(block_size=7),
    "exact_raw": lambda: ExactRetriever(normalize=False),
    "faiss_flat": lambda: FaissRetriever("flat"),
}


def test_without_stages_it_equals_the_wrapped_retriever():
    calibration, test = split()
    base = ExactRetriever()
    fair = Debiased(base).fit(calibration)
    for direction in DIRECTIONS:
        queries, gallery = sides(test, direction)
        ours, theirs = fair.search(queries, gallery, 5), base.search(queries, gallery, 5)
        assert torch.equal(ours.indices, theirs.indices)
        assert torch.equal(ours.scores, theirs.scores)
        targets = torch.arange(len(queries)) % len(gallery)
        assert torch.equal(
            fair.rank_of(queries, gallery, targets), base.rank_of(queries, gallery, targets)
        )


@pytest.mark.parametrize("retriever", sorted(RETRIEVERS))
@pytest.mark.parametrize("name", sorted(SCORERS))
@pytest.mark.parametrize("direction", ["t2i", "i2t"])
def test_ranking_equals_the_dense_formula_end_to_end(name, retriever, direction):
    calibration, test = split(seed=1)
    fair = Debiased(RETRIEVERS[retriever](), scoring=SCORERS[name]()).fit(calibration)
    queries, gallery = sides(test, direction)
    dense = dense_reference(name, calibration, test, direction)
    ranking = fair.search(queries, gallery, len(gallery))
    assert np.array_equal(ranking.indices.numpy(), rankings(dense))
    expected = np.take_along_axis(dense, ranking.indices.numpy(), axis=1)
    assert np.allclose(ranking.scores.numpy(), expected, atol=5e-5)


@pytest.mark.parametrize("name", sorted(SCORERS))
def test_rank_of_agrees_with_search(name):
    calibration, test = split(seed=2)
    fair = Debiased(ExactRetriever(), scoring=[SCORERS[name](), GroupBalance()]).fit(calibration)
    for direction in DIRECTIONS:
        queries, gallery = sides(test, direction)
        order = fair.search(queries, gallery, len(gallery)).indices
        for position in (0, 3, len(gallery) - 1):
            ranks = fair.rank_of(queries, gallery, order[:, position])
            assert torch.equal(ranks, torch.full((len(queries),), position + 1))


def test_rank_of_without_retriever_rank_of_falls_back_to_search():
    class SearchOnly:
        def __init__(self) -> None:
            self.inner = ExactRetriever()

        def search(self, queries, gallery, k):
            return self.inner.search(queries, gallery, k)

    calibration, test = split(seed=3)
    fair = Debiased(SearchOnly(), scoring=QBNorm()).fit(calibration)
    reference = Debiased(ExactRetriever(), scoring=QBNorm()).fit(calibration)
    targets = torch.arange(len(test.texts)) % len(test.images)
    assert torch.equal(
        fair.rank_of(test.texts, test.images, targets),
        reference.rank_of(test.texts, test.images, targets),
    )


def test_processors_then_scores_equal_the_manual_pipeline():
    calibration, test = split(seed=4)
    fair = Debiased(ExactRetriever(), ShiftTexts(), scoring=InvertedSoftmax(beta=10.0))
    fair.fit(calibration)
    shift = ShiftTexts().fit(calibration)
    calibration_p, test_p = shift.transform(calibration), shift.transform(test)
    manual = InvertedSoftmax(beta=10.0).fit(
        calibration_p.texts.normalized(), calibration_p.images.normalized()
    )
    dense = manual.scores(test_p.texts.normalized(), test_p.images.normalized())
    ranking = fair.search(test.texts, test.images, 4)
    assert torch.equal(ranking.indices, torch.from_numpy(rankings(dense)[:, :4]))
    assert torch.allclose(ranking.scores, torch.gather(dense, 1, ranking.indices), atol=1e-5)


def test_save_load_gives_an_identical_pipeline(tmp_path):
    calibration, test = split(seed=5)
    scoring = {"t2i": [DualInvertedSoftmax(dynamic=True), GroupBalance()], "i2t": [CSLS(k=2)]}
    fair = Debiased(ExactRetriever(), ShiftTexts(), scoring=scoring, cross_fit=2).fit(calibration)
    loaded = Debiased.load(fair.save(tmp_path / "pipeline.safetensors"))
    assert loaded.cross_fit == 2 and sorted(loaded.scorers_) == ["i2t", "t2i"]
    for direction in DIRECTIONS:
        queries, gallery = sides(test, direction)
        a, b = fair.search(queries, gallery, 6), loaded.search(queries, gallery, 6)
        assert torch.equal(a.indices, b.indices) and torch.equal(a.scores, b.scores)


def test_use_before_fit_raises_not_fitted(tmp_path):
    _, test = split(seed=6)
    fair = Debiased(ExactRetriever(), scoring=InvertedSoftmax())
    with pytest.raises(NotFittedError, match="call fit"):
        fair.search(test.texts, test.images, 3)
    with pytest.raises(NotFittedError, match="call fit"):
        fair.rank_of(test.texts, test.images, torch.zeros(len(test.texts), dtype=torch.int64))
    with pytest.raises(NotFittedError, match="call fit"):
        fair.save(tmp_path / "x.safetensors")


def test_labels_missing_at_fit_are_inferred_unless_absent_everywhere():
    """Some calibration captions without a language: inferred, with a warning counting them
    (tests/test_calibration_missing_labels.py). None with one: the group stages are skipped (a
    warning). Search-time rows without labels get them inferred
    (tests/test_label_free_search.py)."""
    calibration, _ = split(seed=7)
    texts = calibration.texts
    language = texts.language.copy()
    language[::2] = ""
    partial = EmbeddingSet.concat([calibration.images, texts.with_labels(language=language)])
    with pytest.warns(CalibrationLabelWarning, match="18 of 36 calibration text rows"):
        Debiased(ExactRetriever(), scoring=GroupBalance()).fit(partial)
    none = EmbeddingSet.concat([calibration.images, texts.with_labels(language=[""] * len(texts))])
    with pytest.warns(UserWarning, match="GroupBalance skipped: no 'language' label"):
        fair = Debiased(ExactRetriever(), scoring=GroupBalance()).fit(none)
    assert all("skipped" in s[0].fitted_meta for s in fair.scorers_.values())
    assert fair.label_models_ is None  # no stage reads a label
    with pytest.raises(ValueError, match="need image rows"):
        Debiased(ExactRetriever(), scoring=InvertedSoftmax()).fit(calibration.texts)


def test_inputs_are_never_modified():
    calibration, test = split(seed=8)
    saved = [x.embeddings.clone() for x in (calibration, test)]
    fair = Debiased(ExactRetriever(), ShiftTexts(), scoring=[QBNorm(), GroupBalance()], cross_fit=2)
    fair.fit(calibration)
    fair.search(test.texts, test.images, 3)
    fair.rank_of(test.images, test.texts, torch.zeros(len(test.images), dtype=torch.int64))
    assert torch.equal(calibration.embeddings, saved[0])
    assert torch.equal(test.embeddings, saved[1])


def test_gallery_is_transformed_once_and_refreshed_when_its_content_changes():
    calibration, test = split(seed=9)
    processor = ShiftTexts()
    fair = Debiased(ExactRetriever(), processor, scoring=InvertedSoftmax()).fit(calibration)
    calls = []
    original = processor.transform
    processor.transform = lambda data: calls.append(len(data)) or original(data)
    gallery = EmbeddingSet(
        test.images.embeddings.clone(),
        modality="image",
        item=test.images.item,
        culture=test.images.culture,
    )
    fair.search(test.texts, gallery, 3)
    fair.search(test.texts[:5], gallery, 3)
    assert calls == [len(gallery), len(test.texts), 5]
    gallery.embeddings.mul_(-1.0)  # the caller edits its own gallery in place
    changed = fair.search(test.texts, gallery, 3)
    fresh = Debiased(ExactRetriever(), ShiftTexts(), scoring=InvertedSoftmax()).fit(calibration)
    expected = fresh.search(test.texts, gallery, 3)
    assert torch.equal(changed.indices, expected.indices)


def test_cross_fit_fits_stages_on_all_rows_and_hands_on_out_of_fold_columns():
    calibration, _ = split(seed=10, n_items=30)
    fair = Debiased(
        ExactRetriever(),
        ShiftTexts(),
        scoring={"t2i": [InvertedSoftmax(beta=10.0), GroupBalance(temperature=0.1)]},
        cross_fit=3,
        seed=4,
    ).fit(calibration)
    # each stage is fitted on all the rows it receives
    plain = ShiftTexts().fit(calibration)
    assert torch.equal(fair.processors.shift, plain.shift)
    # manual out-of-fold pipeline
    items, inverse = np.unique(calibration.item, return_inverse=True)
    item_fold = np.empty(len(items), dtype=np.int64)
    item_fold[np.random.default_rng(4).permutation(len(items))] = np.arange(len(items)) % 3
    folds = item_fold[inverse]
    out = torch.empty(len(calibration), calibration.dim)
    for fold in range(3):
        held = folds == fold
        copy = ShiftTexts().fit(calibration[~held])
        out[torch.from_numpy(held)] = copy.transform(calibration[held]).embeddings
    processed = calibration.with_embeddings(out)
    texts_, images_ = processed.texts.normalized(), processed.images.normalized()
    t_fold, i_fold = folds[processed.modality == "text"], folds[processed.modality == "image"]
    first = InvertedSoftmax(beta=10.0).fit(texts_, images_)
    assert torch.equal(fair.scorers_["t2i"][0].query_bank, first.query_bank)
    image_columns = torch.empty(len(images_), 1)
    for fold in range(3):
        copy = InvertedSoftmax(beta=10.0).fit(texts_[t_fold != fold], images_[i_fold != fold])
        held = torch.from_numpy(i_fold == fold)
        image_columns[held] = copy.gallery_columns(images_).columns[held]
    second = GroupBalance(temperature=0.1).fit(
        ScoredRows.of(texts_, "q").extended(torch.ones(len(texts_), 1)),
        ScoredRows.of(images_, "g").extended(image_columns),
    )
    assert torch.allclose(fair.scorers_["t2i"][1].offsets, second.offsets, atol=1e-6)
    in_sample = Debiased(
        ExactRetriever(),
        ShiftTexts(),
        scoring={"t2i": [InvertedSoftmax(beta=10.0), GroupBalance(temperature=0.1)]},
    ).fit(calibration)
    assert not torch.allclose(in_sample.scorers_["t2i"][1].offsets, second.offsets, atol=1e-3)


def test_cross_fit_folds_are_capped_at_the_number_of_calibration_items():
    calibration, test = split(seed=12, n_items=6)  # 3 calibration items
    assert len(np.unique(calibration.item)) == 3

    def build(folds: int) -> Debiased:
        scoring = {"t2i": [InvertedSoftmax(beta=10.0), GroupBalance(temperature=0.1)]}
        return Debiased(ExactRetriever(), ShiftTexts(), scoring=scoring, cross_fit=folds, seed=5)

    capped, three = build(20).fit(calibration), build(3).fit(calibration)
    for a, b in zip(capped.scorers_["t2i"], three.scorers_["t2i"], strict=True):
        for (key, value), (_, other) in zip(
            a.state_dict().items(), b.state_dict().items(), strict=True
        ):
            assert torch.equal(value, other), key
    r20, r3 = capped.search(test.texts, test.images, 3), three.search(test.texts, test.images, 3)
    assert torch.equal(r20.indices, r3.indices) and torch.equal(r20.scores, r3.scores)
    # out-of-fold still: each item its own fold, so GroupBalance sees leave-one-item-out columns
    in_sample = build(0).fit(calibration)  # cross_fit=0: off
    assert not torch.allclose(
        in_sample.scorers_["t2i"][1].offsets, capped.scorers_["t2i"][1].offsets, atol=1e-3
    )
    # the fold assignment is by item: every item's rows in one fold, three folds of one item
    folds = item_folds(calibration, 20, 5, "Debiased(cross_fit=20)")
    per_item = {item: set(folds[calibration.item == item].tolist()) for item in calibration.item}
    assert all(len(f) == 1 for f in per_item.values())
    assert sorted(f.pop() for f in per_item.values()) == [0, 1, 2]
    # one calibration item leaves nothing to fit a fold's copy on
    one = calibration[calibration.item == calibration.item[0]]
    with pytest.raises(ValueError, match=r"Debiased\(cross_fit=20\).*at least 2 calibration"):
        build(20).fit(one)


def test_unfitted_directions_and_same_modality_searches_use_processors_only():
    calibration, test = split(seed=11)
    fair = Debiased(ExactRetriever(), ShiftTexts(), scoring={"i2t": [InvertedSoftmax()]})
    fair.fit(calibration)
    shifted = ShiftTexts().fit(calibration)
    base = ExactRetriever()
    for queries, gallery in ((test.texts, test.images), (test.texts, test.texts)):
        ours = fair.search(queries, gallery, 4)
        theirs = base.search(shifted.transform(queries), shifted.transform(gallery), 4)
        assert torch.equal(ours.indices, theirs.indices)
    assert sorted(fair.scorers_) == ["i2t"]


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 1_000))
def test_debiased_rankings_are_invariant_to_gallery_permutation(seed):
    calibration, test = split(seed=seed % 4)
    fair = Debiased(
        ExactRetriever(),
        scoring=[DualInvertedSoftmax(dynamic=True), SinkhornNorm(), GroupBalance()],
    ).fit(calibration)
    for direction in DIRECTIONS:
        queries, gallery = sides(test, direction)
        perm = np.random.default_rng(seed).permutation(len(gallery))
        a = fair.search(queries, gallery, len(gallery))
        b = fair.search(queries, gallery[perm], len(gallery))
        assert torch.isfinite(a.scores).all()
        assert torch.equal(torch.from_numpy(perm)[b.indices], a.indices)
        assert torch.allclose(a.scores, b.scores, atol=1e-5)


def test_constructor_validates_arguments():
    with pytest.raises(TypeError, match="retriever"):
        Debiased(object())
    with pytest.raises(TypeError, match="processors"):
        Debiased(ExactRetriever(), processors="leace")
    with pytest.raises(TypeError, match=r"scoring\[1\]"):
        Debiased(ExactRetriever(), scoring=[InvertedSoftmax(), "csls"])
    with pytest.raises(ValueError, match="direction keys"):
        Debiased(ExactRetriever(), scoring={"t2t": InvertedSoftmax()})
    with pytest.raises(ValueError, match="cross_fit"):
        Debiased(ExactRetriever(), cross_fit=1)


# ------------------------------------------------------------------ configs / recommended
def test_recommended_is_a_debiased_that_fits_searches_and_round_trips(tmp_path):
    calibration, test = split(seed=12, n_items=30)
    fair = configs.recommended()
    assert isinstance(fair, Debiased) and isinstance(fair.retriever, ExactRetriever)
    fair.fit(calibration)
    ranking = fair.search(test.images, test.texts, 3)
    loaded = Debiased.load(fair.save(tmp_path / "recommended.safetensors"))
    again = loaded.search(test.images, test.texts, 3)
    assert torch.equal(ranking.indices, again.indices)


def test_balance_config_evens_out_the_image_to_text_language_mix():
    # English captions sit closer to the images: raw i2t top-1 is mostly English
    corpus = multilingual_corpus(n_items=60, dim=12, seed=13)
    images = corpus.images
    image_of = {item: images.embeddings[i] for i, item in enumerate(images.item)}
    english = np.flatnonzero(corpus.language == "en")
    x = corpus.embeddings.clone()
    x[english] += torch.stack([image_of[item] for item in corpus.item[english]])
    corpus = corpus.with_embeddings(x)
    calibration, test = corpus.split_items(test_size=0.5, seed=0)
    raw = ExactRetriever().search(test.images, test.texts, 1).indices[:, 0]
    fair = configs.build("balance").fit(calibration)
    balanced = fair.search(test.images, test.texts, 1).indices[:, 0]
    share_raw = float((test.texts.language[raw] == "en").mean())
    share_balanced = float((test.texts.language[balanced] == "en").mean())
    assert share_raw > 0.6
    assert abs(share_balanced - 1 / 3) < abs(share_raw - 1 / 3) / 2


def test_config_registry_builds_every_named_config_and_validates_new_ones():
    assert "recommended" in configs.list_configs()
    for name in configs.list_configs():
        assert isinstance(configs.build(name), Debiased)
    with pytest.raises(ValueError, match="expected one of"):
        configs.build("nope")
    with pytest.raises(ValueError, match="unknown keys"):
        configs.build({"processor": []})
    with pytest.raises(ValueError, match="unknown score normaliser"):
        configs.register("bad", {"scoring": [{"class": "Nope"}]})
    assert "bad" not in configs.list_configs()
