from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from xcm_debias import EmbeddingSet, ExactRetriever, Ranking
from xcm_debias.report import BiasReport
from xcm_debias.report.evaluate import evaluate_report

# ---------------------------------------------------------------- hand-made corpus
# Images: A = e0 (culture en), B = e1 (ja), C = e3 (de; no caption: a distractor).
# Captions: English ones point at their item; German ones are tugged to the German image C.
E = np.eye(4)
IMAGES = np.stack([E[0], E[1], E[3]])
TEXTS = np.stack([E[0] + 0.1 * E[2], E[1] + 0.1 * E[2], 0.3 * E[0] + E[3], 0.3 * E[1] + E[3]])


def hand_corpus(**extra: object) -> EmbeddingSet:
    image_extra = {name: values[0] for name, values in extra.items()}
    text_extra = {name: values[1] for name, values in extra.items()}
    return EmbeddingSet.concat(
        [
            EmbeddingSet(
                torch.tensor(IMAGES, dtype=torch.float32),
                modality="image",
                item=["A", "B", "C"],
                culture=["en", "ja", "de"],
                extra=image_extra,
            ),
            EmbeddingSet(
                torch.tensor(TEXTS, dtype=torch.float32),
                modality="text",
                item=["A", "B", "A", "B"],
                language=["en", "en", "de", "de"],
                extra=text_extra,
            ),
        ]
    )


MUST = [
    "t2i/recall@1",
    "t2i/recall@1/lang=en",
    "t2i/recall@1/lang=de",
    "i2t/recall@1",
    "t2i/recall@10",
    "i2t/recall@10",
    "t2i/recall@5",
    "i2t/recall@5",
    "t2i/own_culture@1/lang=en",
    "t2i/own_culture_chance/lang=de",
    "t2i/own_culture_excess@1",
    "i2t/language_share@1/lang=en",
    "i2t/language_tv@1",
    "t2i/mrv",
    "i2t/mrv",
    "t2i/hubness_skew@10",
    "i2t/hubness_skew@10",
    "modality_gap",
]


def test_every_contract_key_exists():
    report = BiasReport.evaluate(ExactRetriever(), hand_corpus())
    missing = [key for key in MUST if key not in report.metrics]
    assert not missing
    assert all(isinstance(v, float) for v in report.metrics.values())
    assert len(report.details["t2i/k_occurrence@10"]) == 3  # one count per image
    assert len(report.details["i2t/k_occurrence@10"]) == 4  # one per caption


def test_hand_corpus_retrieval_numbers():
    m = BiasReport.evaluate(ExactRetriever(), hand_corpus()).metrics
    # t2i: A-en -> A, B-en -> B (hits); A-de, B-de -> C (misses, the right image second)
    assert m["t2i/recall@1"] == 0.5
    assert (m["t2i/recall@1/lang=en"], m["t2i/recall@1/lang=de"]) == (1.0, 0.0)
    assert (m["t2i/recall@1/worst_lang"], m["t2i/recall@1/best_lang"]) == (0.0, 1.0)
    assert (m["t2i/recall@1/lang_gap"], m["t2i/recall@1/lang_std"]) == (1.0, 0.5)
    assert m["t2i/recall@5"] == m["t2i/recall@10"] == 1.0
    assert m["t2i/mrr"] == pytest.approx((1 + 1 + 0.5 + 0.5) / 4)
    assert m["t2i/map@10"] == pytest.approx(0.75)  # one relevant image: AP = 1 / rank
    # i2t: each captioned image puts its English caption first, its German one second
    assert m["i2t/recall@1"] == m["i2t/mrr"] == m["i2t/map@10"] == 1.0
    assert m["i2t/recall@1/culture=en"] == m["i2t/recall@1/culture=ja"] == 1.0
    assert "i2t/recall@1/culture=de" not in m  # image C has no caption: not a query


