"""Calibration sets where some rows lack ``language`` or ``culture``: inferred for the fit (or
the label dropped when nothing can be inferred), never an error."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_label_models import corpus

from xcm_debias import EmbeddingSet
from xcm_debias.calibration.labels import (
    CalibrationLabelWarning,
    LabelClassifier,
    complete_calibration,
)
from xcm_debias.configs import build
from xcm_debias.soft_labels import inferred_rows, soft_labels

CALIB = corpus(strength=12.0)
TEST = corpus(strength=12.0, seed=1)


def without(data: EmbeddingSet, language: np.ndarray, culture: np.ndarray) -> EmbeddingSet:
    """``data`` with the language of the text rows in the bool mask ``language`` and the culture
    of the image rows in ``culture`` emptied (masks over the texts and over the images)."""
    lang, cult = data.language.copy(), data.culture.copy()
    texts, images = (
        np.flatnonzero(data.modality == "text"),
        np.flatnonzero(data.modality == "image"),
    )
    lang[texts[language]] = ""
    cult[images[culture]] = ""
    return data.with_labels(language=lang, culture=cult)


def fit_quietly(config: str, data: EmbeddingSet):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build(config).fit(data)


def test_missing_languages_are_inferred_by_a_classifier_of_the_labelled_rows() -> None:
    """The unlabelled rows get the posteriors of a classifier fitted on the labelled rows alone
    (here a separate set holding only those), their most probable language in the column, and
    one warning counting them."""
    drop = np.zeros(90, dtype=bool)
    drop[[0, 5, 31, 32, 60, 88, 89]] = True
    partial = without(CALIB, drop, np.zeros(30, dtype=bool))
    with pytest.warns(CalibrationLabelWarning, match="7 of 90 calibration text rows") as caught:
        done = complete_calibration(partial)
    (warning,) = [w.message for w in caught]
    assert (warning.label, warning.inferred, warning.unconfident, warning.removed) == (
        "language",
        7,
        0,
        0,
    )
    texts = np.flatnonzero(CALIB.modality == "text")
    missing = np.zeros(len(CALIB), dtype=bool)
    missing[texts[drop]] = True
    np.testing.assert_array_equal(inferred_rows(done, "language"), missing)
    np.testing.assert_array_equal(done.language, CALIB.language)  # well separated: all right
    reference = LabelClassifier("language", "text", min_rows=1).fit(partial[~missing])
    np.testing.assert_allclose(
        soft_labels(done[missing], "language", reference.classes),
        reference.predict_proba(partial[missing]),
        rtol=1e-5,
        atol=1e-6,
    )


def test_arguments_are_checked() -> None:
    with pytest.raises(TypeError, match="calibration: expected an EmbeddingSet, got dict"):
        complete_calibration({})
    with pytest.raises(ValueError, match=r"threshold: expected a number in \[0, 1\], got 1.5"):
        complete_calibration(CALIB, threshold=1.5)
    with pytest.raises(TypeError, match="threshold: expected a number"):
        complete_calibration(CALIB, threshold=True)


def test_a_fully_labelled_set_is_returned_as_it_is() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert complete_calibration(CALIB) is CALIB


def test_a_label_held_by_one_class_only_is_removed_with_a_warning() -> None:
    """29 of 30 images without culture: one labelled culture teaches nothing, so culture is
    dropped from every image and text→image GroupBalance fits as a no-op."""
    partial = without(CALIB, np.zeros(90, dtype=bool), np.arange(30) > 0)
    with pytest.warns(CalibrationLabelWarning, match="removed from all 30 image rows") as caught:
        done = complete_calibration(partial)
    assert [(w.message.label, w.message.removed) for w in caught] == [("culture", 30)]
    assert (done.culture == "").all()
    assert not inferred_rows(done, "culture").any()
    fair = fit_quietly("world_tuned", partial)
    assert "skipped" in fair.scorers_["t2i"][0].fitted_meta


def test_fit_with_inferred_calibration_labels_matches_the_labelled_fit() -> None:
    """Well-separated groups: the inferred calibration labels are the true ones, so the fitted
    pipeline ranks the test set as the one fitted on the complete labels; the label models
    learn from the gold rows only (83 captions, 27 images)."""
    partial = without(CALIB, np.arange(90) % 13 == 0, np.arange(30) % 10 == 3)
    full, part = fit_quietly("world_tuned", CALIB), fit_quietly("world_tuned", partial)
    summary = part.label_models_.summary()
    assert (summary["language"]["n_rows"], summary["culture"]["n_rows"]) == (83, 27)
    for queries, gallery in ((TEST.texts, TEST.images), (TEST.images, TEST.texts)):
        expected, got = full.search(queries, gallery, 5), part.search(queries, gallery, 5)
        assert torch.equal(got.indices, expected.indices)
        torch.testing.assert_close(got.scores, expected.scores, rtol=1e-4, atol=1e-4)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    calib_language=st.lists(st.booleans(), min_size=90, max_size=90),
    calib_culture=st.lists(st.booleans(), min_size=30, max_size=30),
    test_language=st.lists(st.booleans(), min_size=90, max_size=90),
    test_culture=st.lists(st.booleans(), min_size=30, max_size=30),
)
def test_random_missing_labels_in_calibration_and_at_search_never_raise(
    calib_language: list[bool],
    calib_culture: list[bool],
    test_language: list[bool],
    test_culture: list[bool],
) -> None:
    """Any rows may lack their labels, in calibration and at search, as long as calibration
    keeps two languages for LanguageAlignment to align (one language is an error of its own)."""
    partial = without(CALIB, np.array(calib_language), np.array(calib_culture))
    assume(len(set(partial.texts.language.tolist()) - {""}) >= 2)
    fair = fit_quietly("world_tuned", partial)
    test = without(TEST, np.array(test_language), np.array(test_culture))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # languages or cultures unseen at fit get the identity
        for queries, gallery in ((test.texts, test.images), (test.images, test.texts)):
            ranking = fair.search(queries, gallery, 4)
            assert ranking.indices.shape == (len(queries), 4)
            assert torch.isfinite(ranking.scores).all()
