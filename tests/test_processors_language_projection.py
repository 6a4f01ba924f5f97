"""LanguageProjection: parity with concept-erasure, the LEACE guarantee, LIR by hand, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from concept_erasure import OracleEraser
from concept_erasure.leace import LeaceFitter
from sklearn.covariance import LedoitWolf
from sklearn.linear_model import LogisticRegression
from synthetic_processors import make_texts, make_world

from xcm_debias import EmbeddingSet
from xcm_debias.processors import LanguageProjection, NotFittedError, PostProcessor


def _one_hot(codes: np.ndarray) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.as_tensor(codes), int(codes.max()) + 1).double()


def _erased(method: str, data: EmbeddingSet, **kwargs: object) -> torch.Tensor:
    proc = LanguageProjection(method=method, **kwargs).fit(data)
    return proc.transform(data).embeddings.double()


def test_center_equals_oracle_eraser_on_one_hot_labels() -> None:
    # 2% of rows in one language: OracleEraser's default svd_tol=0.01 would skip it
    codes = np.r_[np.zeros(196, dtype=int), np.ones(100, dtype=int), np.full(4, 2)]
    data, x, _ = make_texts(300, 12, seed=3)
    data = data.with_labels(language=np.array(["de", "en", "sw"])[codes])
    ours = _erased("center", data)
    z = _one_hot(codes)
    reference = OracleEraser.fit(x, z, svd_tol=1e-12)(x, z)
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=0)
    assert (ours - x)[codes == 2].abs().max() > 1e-2  # the small language was moved


def test_subspace_equals_leace_eraser_orth() -> None:
    data, x, codes = make_texts(300, 12, seed=4)
    eraser = LeaceFitter.fit(x, _one_hot(codes), method="orth", svd_tol=1e-9).eraser
    torch.testing.assert_close(_erased("subspace", data), eraser(x), atol=1e-5, rtol=0)


def test_leace_equals_leace_eraser_without_shrinkage() -> None:
    data, x, codes = make_texts(300, 12, seed=5)
    eraser = LeaceFitter.fit(
        x, _one_hot(codes), shrinkage=False, constrain_cov_trace=False, svd_tol=1e-9
    ).eraser
    torch.testing.assert_close(
        _erased("leace", data, shrinkage="none"), eraser(x), atol=1e-5, rtol=0
    )


def test_leace_with_ledoit_wolf_equals_the_dense_formula() -> None:
    # x − Σ_xz(Σ_xzᵀΣ⁻¹Σ_xz)⁺Σ_xzᵀΣ⁻¹(x − μ) with sklearn's Ledoit–Wolf Σ, in numpy
    data, x, codes = make_texts(60, 20, seed=6)
    xn = x.numpy()
    z = _one_hot(codes).numpy()
    sigma = LedoitWolf().fit(xn).covariance_
    sigma_xz = (xn - xn.mean(0)).T @ (z - z.mean(0)) / len(xn)
    inv = np.linalg.inv(sigma)
    proj = sigma_xz @ np.linalg.pinv(sigma_xz.T @ inv @ sigma_xz, rcond=1e-8) @ sigma_xz.T @ inv
    reference = xn - (xn - xn.mean(0)) @ proj.T
    np.testing.assert_allclose(_erased("leace", data).numpy(), reference, atol=1e-5)


@pytest.mark.parametrize("method", ["subspace", "leace"])
def test_three_languages_remove_a_rank_two_subspace(method: str) -> None:
    data, x, codes = make_texts(300, 12, seed=7)
    removed = x - _erased(method, data)
    s = torch.linalg.svdvals(removed)
    assert s[1] > 1e-2 * s[0] and s[2] < 1e-5 * s[0]  # exactly K − 1 = 2 directions
    # the trap we avoid: integer labels as one ordinal column erase a single direction
    ordinal = LeaceFitter.fit(x, torch.as_tensor(codes, dtype=torch.float64)[:, None], svd_tol=1e-9)
    s_ordinal = torch.linalg.svdvals(x - ordinal.eraser(x))
    assert s_ordinal[1] < 1e-5 * s_ordinal[0]


def test_leace_guarantee_no_linear_probe_beats_chance_and_means_coincide() -> None:
    data, x, codes = make_texts(600, 10, signal=1.5, seed=8)
    before = LogisticRegression(max_iter=2000).fit(x.numpy(), codes)
    assert before.score(x.numpy(), codes) > 0.9
    erased = _erased("leace", data)
    for lang in range(3):
        torch.testing.assert_close(erased[codes == lang].mean(0), erased.mean(0), atol=1e-5, rtol=0)
    probe = LogisticRegression(C=1e4, max_iter=5000, tol=1e-10).fit(erased.numpy(), codes)
    assert np.abs(probe.coef_).max() < 1e-2  # the optimum is the constant predictor
    assert probe.score(erased.numpy(), codes) < 1 / 3 + 0.06


def test_lir_removes_each_languages_top_singular_directions() -> None:
    data, x, codes = make_texts(90, 8, seed=9)
    out = _erased("lir", data, rank=2)
    for lang in range(3):
        rows = x[codes == lang]
        _, _, vh = torch.linalg.svd(rows, full_matrices=False)  # uncentred, as Yang et al.
        expected = rows - rows @ vh[:2].T @ vh[:2]
        torch.testing.assert_close(out[codes == lang], expected, atol=1e-5, rtol=0)


def test_images_are_unchanged_by_default_and_subspace_can_move_them() -> None:
    world = make_world(n_items=24, dim=8)
    images = world.modality == "image"
    centred = LanguageProjection(method="center").fit(world).transform(world)
    torch.testing.assert_close(centred.embeddings[images], world.embeddings[images])
    default = LanguageProjection(method="leace").fit(world).transform(world)
    torch.testing.assert_close(default.embeddings[images], world.embeddings[images])
    projected = LanguageProjection(method="subspace", apply_to=("text", "image"))
    projected = projected.fit(world).transform(world)
    assert (projected.embeddings[images] - world.embeddings[images]).abs().max() > 1e-3


def test_center_on_images_is_refused() -> None:
    world = make_world(n_items=12, dim=8)
    with pytest.raises(ValueError, match="images have none"):
        LanguageProjection(method="center", apply_to=("text", "image")).fit(world)


def test_unseen_language_is_left_unchanged_with_a_warning() -> None:
    data, _, _ = make_texts(60, 6, seed=10)
    proc = LanguageProjection(method="center").fit(data)
    new = EmbeddingSet(data.embeddings[:4], modality="text", language=["en", "xx", "xx", "de"])
    with pytest.warns(UserWarning, match=r"\['xx'\] not seen at fit"):
        out = proc.transform(new)
    torch.testing.assert_close(out.embeddings[1:3], data.embeddings[1:3].float())


def test_errors_are_explicit() -> None:
    data, _, _ = make_texts(60, 6, seed=11)
    with pytest.raises(NotFittedError):
        LanguageProjection().transform(data)
    unlabeled = EmbeddingSet(data.embeddings, modality="text")
    with pytest.raises(
        ValueError, match=r"LanguageProjection\(method='leace'\).fit: expected a 'language'"
    ):
        LanguageProjection().fit(unlabeled)
    few = data.with_labels(language=["en"] * 59 + ["sw"])
    with pytest.raises(ValueError, match="got 1 for language 'sw'"):
        LanguageProjection().fit(few)
    with pytest.raises(ValueError, match="at least 2 languages"):
        LanguageProjection().fit(data.with_labels(language=["en"] * 60))
    with pytest.raises(ValueError, match="method"):
        LanguageProjection(method="pca").fit(data)
    with pytest.raises(ValueError, match="at least 5 calibration rows per language"):
        LanguageProjection(method="lir", rank=5).fit(data[:12])


@pytest.mark.parametrize("method", ["center", "subspace", "leace", "lir"])
def test_save_load_gives_identical_outputs(method: str, tmp_path: object) -> None:
    world = make_world(n_items=24, dim=8)
    proc = LanguageProjection(method=method).fit(world)
    path = proc.save(tmp_path / f"{method}.safetensors")  # type: ignore[operator]
    loaded = PostProcessor.load(path)
    assert loaded.get_params() == proc.get_params()
    assert torch.equal(loaded.transform(world).embeddings, proc.transform(world).embeddings)
