"""identify_languages: the language of raw texts (py3langid, the ``langid`` extra)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from xcm_debias.langid import identifiable_languages, identify_languages
from xcm_debias.worlds.captions import LANGUAGES, N_TEMPLATES, caption
from xcm_debias.worlds.scenes import sample_items

py3langid = pytest.importorskip("py3langid.langid")

# written for this test (image descriptions in the style of captioning datasets)
SENTENCES = {
    "en": [
        "Two children are playing with a red ball in the park.",
        "A woman in a blue coat is waiting for the bus.",
    ],
    "de": [
        "Zwei Kinder spielen im Park mit einem roten Ball.",
        "Eine Frau in einem blauen Mantel wartet auf den Bus.",
    ],
    "fr": [
        "Deux enfants jouent avec un ballon rouge dans le parc.",
        "Une femme en manteau bleu attend le bus.",
    ],
    "cs": [
        "Dvě děti si hrají v parku s červeným míčem.",
        "Žena v modrém kabátě čeká na autobus.",
    ],
    "es": ["Dos niños juegan con una pelota roja en el parque."],
    "ru": ["Двое детей играют в парке с красным мячом."],
    "ja": ["公園で二人の子供が赤いボールで遊んでいます。"],
}
TEXTS = [t for texts in SENTENCES.values() for t in texts]
GOLD = [lang for lang, texts in SENTENCES.items() for _ in texts]


def test_hand_written_captions_are_identified():
    assert identify_languages(TEXTS) == GOLD


def test_candidates_come_back_as_spelled():
    texts = SENTENCES["en"] + SENTENCES["de"] + SENTENCES["cs"]
    found = identify_languages(texts, candidates=["ENG", "de-DE", "cze", "fr"])
    assert found == ["ENG", "ENG", "de-DE", "de-DE", "cze", "cze"]
    # one candidate: every text gets it, whatever its language
    assert identify_languages(texts, candidates=["fr"]) == ["fr"] * 6


def test_equals_py3langid_directly_open_and_restricted():
    identifier = py3langid.LanguageIdentifier.from_model_file(py3langid.MODEL_FILE)
    assert identify_languages(TEXTS) == [identifier.classify(t)[0] for t in TEXTS]
    # restricted: the best-ranked candidate of the full model (same naive Bayes scores)
    candidates = ["de", "fr", "cs", "sk", "pl"]
    expected = [next(lang for lang, _ in identifier.rank(t) if lang in candidates) for t in TEXTS]
    assert identify_languages(TEXTS, candidates) == expected


def test_world_captions_are_identified_among_the_world_languages():
    scenes = sample_items(30, np.random.default_rng(1))
    texts, gold = [], []
    for i, scene in enumerate(scenes):
        for language in LANGUAGES:
            texts.append(caption(scene, language, i % N_TEMPLATES))
            gold.append(language)
    found = identify_languages(texts, candidates=LANGUAGES)
    # measured: 1800 of 1800 (benchmarks/language_id.py); a template-level regression shows here
    assert np.mean(np.asarray(found) == np.asarray(gold)) >= 0.99


def test_identifiable_languages_hold_the_world_and_multi30k_languages():
    known = identifiable_languages()
    assert known == sorted(known) and len(known) > 90
    assert {*LANGUAGES, "cs"} <= set(known)


def test_bad_inputs_are_named():
    with pytest.raises(TypeError, match=r"texts: expected a sequence of strings, got str \(wrap"):
        identify_languages("one text")
    with pytest.raises(TypeError, match=r"texts\[1\]: expected a string, got int"):
        identify_languages(["a text", 3])
    with pytest.raises(ValueError, match=r"texts\[0\]: expected a non-empty string"):
        identify_languages(["  "])
    with pytest.raises(TypeError, match="candidates: expected a sequence of language codes"):
        identify_languages(["a text"], candidates="en")
    with pytest.raises(TypeError, match="candidates: expected non-empty language code strings"):
        identify_languages(["a text"], candidates=["en", ""])
    with pytest.raises(ValueError, match="candidates: expected at least one language"):
        identify_languages(["a text"], candidates=[])
    with pytest.raises(
        ValueError, match=r"candidates: expected languages the identifier knows.*'tlh'"
    ):
        identify_languages(["a text"], candidates=["en", "tlh"])
    assert identify_languages([]) == []


def test_missing_extra_says_how_to_install_it(monkeypatch):
    _clear_caches()
    monkeypatch.setitem(sys.modules, "py3langid", None)
    monkeypatch.setitem(sys.modules, "py3langid.langid", None)
    try:
        with pytest.raises(ImportError, match=r"pip install 'xcm_debias\[langid\]'"):
            identify_languages(["A man rides a bike."])
    finally:
        _clear_caches()


def _clear_caches() -> None:
    """Forget the loaded identifier, so that the next call imports py3langid again."""
    from xcm_debias import langid

    langid._model.cache_clear()
    langid._identifier.cache_clear()