def test_hand_corpus_bias_numbers():
    m = BiasReport.evaluate(ExactRetriever(), hand_corpus()).metrics
    # prevalence: English takes every i2t top-1 against a half-English gallery
    assert m["i2t/language_share@1/lang=en"] == 1.0 and m["i2t/language_share@1/lang=de"] == 0.0
    assert m["i2t/gallery_language_share/lang=de"] == 0.5
    assert m["i2t/language_tv@1"] == pytest.approx(0.5)
    assert m["i2t/language_tv@10"] == pytest.approx(0.0)  # the top 4 hold every caption
    assert m["i2t/faithfulness_loss@1"] == 0.0
    # tugging: en queries land on en images at chance (0.5); de queries always on C (chance 0)
    assert m["t2i/own_culture@1/lang=en"] == 0.5 and m["t2i/own_culture_chance/lang=en"] == 0.5
    assert m["t2i/own_culture@1/lang=de"] == 1.0 and m["t2i/own_culture_chance/lang=de"] == 0.0
    assert m["t2i/own_culture_excess@1"] == pytest.approx(0.5)
    assert m["t2i/own_culture_hits@1/lang=en"] == 0.5 and math.isnan(
        m["t2i/own_culture_misses@1/lang=en"]
    )
    assert m["t2i/own_culture_misses@1/lang=de"] == 1.0 and math.isnan(
        m["t2i/own_culture_hits@1/lang=de"]
    )
    assert m["t2i/culture_share@1/lang=de/culture=de"] == 1.0
    assert m["t2i/culture_share@1/lang=en/culture=ja"] == 0.5
    assert m["t2i/culture_share@1/lang=en/culture=de"] == 0.0
    # consistency: each item ranks 1 in English and 2 in German (std 0.5); i2t is consistent
    assert (m["t2i/mrv"], m["t2i/mrv_var"]) == (0.5, 0.25)
    assert (m["i2t/mrv"], m["i2t/mrv_var"]) == (0.0, 0.0)
    # modality gap: centroids of the unit rows
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    gap = np.linalg.norm(unit(IMAGES).mean(0) - unit(TEXTS).mean(0))
    assert m["modality_gap"] == pytest.approx(gap, rel=1e-6)


def test_named_culture_on_explicit_queries_and_own_culture_on_implicit_ones():
    # B-en asks for "ja" (gets B, ja) and A-de asks for "de" (gets C, de): both named hits;
    # chance = share of the named culture among the item's images: B is ja (1), A is en (0)
    corpus = hand_corpus(named_culture=(["", "", ""], ["", "ja", "de", ""]))
    report = BiasReport.evaluate(ExactRetriever(), corpus)
    m = report.metrics
    assert m["t2i/named_culture@1"] == 1.0 and m["t2i/named_culture_chance"] == 0.5
    assert m["t2i/named_culture@1/lang=en"] == m["t2i/named_culture@1/lang=de"] == 1.0
    assert m["t2i/named_culture_chance/lang=en"] == 1.0
    assert m["t2i/named_culture_chance/lang=de"] == 0.0
    assert report.uncertainty["t2i/named_culture@1"] == 0.0  # every explicit query hits
    # own culture on the implicit queries only: A-en -> A (en, chance 1), B-de -> C (de, chance 0)
    assert m["t2i/own_culture@1/lang=en"] == 1.0 and m["t2i/own_culture_chance/lang=en"] == 1.0
    assert m["t2i/own_culture@1/lang=de"] == 1.0 and m["t2i/own_culture_chance/lang=de"] == 0.0
    assert m["t2i/own_culture_excess@1"] == pytest.approx(0.5)
    assert report.config["n_culture_explicit_queries"] == 2
    # a query asking for a culture that misses it counts 0: A-de asks for "en" (gets C, de)
    asked_en = hand_corpus(named_culture=(["", "", ""], ["", "", "en", ""]))
    m = BiasReport.evaluate(ExactRetriever(), asked_en).metrics
    assert m["t2i/named_culture@1/lang=de"] == 0.0 and m["t2i/named_culture_chance"] == 1.0
    # without explicit queries, no named-culture keys
    plain = BiasReport.evaluate(ExactRetriever(), hand_corpus(named_culture=([""] * 3, [""] * 4)))
    assert not [key for key in plain.metrics if "named_culture" in key]


