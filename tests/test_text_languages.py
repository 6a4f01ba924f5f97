"""Search-time languages read from a text row's string (the ``caption`` column) instead of its
embedding: which rows, the one-hot soft label, the fallbacks, and the report's count."""

from __future__ import annotations

import sys
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from test_label_models import LANGS, corpus

from xcm_debias import Debiased, EmbeddingSet
from xcm_debias.calibration.labels import (
    CalibrationLabelWarning,
    LabelModels,
    complete_calibration,
)
from xcm_debias.calibration.text_languages import TEXT_COLUMN, languages_from_text
from xcm_debias.configs import build
from xcm_debias.report.label_free import label_record
from xcm_debias.soft_labels import (
    confident_name,
    from_text_name,
    inferred_rows,
    soft_labels,
    strip_labels,
)

SENTENCES = {
    "de": ("Ein roter Hund läuft über die grüne Wiese.", "Zwei Kinder spielen im Park."),
    "en": ("A red dog runs across the green meadow.", "Two children play in the park."),
    "sw": ("Mbwa mwekundu anakimbia kwenye uwanja.", "Watoto wawili wanacheza bustanini."),
}
MODELS = LabelModels(("language",)).fit(corpus(strength=8.0))


def disguised_captions(blank_every: int = 0) -> tuple[EmbeddingSet, np.ndarray]:
    """Test captions whose German rows carry the embedding of the same item's English caption
    (the embedding says English, the string German), with their strings in ``caption``
    (``""`` on every ``blank_every``-th row when given); and the true languages."""
    texts = corpus(strength=8.0, seed=1).texts
    x = texts.embeddings.clone()
    english = {item: i for i, item in enumerate(texts.item) if texts.language[i] == "en"}
    for i in np.flatnonzero(texts.language == "de"):
        x[i] = texts.embeddings[english[texts.item[i]]]
    strings = np.array([SENTENCES[lang][i % 2] for i, lang in enumerate(texts.language)])
    if blank_every:
        strings[::blank_every] = ""
    out = EmbeddingSet(
        x, modality="text", item=texts.item, language=texts.language, extra={"caption": strings}
    )
    return strip_labels(out), texts.language


def test_strings_decide_where_the_embedding_is_wrong() -> None:
    data, truth = disguised_captions()
    german = truth == "de"
    by_embedding = LabelModels(("language",), text_column=None).fit(corpus(strength=8.0))
    wrong = by_embedding.fill(data)
    # the constructed case: the embedding classifier takes every German caption for English
    assert (wrong.language[german] == "en").all()
    assert soft_labels(wrong[german], "language", list(LANGS))[:, 1].min() > 0.99
    assert from_text_name("language") not in wrong.extra
    filled = MODELS.fill(data)
    assert (filled.language == truth).all()
    expected = (np.asarray(LANGS)[None, :] == truth[:, None]).astype(np.float32)
    np.testing.assert_array_equal(soft_labels(filled, "language", list(LANGS)), expected)
    assert filled.extra[from_text_name("language")].all()
    assert (
        filled.extra[confident_name("language")].all() and inferred_rows(filled, "language").all()
    )


def test_rows_without_a_string_keep_the_embedding_posterior() -> None:
    data, truth = disguised_captions(blank_every=4)
    blank = data.extra["caption"] == ""
    filled = MODELS.fill(data)
    np.testing.assert_array_equal(filled.extra[from_text_name("language")], ~blank)
    np.testing.assert_allclose(
        soft_labels(filled[blank], "language", list(LANGS)),
        MODELS.models["language"].predict_proba(data[blank]),
        rtol=0,
        atol=0,
    )
    assert (filled.language[~blank] == truth[~blank]).all()
    # the blank German rows (disguised as English) are the embedding's: English
    assert (filled.language[blank & (truth == "de")] == "en").all()


def test_labelled_rows_and_images_are_left_alone() -> None:
    data, truth = disguised_captions()
    given = data.with_labels(language=np.where(np.arange(len(data)) < 5, "sw", ""))
    filled = MODELS.fill(given)
    assert (filled.language[:5] == "sw").all() and not inferred_rows(filled, "language")[:5].any()
    assert not filled.extra[from_text_name("language")][:5].any()
    assert (filled.language[5:] == truth[5:]).all()


def test_fallbacks_to_the_embeddings() -> None:
    data, truth = disguised_captions()
    rows, codes = languages_from_text(data, LANGS)
    assert rows.all() and (np.asarray(LANGS)[codes] == truth).all()
    # no string column, or a column of another name
    assert languages_from_text(strip_labels(corpus(seed=1).texts), LANGS) is None
    assert languages_from_text(data, LANGS, column="text") is None
    # a class the identifier does not know: the embeddings decide
    assert languages_from_text(data, ("de", "en", "qqq")) is None
    calibration = corpus(strength=8.0)
    texts = calibration.modality == "text"
    renamed = np.where(texts, np.char.add("x", calibration.language.astype(str)), "")
    models = LabelModels(("language",)).fit(calibration.with_labels(language=renamed))
    filled = models.fill(data)
    assert (filled.language[truth == "de"] == "xen").all()
    assert from_text_name("language") not in filled.extra


