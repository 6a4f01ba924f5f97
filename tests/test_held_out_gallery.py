"""The held-out gallery ranker: every gallery row scored by the fold model that did not see it.

Checked against an independent path: ``Debiased.search`` over the offset index form (pad,
radius, normalisation), fold model by fold model.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from xcm_debias import Debiased, EmbeddingSet, ExactRetriever
from xcm_debias.calibration.crossfit import fit_processors, fit_scorers
from xcm_debias.calibration.folds import item_folds
from xcm_debias.calibration.held_out_gallery import FoldModel, HeldOutGalleryRanker
from xcm_debias.processors import LanguageAlignment
from xcm_debias.scoring import ExposureShuffle, InvertedSoftmax
from xcm_debias.worlds import world_calibration_test


@pytest.fixture(scope="module")
def calibration() -> EmbeddingSet:
    calib, _ = world_calibration_test(seed=0, n_items=100)  # 20 calibration items
    return calib


def _fold_models(calibration, folds, direction, templates, processors=None):
    models = []
    for fold in range(int(folds.max()) + 1):
        train = calibration[folds != fold]
        proc = None if processors is None else processors()
        current, inner = fit_processors(proc, train, 0, 0, "test")
        scorers = fit_scorers([t() for t in templates], current, inner, "test", direction)
        models.append(FoldModel(proc, scorers))
    return models


def _scores_by_debiased(model: FoldModel, queries, gallery, direction) -> torch.Tensor:
    """The full [Q, N] score matrix of one fold model, through Debiased's index form."""
    fair = Debiased.assemble(ExactRetriever(), model.processors, {direction: model.scorers})
    ranking = fair.search(queries, gallery, len(gallery))
    out = torch.empty(len(queries), len(gallery))
    out.scatter_(1, ranking.indices, ranking.scores)
    return out


@pytest.mark.parametrize("direction", ["i2t", "t2i"])
def test_each_gallery_row_is_scored_by_the_model_that_did_not_see_it(calibration, direction):
    # inverted softmax: u(q) = 1, so a pair's score depends on the query model only through
    # the processors — with LanguageAlignment on texts, those are fold-independent for the
    # image side; check pairs (q, g) of fold f' gallery rows against model f' for image queries
    folds = item_folds(calibration, 3, 0, "test")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        models = _fold_models(
            calibration, folds, direction, [lambda: InvertedSoftmax(beta=20.0)], LanguageAlignment
        )
    query_modality, gallery_modality = (
        ("image", "text") if direction == "i2t" else ("text", "image")
    )
    is_gallery = calibration.modality == gallery_modality
    gallery, gallery_folds = calibration[is_gallery], folds[is_gallery]
    ranker = HeldOutGalleryRanker(models, gallery, gallery_folds)
    for fold in range(3):
        queries = calibration[(folds == fold) & (calibration.modality == query_modality)]
        ranking = ranker.for_fold(fold).search(queries, gallery, len(gallery))
        got = torch.empty(len(queries), len(gallery))
        got.scatter_(1, ranking.indices, ranking.scores)
        # expected: the query's own model transforms the query, the row's model the row
        own = _scores_by_debiased(models[fold], queries, gallery, direction)
        for other in range(3):
            cols = torch.from_numpy(np.flatnonzero(gallery_folds == other))
            if direction == "i2t":  # image queries are not mapped: model `other` scores both
                expected = _scores_by_debiased(models[other], queries, gallery, direction)
            else:  # text queries mapped by their own model, image rows offset by `other`'s Z
                plain = _scores_by_debiased(
                    FoldModel(models[fold].processors), queries, gallery, direction
                )
                offsets = (
                    models[other].scorers[0].gallery_columns(gallery.normalized()).columns[:, 0]
                )
                expected = plain + offsets[None, :]
            torch.testing.assert_close(got[:, cols], expected[:, cols], atol=2e-5, rtol=0)
            if other == fold:  # the query fold's own rows: exactly what its model gives
                torch.testing.assert_close(got[:, cols], own[:, cols], atol=2e-5, rtol=0)


def test_identical_models_rank_as_debiased_does(calibration):
    folds = item_folds(calibration, 3, 0, "test")
    scorers = fit_scorers([InvertedSoftmax(beta=20.0)], calibration, None, "test", "i2t")
    model = FoldModel(None, scorers)
    gallery = calibration.texts
    ranker = HeldOutGalleryRanker([model] * 3, gallery, folds[calibration.modality == "text"])
    queries = calibration.images
    got = ranker.for_fold(1).search(queries, gallery, 5)
    want = Debiased.assemble(ExactRetriever(), None, {"i2t": model.scorers}).search(
        queries, gallery, 5
    )
    assert torch.equal(got.indices, want.indices)
    torch.testing.assert_close(got.scores, want.scores, atol=2e-5, rtol=0)


def test_models_whose_columns_cannot_mix_leave_the_query_model_scoring_every_row(calibration):
    # fold 0's model has one inverted-softmax column, the others one exposure column per
    # caption language: rows cannot be mixed, so fold f's model ranks the whole gallery
    folds = item_folds(calibration, 3, 0, "test")
    is_text = calibration.modality == "text"
    inverted = _fold_models(calibration, folds, "i2t", [lambda: InvertedSoftmax(beta=20.0)])
    exposure = _fold_models(calibration, folds, "i2t", [lambda: ExposureShuffle(width=0.05)])
    models = [inverted[0], exposure[1], exposure[2]]
    gallery = calibration.texts
    ranker = HeldOutGalleryRanker(models, gallery, folds[is_text])
    for fold in range(3):
        queries = calibration[(folds == fold) & (calibration.modality == "image")]
        got = ranker.for_fold(fold).search(queries, gallery, 3)
        want = Debiased.assemble(ExactRetriever(), None, {"i2t": models[fold].scorers}).search(
            queries, gallery, 3
        )
        assert torch.equal(got.indices, want.indices)


def test_arguments_are_checked(calibration):
    gallery = calibration.texts
    with pytest.raises(ValueError, match=r"gallery_folds: expected shape \(\d+,\), got \(3,\)"):
        HeldOutGalleryRanker([FoldModel(None)], gallery, np.zeros(3, dtype=int))
    with pytest.raises(ValueError, match=r"gallery_folds: expected folds in \[0, 1\)"):
        HeldOutGalleryRanker([FoldModel(None)], gallery, np.ones(len(gallery), dtype=int))
    ranker = HeldOutGalleryRanker([FoldModel(None)], gallery, np.zeros(len(gallery), dtype=int))
    with pytest.raises(ValueError, match=r"fold: expected an int in \[0, 1\), got 2"):
        ranker.for_fold(2)
    with pytest.raises(ValueError, match="gallery: expected the ranker's calibration gallery"):
        ranker.for_fold(0).search(calibration.images, gallery[:5], 1)