def test_named_culture_column_is_checked():
    with pytest.raises(ValueError, match=r"named_culture.*expected '' or a culture.*\['fr'\]"):
        BiasReport.evaluate(ExactRetriever(), hand_corpus(named_culture=([""] * 3, ["fr"] * 4)))
    with pytest.raises(TypeError, match=r"named_culture.*expected strings"):
        BiasReport.evaluate(ExactRetriever(), hand_corpus(named_culture=([0] * 3, [1] * 4)))


def test_hand_corpus_hubness_at_1():
    report = evaluate_report(ExactRetriever(), hand_corpus(), k=1)
    m = report.metrics
    # t2i top-1s: A, B, C, C -> N_1 = [1, 1, 2]: skew 1/sqrt(2), Robin Hood 1/6
    assert report.details["t2i/k_occurrence@1"] == [1, 1, 2]
    assert m["t2i/hubness_skew@1"] == pytest.approx(1 / math.sqrt(2))
    assert m["t2i/hubness_robin_hood@1"] == pytest.approx(1 / 6)
    assert m["t2i/hubness_antihub@1"] == 0.0 and m["t2i/hubness_hub_occurrence@1"] == 0.0
    # random null with |Q| = 4, N = 3, k = 1: p = 1/3
    assert m["t2i/hubness_skew_null@1"] == pytest.approx((1 / 3) / math.sqrt(4 * (1 / 3) * (2 / 3)))
    assert m["t2i/hubness_antihub_null@1"] == pytest.approx((2 / 3) ** 4)
    # i2t top-1s: A-en, B-en -> N_1 = [1, 1, 0, 0]
    assert report.details["i2t/k_occurrence@1"] == [1, 1, 0, 0]
    assert m["i2t/hubness_skew@1"] == pytest.approx(0.0, abs=1e-15)
    assert m["i2t/hubness_antihub@1"] == 0.5 and m["i2t/hubness_robin_hood@1"] == 0.5
    assert m["i2t/hubness_hub_occurrence@1"] == 1.0
    assert math.isnan(
        evaluate_report(ExactRetriever(), hand_corpus()).metrics["t2i/hubness_skew@10"]
    )


def test_low_resource_lbkl_and_config():
    report = evaluate_report(ExactRetriever(), hand_corpus(), low_resource=["de"])
    m = report.metrics
    assert m["i2t/lbkl@1"] == pytest.approx(0.5 * math.log(0.5) + 0.5 * math.log(0.5 / 1e-9))
    assert m["i2t/lbkl@10"] == pytest.approx(0.0, abs=1e-12)  # two of four captions are German
    w = 1 / np.log2(np.arange(2, 6))  # both lists: en, de, en, de
    p = (w[1] + w[3]) / w.sum()
    assert m["i2t/dlbkl@10"] == pytest.approx(
        0.5 * math.log(0.5 / p) + 0.5 * math.log(0.5 / (1 - p))
    )
    c = report.config
    assert (c["k"], c["n_images"], c["n_texts"], c["n_i2t_queries"]) == (10, 3, 4, 2)
    assert c["n_images_without_caption"] == 1
    assert c["languages"] == ["de", "en"] and c["cultures"] == ["de", "en", "ja"]
    assert c["culture_of_language"] == {"de": "de", "en": "en"}
    assert c["retriever"] == repr(ExactRetriever()) and c["low_resource"] == ["de"]
    assert "i2t/lbkl@1" not in evaluate_report(ExactRetriever(), hand_corpus()).metrics


def test_odmap_from_pairs_and_from_the_decorrelated_column():
    objects = (np.array(["cross;heart", "cross", "heart"]), np.array(["cross;heart", "cross"] * 2))
    by_pairs = evaluate_report(
        ExactRetriever(), hand_corpus(objects=objects), cooccurring_objects=[("cross", "heart")]
    ).metrics
    # t2i: B-en rank 1 (AP 1), B-de rank 2 (AP 1/2); i2t: image B (AP 1); C has no caption
    assert by_pairs["t2i/odmap@10"] == pytest.approx(0.75)
    assert by_pairs["i2t/odmap@10"] == by_pairs["odmap@10"] == 1.0
    flags = (np.array([False, True, True]), np.array([False, True, False, True]))
    by_column = evaluate_report(ExactRetriever(), hand_corpus(decorrelated=flags)).metrics
    assert by_column["t2i/odmap@10"] == by_pairs["t2i/odmap@10"]
    assert by_column["odmap@10"] == by_pairs["odmap@10"]
    assert "odmap@10" not in evaluate_report(ExactRetriever(), hand_corpus()).metrics