def test_without_the_langid_extra_the_embeddings_decide(monkeypatch) -> None:
    from xcm_debias import langid

    data, truth = disguised_captions()
    langid._model.cache_clear()
    langid._identifier.cache_clear()
    monkeypatch.setitem(sys.modules, "py3langid", None)
    monkeypatch.setitem(sys.modules, "py3langid.langid", None)
    try:
        assert languages_from_text(data, LANGS) is None
        filled = MODELS.fill(data)
    finally:
        langid._model.cache_clear()
        langid._identifier.cache_clear()
    assert (filled.language[truth == "de"] == "en").all()
    assert from_text_name("language") not in filled.extra


def test_bad_arguments_are_named() -> None:
    data, _ = disguised_captions()
    with pytest.raises(TypeError, match="data: expected an EmbeddingSet, got list"):
        languages_from_text([1], LANGS)
    with pytest.raises(TypeError, match="column: expected a non-empty column name, got ''"):
        languages_from_text(data, LANGS, column="")
    with pytest.raises(ValueError, match=r"classes: expected at least 2 languages, got \['de'\]"):
        languages_from_text(data, ["de"])
    with pytest.raises(ValueError, match="text_column: expected a column name or None, got 3"):
        LabelModels(("language",), text_column=3).fit(corpus())
    assert TEXT_COLUMN == "caption"


def test_the_report_counts_the_rows_read_from_text() -> None:
    data, truth = disguised_captions(blank_every=4)
    labelled = data.with_labels(language=truth)
    record = label_record(SimpleNamespace(label_models_=MODELS), labelled, label_free=True)
    entry = record["labels"]["language"]
    n_blank = int((data.extra["caption"] == "").sum())
    assert entry["inferred"] == len(data)
    assert entry["from_text"] == len(data) - n_blank
    # the blank German rows are misread as English by the embedding; every other row is right
    assert entry["wrong"] == int(((data.extra["caption"] == "") & (truth == "de")).sum())


def test_calibration_rows_without_language_are_read_from_their_strings() -> None:
    """complete_calibration: the unlabelled German captions (disguised as English in the
    embedding) get German from their strings; from the embeddings only they become English."""
    calibration = corpus(strength=8.0)
    texts = calibration.modality == "text"
    strings = np.array(
        [SENTENCES[lang][i % 2] if lang else "" for i, lang in enumerate(calibration.language)]
    )
    x = calibration.embeddings.clone()
    english = {
        calibration.item[i]: i for i in np.flatnonzero(texts & (calibration.language == "en"))
    }
    unlabelled = np.flatnonzero(texts & (calibration.language == "de"))[:4]
    for i in unlabelled:
        x[i] = calibration.embeddings[english[calibration.item[i]]]
    language = calibration.language.astype(object)
    language[unlabelled] = ""
    data = EmbeddingSet(
        x,
        modality=calibration.modality,
        item=calibration.item,
        language=language.astype(str),
        culture=calibration.culture,
        extra={"caption": strings},
    )
    with pytest.warns(CalibrationLabelWarning, match="4 read from their strings, the others"):
        filled = complete_calibration(data)
    assert (filled.language[unlabelled] == "de").all()
    np.testing.assert_array_equal(
        np.flatnonzero(filled.extra[from_text_name("language")]), unlabelled
    )
    with pytest.warns(CalibrationLabelWarning, match=r": inferred from the embeddings"):
        by_embedding = complete_calibration(data, text_column=None)
    assert (by_embedding.language[unlabelled] == "en").all()
    with pytest.raises(ValueError, match="text_column: expected a column name or None, got ''"):
        complete_calibration(data, text_column="")


def test_search_reads_the_query_languages_from_their_strings(tmp_path) -> None:
    """A fitted pipeline searched with disguised captions stripped of their language: reading
    the strings gives the labelled search exactly; from the embeddings only it does not (the
    German captions get the English map and offsets). ``text_column`` is saved with it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fair = build("world_tuned").fit(corpus(strength=8.0))
    data, truth = disguised_captions()
    labelled = data.with_labels(language=truth)
    images = strip_labels(corpus(strength=8.0, seed=1).images)
    pairs = (((data, images), (labelled, images)), ((images, data), (images, labelled)))
    for (queries, gallery), (queries_given, gallery_given) in pairs:
        ranked = fair.search(queries, gallery, 5)
        reference = fair.search(queries_given, gallery_given, 5)
        assert torch.equal(ranked.indices, reference.indices)
        torch.testing.assert_close(ranked.scores, reference.scores, rtol=1e-5, atol=1e-6)
    fair.label_models_.text_column = None
    fair.clear_cache()
    by_embedding = fair.search(data, images, 5).scores
    assert not torch.allclose(by_embedding, fair.search(labelled, images, 5).scores)
    again = Debiased.load(fair.save(tmp_path / "fair.safetensors"))
    assert again.label_models_.text_column is None
    torch.testing.assert_close(again.search(data, images, 5).scores, by_embedding)
