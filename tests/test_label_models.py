"""Label models: the LDA classifier, temperature and ECE against direct formulas, filling."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

from xcm_debias import EmbeddingSet
from xcm_debias.calibration.labels import (
    LabelClassifier,
    LabelModels,
    expected_calibration_error,
    fit_lda,
    fit_temperature,
)
from xcm_debias.fitted import read_config
from xcm_debias.soft_labels import confident_name, inferred_rows, soft_labels

LANGS = ("de", "en", "sw")


def corpus(n_items: int = 30, dim: int = 12, strength: float = 8.0, seed: int = 0) -> EmbeddingSet:
    """Items with one image (culture cycling over LANGS) and one caption per language; languages
    and cultures are offsets of size ``strength`` along fixed random directions (the same for
    every ``seed``, which draws the content and the noise)."""
    directions = torch.Generator().manual_seed(1234)
    lang_dir = strength * torch.randn(len(LANGS), dim, generator=directions) / math.sqrt(dim)
    cult_dir = strength * torch.randn(len(LANGS), dim, generator=directions) / math.sqrt(dim)
    g = torch.Generator().manual_seed(seed)
    content = torch.randn(n_items, dim, generator=g)
    cult = torch.arange(n_items) % len(LANGS)
    items = [f"item{i}" for i in range(n_items)]
    parts = [
        EmbeddingSet(
            content + cult_dir[cult] + 0.2 * torch.randn(n_items, dim, generator=g),
            modality="image",
            item=items,
            culture=[LANGS[int(c)] for c in cult],
        )
    ]
    for li, lang in enumerate(LANGS):
        x = content + lang_dir[li] + 0.2 * torch.randn(n_items, dim, generator=g)
        parts.append(EmbeddingSet(x, modality="text", item=items, language=[lang] * n_items))
    return EmbeddingSet.concat(parts)


def test_lda_matches_sklearn_without_shrinkage() -> None:
    """``fit_lda`` with shrinkage 'none' is sklearn's LDA decision function (lsqr solver), up to
    the 10⁻⁶ relative ridge that keeps Σ invertible."""
    rng = np.random.default_rng(0)
    z = rng.normal(size=(90, 5)) + np.repeat(rng.normal(size=(3, 5)), 30, axis=0)
    codes = np.repeat(np.arange(3), 30)
    codes[::7] = 2  # unequal class sizes: priors enter the bias
    weight, bias = fit_lda(torch.from_numpy(z), codes, 3, "none")
    reference = LinearDiscriminantAnalysis(solver="lsqr").fit(z, codes)
    ours = (torch.from_numpy(z) @ weight + bias).numpy()
    np.testing.assert_allclose(ours, reference.decision_function(z), rtol=1e-4, atol=1e-4)


def test_temperature_matches_the_closed_form_on_two_classes() -> None:
    """Logits ±a on two classes with a share q of rows right: the NLL of sigmoid(2a/T) is least
    where sigmoid(2a/T) = q, i.e. T = 2a / logit(q)."""
    a, n, n_right = 3.0, 100, 80
    logits = torch.tensor([[a, -a]] * n, dtype=torch.float64)
    y = torch.tensor([0] * n_right + [1] * (n - n_right))
    q = n_right / n
    assert fit_temperature(logits, y) == pytest.approx(2 * a / math.log(q / (1 - q)), rel=1e-5)


def test_ece_by_hand() -> None:
    """Two bins: confidences 0.95 (2 rows, 1 right) and 0.55 (2 rows, both right):
    ECE = ½|0.5 − 0.95| + ½|1 − 0.55| = 0.45."""
    probs = torch.tensor([[0.95, 0.05], [0.95, 0.05], [0.55, 0.45], [0.45, 0.55]])
    y = torch.tensor([0, 1, 0, 1])
    assert expected_calibration_error(probs, y) == pytest.approx(0.45)


def test_classifier_learns_languages_and_records_cross_fitted_scores() -> None:
    data = corpus()
    model = LabelClassifier("language", "text").fit(data)
    meta = model.fitted_meta
    assert meta["classes"] == list(LANGS) and meta["n_rows"] == 90 and meta["n_folds"] == 5
    assert meta["accuracy"] >= 0.95 and 0.0 <= meta["ece"] <= 0.05
    test = corpus(seed=1).texts
    probs = model.predict_proba(test)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    truth = np.searchsorted(LANGS, test.language)
    assert (probs.argmax(axis=1) == truth).mean() >= 0.95


def test_classifier_errors_are_clear() -> None:
    data = corpus()
    with pytest.raises(ValueError, match=r"at least 2 classes of 'language'.*\['de'\]"):
        LabelClassifier("language", "text").fit(data.where(language="de"))
    one_sw = data.texts[np.flatnonzero(data.texts.language != "sw").tolist() + [60]]
    with pytest.raises(ValueError, match="at least 2 labelled rows per class, got 1 for 'sw'"):
        LabelClassifier("language", "text").fit(one_sw)
    bare = EmbeddingSet(data.embeddings, modality=data.modality, item=data.item)
    with pytest.raises(ValueError, match="expected a 'culture' label on some calibration image"):
        LabelClassifier("culture", "image").fit(bare)
    with pytest.raises(ValueError, match="expected calibration image rows, got none"):
        LabelClassifier("culture", "image").fit(data.texts)
    with pytest.raises(ValueError, match="modality: expected 'text' or 'image'"):
        LabelClassifier("language", "audio").fit(data)
    with pytest.raises(ValueError, match="threshold: expected a number in \\[0, 1\\]"):
        LabelModels(threshold=1.5).fit(data)
    with pytest.raises(ValueError, match="labels: expected names among"):
        LabelModels(labels=("objects",)).fit(data)
    model = LabelClassifier("language", "text").fit(data)
    with pytest.raises(ValueError, match="dimension 12 \\(as in calibration\\), got 3"):
        model.predict_proba(EmbeddingSet(torch.ones(2, 3), modality="text"))


def test_fill_keeps_labels_infers_the_rest_and_thresholds() -> None:
    data = corpus()
    models = LabelModels().fit(data)
    test = corpus(seed=1)
    language = test.language.copy()
    missing = (test.modality == "text") & (np.arange(len(test)) % 2 == 0)
    language[missing] = ""
    partial = test.with_labels(language=language, culture=[""] * len(test))
    filled = models.fill(partial)
    assert inferred_rows(filled, "language").tolist() == missing.tolist()
    assert (filled.language[~missing] == test.language[~missing]).all()
    assert (filled.language[missing] == test.language[missing]).mean() >= 0.95
    soft = soft_labels(filled, "language", list(LANGS))
    np.testing.assert_allclose(soft[missing].sum(axis=1), 1.0, rtol=1e-5)
    assert (soft[~missing] == 0).all()
    images = filled.modality == "image"
    assert inferred_rows(filled, "culture").tolist() == images.tolist()
    assert models.fill(filled) is filled  # nothing left to infer

    # a row whose largest posterior is below the threshold is marked not confident
    weak, partial = (
        corpus(strength=3.0),
        corpus(strength=3.0, seed=1).with_labels(language=language),
    )
    probs = LabelModels().fit(weak).models["language"].predict_proba(partial[missing])
    threshold = float(np.median(probs.max(axis=1)))
    strict = LabelModels(threshold=threshold).fit(weak).fill(partial)
    np.testing.assert_allclose(soft_labels(strict, "language", list(LANGS))[missing], probs)
    sure = strict.extra[confident_name("language")]
    assert sure[missing].tolist() == (probs.max(axis=1) >= threshold).tolist()
    assert sure[~missing].all() and 0 < (~sure).sum() < missing.sum()


def test_summary_is_plain_json_and_skips_what_cannot_be_learnt() -> None:
    data = corpus()
    no_culture = data.with_labels(culture=[""] * len(data))
    summary = LabelModels().fit(no_culture).summary()
    assert json.loads(json.dumps(summary)) == summary
    assert set(summary) == {"language", "culture"}
    assert "expected a 'culture' label" in summary["culture"]["skipped"]
    assert summary["language"]["classes"] == list(LANGS)
    assert summary["language"]["accuracy"] >= 0.95


def test_restore_gives_the_same_posteriors(tmp_path) -> None:
    data = corpus()
    models = LabelModels().fit(data)
    path = models.save(tmp_path / "labels.safetensors")
    again = LabelModels.restore(read_config(path), load_file(str(path)))
    for label in ("language", "culture"):
        rows = data[data.modality == models.models[label].modality]
        np.testing.assert_array_equal(
            again.models[label].predict_proba(rows), models.models[label].predict_proba(rows)
        )


def test_one_row_per_class_falls_back_to_the_nearest_mean() -> None:
    """No within-class spread: Σ = I, so the logits are z·m_c − ½|m_c|² + log π_c."""
    z = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]], dtype=torch.float64)
    weight, bias = fit_lda(z, np.array([0, 1]), 2, "ledoit-wolf")
    torch.testing.assert_close(weight, z.T)
    torch.testing.assert_close(
        bias, torch.tensor([-0.5, -2.0], dtype=torch.float64) + math.log(0.5)
    )