def test_culture_of_language_mapping():
    m = evaluate_report(
        ExactRetriever(), hand_corpus(), culture_of_language={"de": "ja", "xx": "en"}
    ).metrics
    assert "t2i/own_culture@1/lang=en" not in m  # no mapping for en
    assert m["t2i/own_culture@1/lang=de"] == 0.0  # de queries retrieve C (de), never ja
    assert m["t2i/own_culture_chance/lang=de"] == 0.5  # B-de's relevant image B is ja
    unknown = evaluate_report(ExactRetriever(), hand_corpus(), culture_of_language={"de": "fr"})
    assert not [key for key in unknown.metrics if "own_culture" in key]  # no image is "fr"
    assert unknown.config["culture_of_language"] == {}
    with pytest.raises(TypeError, match="culture_of_language: expected a mapping"):
        evaluate_report(ExactRetriever(), hand_corpus(), culture_of_language=[("de", "de")])


# ---------------------------------------------------------------- random corpora
def random_corpus(seed: int, n_items: int = 6, languages=("de", "en", "sw")) -> EmbeddingSet:
    rng = np.random.default_rng(seed)
    dim = 8
    n_images = rng.integers(1, 3, n_items)
    images = EmbeddingSet(
        torch.tensor(rng.normal(size=(int(n_images.sum()), dim)), dtype=torch.float32),
        modality="image",
        item=np.repeat([f"i{i}" for i in range(n_items)], n_images),
        culture=rng.choice(["de", "en", "ja"], int(n_images.sum())),
    )
    texts = EmbeddingSet(
        torch.tensor(rng.normal(size=(n_items * len(languages), dim)), dtype=torch.float32),
        modality="text",
        item=np.repeat([f"i{i}" for i in range(n_items)], len(languages)),
        language=np.tile(languages, n_items),
    )
    return EmbeddingSet.concat([images, texts])


def same_metrics(a: dict[str, float], b: dict[str, float]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == pytest.approx(b[key], rel=1e-9, abs=1e-12, nan_ok=True), key


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), perm_seed=st.integers(0, 10_000))
def test_metrics_are_invariant_to_permuting_rows(seed, perm_seed):
    corpus = random_corpus(seed)
    permuted = corpus[np.random.default_rng(perm_seed).permutation(len(corpus))]
    before, after = (
        evaluate_report(ExactRetriever(), corpus),
        evaluate_report(ExactRetriever(), permuted),
    )
    same_metrics(before.metrics, after.metrics)
    for key, counts in before.details.items():
        assert sorted(counts) == sorted(after.details[key])


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_metrics_are_invariant_to_relabelling_items_and_cultures(seed):
    corpus = random_corpus(seed)
    rename = {"de": "Germany", "en": "England", "ja": "Japan"}
    relabelled = corpus.with_labels(
        item=np.char.add("item-", corpus.item),
        culture=[rename.get(c, "") for c in corpus.culture.tolist()],
    )
    before = evaluate_report(ExactRetriever(), corpus).metrics
    after = evaluate_report(
        ExactRetriever(), relabelled, culture_of_language={"de": "Germany", "en": "England"}
    ).metrics
    back = {f"culture={new}": f"culture={old}" for old, new in rename.items()}
    restored = {}
    for key, value in after.items():
        for new, old in back.items():
            key = key.replace(new, old)
        restored[key] = value
    same_metrics(before, restored)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_mrv_is_zero_when_every_language_ranks_alike(seed):
    corpus = random_corpus(seed)
    texts = corpus.texts
    one_per_item = {item: row for row, item in reversed(list(enumerate(texts.item.tolist())))}
    same = texts.embeddings[[one_per_item[item] for item in texts.item.tolist()]]
    aligned = EmbeddingSet.concat([corpus.images, texts.with_embeddings(same)])
    m = evaluate_report(ExactRetriever(), aligned).metrics
    assert m["t2i/mrv"] == m["i2t/mrv"] == m["t2i/mrv_var"] == m["i2t/mrv_var"] == 0.0


