"""LanguageAlignment: ridge vs sklearn, Procrustes vs scipy, λ selection, pivots, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.linalg import orthogonal_procrustes
from sklearn.linear_model import Ridge
from synthetic_processors import interleaved_texts, make_world, transform_with_unseen

from xcm_debias import EmbeddingSet
from xcm_debias.processors import LanguageAlignment, PostProcessor, _stats
from xcm_debias.processors.language_alignment import RidgePath, ridge_map


def _translations(
    n_items: int, dim: int, maps: dict[str, torch.Tensor], noise: float = 0.0, seed: int = 0
) -> tuple[EmbeddingSet, torch.Tensor]:
    """Captions of each item in every language: ``content @ maps[lang]`` (+ noise), not normalised."""
    g = torch.Generator().manual_seed(seed)
    content = torch.randn(n_items, dim, generator=g, dtype=torch.float64)
    rows, langs, items = [], [], []
    for lang, m in maps.items():
        rows.append(
            content @ m + noise * torch.randn(n_items, dim, generator=g, dtype=torch.float64)
        )
        langs += [lang] * n_items
        items += [f"i{i}" for i in range(n_items)]
    x = torch.cat(rows)
    return EmbeddingSet(x, modality="text", language=langs, item=items), content


def _rotation(dim: int, seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(
        torch.randn(dim, dim, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    )
    return q


@pytest.mark.parametrize("n", [50, 5])
def test_ridge_map_equals_sklearn_ridge_on_the_residual(n: int) -> None:
    g = torch.Generator().manual_seed(n)
    x = torch.randn(n, 8, dtype=torch.float64, generator=g)
    t = torch.randn(n, 8, dtype=torch.float64, generator=g)
    w = ridge_map(x, t, 0.7)
    ridge = Ridge(alpha=0.7, fit_intercept=False).fit(x.numpy(), (t - x).numpy())
    np.testing.assert_allclose(w.numpy() - np.eye(8), ridge.coef_.T, atol=1e-10)
    path = RidgePath(x, t)  # held-out errors without forming W(λ)
    xv, tv = (
        torch.randn(7, 8, dtype=torch.float64, generator=g),
        torch.randn(7, 8, dtype=torch.float64, generator=g),
    )
    for lam, err in zip((0.1, 3.0), path.squared_errors(xv, tv, (0.1, 3.0)), strict=True):
        assert err == pytest.approx(
            float((xv @ ridge_map(x, t, lam) - tv).square().sum()), rel=1e-9
        )


def test_ridge_transform_equals_sklearn_fit_on_centroids() -> None:
    world = make_world(n_items=30, dim=8, seed=1)
    proc = LanguageAlignment(lam=0.5).fit(world)
    texts = world.texts
    x = texts.embeddings.double().numpy()
    items = np.unique(texts.item, return_inverse=True)[1]
    centroid = np.stack([x[items == i].mean(0) for i in range(items.max() + 1)])[items]
    out = proc.transform(texts).embeddings.numpy()
    for lang in world.languages():
        rows = texts.language == lang
        ridge = Ridge(alpha=0.5, fit_intercept=False).fit(x[rows], centroid[rows] - x[rows])
        np.testing.assert_allclose(out[rows], x[rows] + ridge.predict(x[rows]), atol=1e-5)


def test_procrustes_equals_scipy_and_recovers_a_rotation_exactly() -> None:
    rot = _rotation(6, 2)
    data, content = _translations(40, 6, {"en": torch.eye(6, dtype=torch.float64), "sw": rot})
    proc = LanguageAlignment(method="procrustes", target="en", normalize=False).fit(data)
    sw = data.language == "sw"
    expected, _ = orthogonal_procrustes(data.embeddings[sw].numpy(), content.numpy())
    np.testing.assert_allclose(proc.maps[1].double().numpy(), expected, atol=1e-5)
    torch.testing.assert_close(
        proc.transform(data).embeddings[sw].double(), content, atol=1e-5, rtol=0
    )
    torch.testing.assert_close(proc.maps[0], torch.eye(6))  # the pivot's own map is the identity


def test_lam_is_small_for_exact_translations_and_large_for_unrelated_ones() -> None:
    mix = torch.eye(10, dtype=torch.float64) + 0.4 * torch.randn(
        10, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(3)
    )
    exact, _ = _translations(
        60, 10, {"en": torch.eye(10, dtype=torch.float64), "sw": mix}, noise=0.01
    )
    fitted = LanguageAlignment(target="en", normalize=False).fit(exact)
    assert fitted.fitted_meta["lam"]["sw"] <= 0.1
    # "sw" captions already aligned, pivot captions = the same content + independent noise:
    # E[target | sw caption] is the caption itself, so held-out error prefers W ≈ I (large λ)
    aligned, content = _translations(60, 10, {"en": torch.eye(10, dtype=torch.float64)})
    noisy = content + torch.randn(
        content.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(4)
    )
    both = EmbeddingSet(
        torch.cat([noisy, content]),
        modality="text",
        language=["en"] * 60 + ["sw"] * 60,
        item=list(aligned.item) * 2,
    )
    fitted = LanguageAlignment(target="en", normalize=False).fit(both)
    assert fitted.fitted_meta["lam"]["sw"] >= 30.0


def test_images_and_unseen_languages_are_unchanged() -> None:
    world = make_world(n_items=24, dim=8)
    proc = LanguageAlignment().fit(world)
    out = proc.transform(world)
    images = world.modality == "image"
    torch.testing.assert_close(out.embeddings[images], world.embeddings[images])
    new = EmbeddingSet(world.texts.embeddings[:3], modality="text", language=["xx", "en", "xx"])
    with pytest.warns(UserWarning, match="not seen at fit"):
        moved = proc.transform(new)
    torch.testing.assert_close(moved.embeddings[[0, 2]], new.embeddings[[0, 2]])


def test_errors_are_explicit() -> None:
    world = make_world(n_items=12, dim=6)
    texts = world.texts
    lonely = texts.with_labels(item=[f"solo{i}" for i in range(len(texts))])
    with pytest.raises(ValueError, match="learns from translations"):
        LanguageAlignment().fit(lonely)
    with pytest.raises(ValueError, match="pivot language 'fr' has no calibration captions"):
        LanguageAlignment(target="fr").fit(world)
    with pytest.raises(ValueError, match="lam"):
        LanguageAlignment(lam=-1.0).fit(world)
    with pytest.raises(ValueError, match="expected a 'language'"):
        LanguageAlignment().fit(EmbeddingSet(texts.embeddings, modality="text"))


@pytest.mark.parametrize("method", ["ridge", "procrustes"])
def test_save_load_gives_identical_outputs(method: str, tmp_path: object) -> None:
    world = make_world(n_items=24, dim=8)
    proc = LanguageAlignment(method=method).fit(world)
    loaded = PostProcessor.load(proc.save(tmp_path / "a.safetensors"))  # type: ignore[operator]
    assert loaded.fitted_meta == proc.fitted_meta
    assert torch.equal(loaded.transform(world).embeddings, proc.transform(world).embeddings)


def _assert_rows_follow_their_maps(
    proc: LanguageAlignment, dim: int, atol: float
) -> tuple[EmbeddingSet, torch.Tensor]:
    """Interleaved languages and an unseen one, float64 input: row i of the transform is
    ``unit(x_i) @ W_lang(i)`` (unseen: ``unit(x_i)``). Returns the input and the output."""
    languages = proc.fitted_meta["languages"]
    langs, x, data = interleaved_texts(languages, dim, seed=0)
    out = transform_with_unseen(proc, data)
    for i, lang in enumerate(langs.tolist()):
        row = x[i].float() / x[i].float().norm()
        expected = row @ proc.maps[languages.index(lang)] if lang in languages else row
        torch.testing.assert_close(out[i], expected, rtol=1e-5, atol=atol)
    return data, out


@pytest.mark.parametrize("method", ["ridge", "procrustes"])
def test_transform_equals_the_per_row_map_of_each_language(
    method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Languages interleaved row by row, an unseen language, float64 input, chunks of 16 rows:
    row i is ``unit(x_i) @ W_lang(i)`` (unseen: ``unit(x_i)``)."""
    monkeypatch.setattr(_stats, "CHUNK_BYTES", 16 * 4 * 8)
    world = make_world(n_items=24, dim=8)
    proc = LanguageAlignment(method=method).fit(world)
    _assert_rows_follow_their_maps(proc, 8, atol=1e-6)


