"""Language codes: one matching key per language (EN, eng, en_US -> en), the codes as given kept."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from xcm_debias import EmbeddingSet, ExactRetriever
from xcm_debias.language_codes import language_key, language_keys
from xcm_debias.report.evaluate import evaluate_report
from xcm_debias.tune import top1_metrics

# checked by hand against the IANA language subtag registry and ISO 639-2 / 639-3 tables
HAND = {
    "en": "en",
    "EN": "en",
    "eng": "en",
    "ENG": "en",
    "en-US": "en",
    "en_US": "en",
    "en-gb": "en",
    "en-Latn-GB": "en",
    " en ": "en",
    "ger": "de",  # ISO 639-2/B
    "deu": "de",  # ISO 639-2/T and 639-3
    "de-CH-1996": "de",  # variant dropped
    "fre": "fr",
    "fra": "fr",
    "cze": "cs",
    "ces": "cs",
    "swa": "sw",
    "vie": "vi",
    "iw": "he",  # deprecated code
    "in": "id",
    "zh": "zh",
    "zh-CN": "zh",
    "zh-Hans": "zh",
    "zh-TW": "zh-Hant",  # the region implies traditional characters
    "zh_tw": "zh-Hant",
    "zh-Hant-HK": "zh-Hant",
    "sr": "sr",
    "sr-Cyrl": "sr",  # Cyrillic is Serbian's usual script
    "sr-Latn": "sr-Latn",
    "ja-Latn": "ja-Latn",  # romaji is not Japanese in its usual script
    "cmn": "cmn",  # macrolanguages are not merged
    "swh": "swh",
    "": "",
    "lang0": "lang0",  # not language tags: unchanged
    "L1": "L1",
    "A": "A",
    "Klingon": "Klingon",
}


@pytest.mark.parametrize(("code", "key"), sorted(HAND.items()))
def test_hand_checked_keys(code, key):
    assert language_key(code) == key


def test_keys_of_an_array_are_the_keys_of_each_value():
    codes = np.array(["EN", "de", "en-US", "", "lang0", "de"])
    assert language_keys(codes).tolist() == ["en", "de", "en", "", "lang0", "de"]
    already = np.array(["en", "de", ""])
    assert language_keys(already) is already  # nothing to change: no copy
    with pytest.raises(TypeError, match="codes: expected a 1-D array of strings"):
        language_keys(np.array([1, 2]))
    with pytest.raises(TypeError, match="code: expected a language code string, got int"):
        language_key(3)


@given(st.text(max_size=12))
def test_the_key_of_a_key_is_itself(code):
    key = language_key(code)
    assert language_key(key) == key


# languages written in one script wherever they are spoken (the region never changes the key)
ONE_SCRIPT = ("en", "de", "fr", "cs", "es", "it", "ja", "ru", "sw", "vi", "ar", "ko", "nl", "pl")
REGIONS = ("US", "GB", "DE", "FR", "CZ", "CH", "BE", "CA", "KE", "JP", "419", "001")
THREE_LETTER = {"en": "eng", "de": "deu", "fr": "fra", "cs": "ces", "es": "spa", "it": "ita"}


@given(
    st.sampled_from(ONE_SCRIPT),
    st.one_of(st.none(), st.sampled_from(REGIONS)),
    st.sampled_from(["-", "_"]),
    st.sampled_from([str.lower, str.upper, str.title]),
    st.booleans(),
)
def test_case_region_and_separator_variants_share_one_key(language, region, sep, case, alpha3):
    primary = THREE_LETTER.get(language, language) if alpha3 else language
    code = case(primary if region is None else f"{primary}{sep}{region}")
    assert language_key(code) == language


def test_embedding_set_counts_one_language_per_key_and_keeps_the_codes_as_given(tmp_path):
    x = torch.eye(4)
    data = EmbeddingSet(x, modality="text", language=["EN", "en", "eng", "de_DE"])
    assert data.languages() == ["de", "en"]
    assert data.language.tolist() == ["en", "en", "en", "de"]
    assert data.language_tag.tolist() == ["EN", "en", "eng", "de_DE"]
    assert data.label("language_tag").tolist() == data.language_tag.tolist()
    assert data.where(language="EN").language_tag.tolist() == ["EN", "en", "eng"]
    assert data[[3]].language_tag.tolist() == ["de_DE"]
    for suffix in (".npz", ".parquet"):
        back = EmbeddingSet.load(data.save(tmp_path / f"set{suffix}"))
        assert back.language.tolist() == data.language.tolist()
        assert back.language_tag.tolist() == data.language_tag.tolist()
    plain = EmbeddingSet(x, modality="text", language=["en", "de", "fr", "lang0"])
    assert plain.language_tag is plain.language  # all codes already keys: nothing extra kept
    assert "language_tag" not in plain.to_columns()
    both = EmbeddingSet.concat([plain, data])
    assert both.language_tag.tolist() == ["en", "de", "fr", "lang0", "EN", "en", "eng", "de_DE"]
    relabelled = data.with_labels(language=["fr-FR", "fr", "fr", "fr"])
    assert relabelled.languages() == ["fr"]
    assert relabelled.language_tag.tolist() == ["fr-FR", "fr", "fr", "fr"]
    with pytest.raises(ValueError, match="'language_tag' holds the language codes as given"):
        data.with_labels(language_tag=["a", "b", "c", "d"])


def test_clip_retrieval_folders_keep_the_codes_as_given(tmp_path):
    pairs = EmbeddingSet.concat(
        [
            EmbeddingSet(torch.eye(4)[:2], modality="image", item=["a", "b"]),
            EmbeddingSet(torch.eye(4)[2:], modality="text", item=["a", "b"], language=["EN", "de"]),
        ]
    )
    back = EmbeddingSet.load(pairs.save(tmp_path / "folder")).texts
    assert back.language.tolist() == ["en", "de"]
    assert back.language_tag.tolist() == ["EN", "de"]


def _corpus(languages: list[str]) -> EmbeddingSet:
    """Two images (cultures en, de) and four captions, one pair per item."""
    e = torch.eye(3)
    images = EmbeddingSet(e[:2], modality="image", item=["A", "B"], culture=["en", "de"])
    texts = EmbeddingSet(
        torch.stack([e[0], e[1], e[0] + 0.5 * e[2], e[1] + 0.5 * e[2]]),
        modality="text",
        item=["A", "B", "A", "B"],
        language=languages,
    )
    return EmbeddingSet.concat([images, texts])


def test_report_maps_cultures_and_low_resource_languages_through_the_keys():
    spelled = evaluate_report(
        ExactRetriever(),
        _corpus(["EN", "en-GB", "ger", "de"]),
        culture_of_language={"de-DE": "de", "eng": "en"},
        low_resource=["DE"],
    )
    plain = evaluate_report(
        ExactRetriever(),
        _corpus(["en", "en", "de", "de"]),
        culture_of_language={"de": "de", "en": "en"},
        low_resource=["de"],
    )
    np.testing.assert_equal(spelled.metrics, plain.metrics)  # NaN (no hubness at n=2) == NaN
    assert spelled.config["languages"] == ["de", "en"]
    assert spelled.config["culture_of_language"] == {"de": "de", "en": "en"}
    # each language's queries retrieve both cultures' images once: own culture at top-1 = 1/2
    assert spelled.metrics["t2i/own_culture@1/lang=de"] == 0.5
    # tune's top-1 metrics: English mapped to a culture no image has (no own-culture keys)
    spelled_top1 = top1_metrics(ExactRetriever(), _corpus(["EN", "en", "ger", "de"]), {"ENG": "x"})
    plain_corpus = _corpus(["en", "en", "de", "de"])
    assert spelled_top1 == top1_metrics(ExactRetriever(), plain_corpus, {"en": "x"})
    assert "t2i/own_culture@1/lang=en" not in spelled_top1
    assert "t2i/own_culture@1/lang=en" in top1_metrics(ExactRetriever(), plain_corpus)