def tugging_world(seed: int, tug: float, n_items: int = 150) -> EmbeddingSet:
    """Items × 4 cultures of images; captions in 4 languages named like the cultures. Content
    lives in dims 0..15, culture in 16..19, language in 20..23: with ``tug = 0`` captions carry no
    culture, so the retriever picks among an item's images by noise alone (culture-blind)."""
    rng = np.random.default_rng(seed)
    names = ["de", "fr", "ja", "sw"]
    content = rng.normal(size=(n_items, 16))
    img, img_item, img_culture, txt, txt_item, txt_lang = [], [], [], [], [], []
    for i in range(n_items):
        for c, name in enumerate(names):
            x = np.zeros(24)
            x[:16] = content[i] + 0.3 * rng.normal(size=16)
            x[16 + c] = 1.0
            img.append(x), img_item.append(f"i{i}"), img_culture.append(name)
            t = np.zeros(24)
            t[:16] = content[i] + 0.3 * rng.normal(size=16)
            t[16 + c] = tug
            t[20 + c] = 1.0
            txt.append(t), txt_item.append(f"i{i}"), txt_lang.append(name)
    return EmbeddingSet.concat(
        [
            EmbeddingSet(
                torch.tensor(np.array(img), dtype=torch.float32),
                modality="image",
                item=img_item,
                culture=img_culture,
            ),
            EmbeddingSet(
                torch.tensor(np.array(txt), dtype=torch.float32),
                modality="text",
                item=txt_item,
                language=txt_lang,
            ),
        ]
    )


@settings(max_examples=5, deadline=None, derandomize=True)
@given(seed=st.integers(0, 10_000))
def test_a_culture_blind_retriever_has_no_own_culture_excess(seed):
    m = evaluate_report(ExactRetriever(), tugging_world(seed, tug=0.0)).metrics
    for lang in ("de", "fr", "ja", "sw"):
        assert m[f"t2i/own_culture_chance/lang={lang}"] == pytest.approx(0.25)
    # 150 queries per language: SE of the mean excess over 4 languages ≈ 0.018
    assert abs(m["t2i/own_culture_excess@1"]) < 0.09
    tugged = evaluate_report(ExactRetriever(), tugging_world(seed, tug=3.0)).metrics
    assert tugged["t2i/own_culture_excess@1"] > 0.6


def dense_mrv(corpus: EmbeddingSet) -> tuple[float, float]:
    """Reference MRV from full score matrices: t2i over items, i2t over image queries with each
    language's captions ranked alone (stable argsort, first relevant position)."""
    images, texts = corpus.images.normalized(), corpus.texts.normalized()

    def first_ranks(q: EmbeddingSet, g: EmbeddingSet) -> np.ndarray:
        scores = q.embeddings.float() @ g.embeddings.float().T
        order = torch.sort(scores, dim=1, descending=True, stable=True).indices.numpy()
        return (g.item[order] == q.item[:, None]).argmax(axis=1) + 1

    t2i = first_ranks(texts, images)
    t2i_std = np.mean([t2i[texts.item == item].std() for item in np.unique(texts.item)])
    per_language = np.stack(
        [first_ranks(images, texts[texts.language == lang]) for lang in texts.languages()], axis=1
    )
    return float(t2i_std), float(per_language.std(axis=1).mean())


@pytest.mark.parametrize("seed", range(3))
def test_mrv_equals_a_dense_reference(seed):
    corpus = random_corpus(seed, n_items=15)
    m = evaluate_report(ExactRetriever(), corpus, k=3).metrics
    t2i, i2t = dense_mrv(corpus)
    assert m["t2i/mrv"] == pytest.approx(t2i)
    assert m["i2t/mrv"] == pytest.approx(i2t)


class SearchOnly:
    def __init__(self) -> None:
        self.inner = ExactRetriever()

    def search(self, queries: EmbeddingSet, gallery: EmbeddingSet, k: int) -> Ranking:
        return self.inner.search(queries, gallery, k)