@pytest.mark.parametrize("target", ["centroid", "en"])
def test_small_calibration_keeps_the_low_rank_factors_and_equals_the_full_maps(
    target: str, monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    """12 captions per language at d = 64 (rank 12 ≤ 64/4): transforms go through
    ``x + (x left) right`` and equal ``unit(x) @ W`` row by row (interleaved languages, an
    unseen one, float64 input, chunks of 16 rows); saved and loaded, the factors come back."""
    monkeypatch.setattr(_stats, "CHUNK_BYTES", 16 * 4 * 64)
    world = make_world(n_items=12, dim=64)
    proc = LanguageAlignment(target=target).fit(world)
    languages = proc.fitted_meta["languages"]
    assert proc.left.shape == (len(languages), 64, 12)
    assert proc.right.shape == (len(languages), 12, 64)
    eye = torch.eye(64).expand(len(languages), 64, 64)
    torch.testing.assert_close(eye + proc.left @ proc.right, proc.maps, atol=1e-5, rtol=0)
    if target != "centroid":  # the pivot's map is the identity: zero factors
        assert not proc.left[languages.index(target)].any()
    data, out = _assert_rows_follow_their_maps(proc, 64, atol=1e-5)
    loaded = PostProcessor.load(proc.save(tmp_path / "low_rank.safetensors"))  # type: ignore[operator]
    torch.testing.assert_close(loaded.left, proc.left, rtol=0, atol=0)
    with pytest.warns(UserWarning, match="not seen at fit"):
        assert torch.equal(loaded.transform(data).embeddings, out)


def test_large_calibration_and_procrustes_keep_full_maps_only() -> None:
    world = make_world(n_items=24, dim=8)  # 24 captions per language > 8/4: full rank
    assert not hasattr(LanguageAlignment().fit(world), "left")
    small = make_world(n_items=12, dim=64)
    ridge = LanguageAlignment().fit(small)
    assert hasattr(ridge, "left")
    ridge.fit(world)  # a refit that no longer qualifies drops the factors
    assert not hasattr(ridge, "left")
    assert not hasattr(LanguageAlignment(method="procrustes").fit(small), "left")