def test_search_only_retrievers_get_the_same_report():
    corpus = random_corpus(3, n_items=12)
    same_metrics(
        evaluate_report(ExactRetriever(), corpus).metrics,
        evaluate_report(SearchOnly(), corpus).metrics,
    )


def test_texts_without_languages_omit_language_keys():
    corpus = random_corpus(4)
    bare = EmbeddingSet.concat(
        [corpus.images, corpus.texts.with_labels(language=[""] * len(corpus.texts))]
    )
    report = evaluate_report(ExactRetriever(), bare)
    assert not [key for key in report.metrics if "lang" in key or "mrv" in key]
    assert "t2i/recall@1" in report.metrics and "i2t/recall@1/culture=de" in report.metrics
    assert report.config["languages"] == []


class Collapsing(ExactRetriever):
    """Searches like ExactRetriever; its embedding space sends every row to e0."""

    def transform(self, data: EmbeddingSet) -> EmbeddingSet:
        return data.with_embeddings(torch.eye(data.dim)[[0] * len(data)])


class BrokenTransform(ExactRetriever):
    def transform(self, data: EmbeddingSet) -> torch.Tensor:
        return data.embeddings


def test_modality_gap_is_measured_in_the_retrievers_space_when_it_has_one():
    report = evaluate_report(Collapsing(), hand_corpus())
    assert report.metrics["modality_gap"] == 0.0
    assert report.config["modality_gap_space"] == "retriever.transform"
    assert evaluate_report(ExactRetriever(), hand_corpus()).config["modality_gap_space"] == "corpus"
    with pytest.raises(TypeError, match="retriever.transform: expected an EmbeddingSet of 7 rows"):
        evaluate_report(BrokenTransform(), hand_corpus())


def test_rows_without_a_counterpart_are_left_out_of_the_queries():
    corpus = hand_corpus()
    orphan = EmbeddingSet(
        torch.tensor([[0.0, 0.0, 1.0, 0.0]]), modality="text", item=["Z"], language=["en"]
    )
    report = evaluate_report(ExactRetriever(), EmbeddingSet.concat([corpus, orphan]))
    assert report.config["n_texts_without_image"] == 1 and report.config["n_t2i_queries"] == 4
    assert report.metrics["t2i/recall@1"] == 0.5  # the orphan caption is not a query
    assert len(report.details["i2t/k_occurrence@10"]) == 5  # but it is in the i2t gallery


def test_inputs_are_not_modified():
    corpus = hand_corpus()
    before = corpus.embeddings.clone()
    evaluate_report(ExactRetriever(), corpus)
    assert torch.equal(corpus.embeddings, before)


def test_bad_inputs_are_named():
    corpus = hand_corpus()
    with pytest.raises(TypeError, match="retriever: expected an object with a search"):
        evaluate_report(object(), corpus)
    with pytest.raises(TypeError, match="corpus: expected an EmbeddingSet"):
        evaluate_report(ExactRetriever(), corpus.embeddings)
    with pytest.raises(
        ValueError, match="corpus: expected image and text rows, got 3 images and 0 texts"
    ):
        evaluate_report(ExactRetriever(), corpus.images)
    with pytest.raises(ValueError, match="k: expected an integer >= 1"):
        evaluate_report(ExactRetriever(), corpus, k=0)
    partial = corpus.with_labels(language=["", "", "", "en", "en", "", "de"])
    with pytest.raises(
        ValueError, match="expected a language on every text or on none, got 1 of 4"
    ):
        evaluate_report(ExactRetriever(), partial)
    with pytest.raises(ValueError, match="low_resource: expected languages of the corpus"):
        evaluate_report(ExactRetriever(), corpus, low_resource=["xx"])
    with pytest.raises(ValueError, match="cooccurring_objects: expected an 'objects' extra column"):
        evaluate_report(ExactRetriever(), corpus, cooccurring_objects=[("a", "b")])
    strangers = corpus.with_labels(item=["A", "B", "C", "X", "X", "Y", "Y"])
    with pytest.raises(ValueError, match="corpus: expected t2i queries sharing an item"):
        evaluate_report(ExactRetriever(), strangers)
