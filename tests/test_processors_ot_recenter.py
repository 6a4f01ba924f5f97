"""OTRecenter: parity with POT's Gaussian maps and barycenter, special cases by hand, errors."""

from __future__ import annotations

import numpy as np
import ot
import pytest
import torch
from sklearn.covariance import LedoitWolf
from synthetic_processors import interleaved_texts, make_texts, make_world, transform_with_unseen

from xcm_debias import EmbeddingSet
from xcm_debias.processors import OTRecenter, PostProcessor, _stats
from xcm_debias.processors.ot_recenter import bures_barycenter


def _groups(seed: int = 0, dim: int = 5, sizes: tuple[int, ...] = (80, 50, 30)) -> EmbeddingSet:
    """Captions of three languages with different means and covariances (not normalised)."""
    g = torch.Generator().manual_seed(seed)
    rows, langs = [], []
    for k, (lang, n) in enumerate(zip(("de", "en", "sw"), sizes, strict=True)):
        mix = torch.randn(dim, dim, generator=g, dtype=torch.float64) * (0.3 + 0.3 * k)
        rows.append(torch.randn(n, dim, generator=g, dtype=torch.float64) @ mix + k)
        langs += [lang] * n
    return EmbeddingSet(torch.cat(rows), modality="text", language=langs)


def _pot_reference(
    data: EmbeddingSet, weights: np.ndarray | None, diagonal: bool = False
) -> np.ndarray:
    x = data.embeddings.double().numpy()
    langs = sorted(set(data.language.tolist()))
    parts = [x[data.language == lang] for lang in langs]
    means = np.stack([p.mean(0) for p in parts])
    covs = np.stack([LedoitWolf().fit(p).covariance_ for p in parts])
    if diagonal:
        covs = np.stack([np.diag(np.diag(c)) for c in covs])
    mb, cb = ot.gaussian.bures_wasserstein_barycenter(
        means, covs, weights=weights, num_iter=2000, eps=1e-12
    )
    out = x.copy()
    for lang, part, mean, cov in zip(langs, parts, means, covs, strict=True):
        a, b = ot.gaussian.bures_wasserstein_mapping(mean, mb, cov, cb)
        out[data.language == lang] = part @ a + b
    return out


def test_gaussian_equals_pot_mapping_to_pot_barycenter() -> None:
    data = _groups()
    ours = OTRecenter(method="gaussian", normalize=False, tol=1e-12).fit(data).transform(data)
    np.testing.assert_allclose(
        ours.embeddings.double().numpy(), _pot_reference(data, None), atol=1e-5
    )


def test_count_weighting_equals_pot_with_count_weights() -> None:
    data = _groups(seed=1)
    ours = OTRecenter(method="gaussian", weighting="count", normalize=False, tol=1e-12).fit(data)
    counts = np.array([80, 50, 30], dtype=float)
    reference = _pot_reference(data, counts / counts.sum())
    np.testing.assert_allclose(
        ours.transform(data).embeddings.double().numpy(), reference, atol=1e-5
    )


def test_diag_equals_pot_on_diagonal_covariances() -> None:
    data = _groups(seed=2)
    ours = OTRecenter(method="diag", normalize=False).fit(data).transform(data)
    np.testing.assert_allclose(
        ours.embeddings.double().numpy(), _pot_reference(data, None, diagonal=True), atol=1e-5
    )


def test_barycenter_satisfies_its_fixed_point_equation() -> None:
    g = torch.Generator().manual_seed(3)
    a = torch.randn(4, 6, 6, generator=g, dtype=torch.float64)
    covs = a @ a.mT + 0.1 * torch.eye(6, dtype=torch.float64)
    w = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    bary, maps, _ = bures_barycenter(covs, w, tol=1e-13)
    evals, evecs = torch.linalg.eigh(bary)
    root = evecs @ torch.diag(evals.sqrt()) @ evecs.T
    inner = root @ covs @ root
    e, v = torch.linalg.eigh(inner)
    residual = bary - (w[:, None, None] * (v * e.sqrt().unsqueeze(-2)) @ v.mT).sum(0)
    assert residual.abs().max() < 1e-9
    # each map pushes its Gaussian onto the barycenter: A Σ_l A = Σ̄
    torch.testing.assert_close(maps @ covs @ maps, bary.expand_as(covs), atol=1e-8, rtol=0)


def test_lowrank_with_full_rank_equals_gaussian() -> None:
    data = _groups(seed=4)
    full = OTRecenter(method="gaussian", normalize=False).fit(data).transform(data)
    low = OTRecenter(method="lowrank", rank=5, normalize=False).fit(data).transform(data)
    torch.testing.assert_close(low.embeddings, full.embeddings, atol=1e-5, rtol=0)


def test_mean_moves_every_language_mean_onto_the_average_of_means() -> None:
    data = _groups(seed=5)
    out = OTRecenter(method="mean", normalize=False).fit(data).transform(data).embeddings.double()
    x = data.embeddings.double()
    means = [x[data.language == lang].mean(0) for lang in ("de", "en", "sw")]
    target = sum(means) / 3  # uniform weights, not the row-weighted mean
    for lang in ("de", "en", "sw"):
        torch.testing.assert_close(out[data.language == lang].mean(0), target, atol=1e-5, rtol=0)


def test_modality_mean_closes_the_modality_gap_and_moves_images() -> None:
    world = make_world(n_items=30, dim=8)
    proc = OTRecenter(groups="modality", method="mean").fit(world)
    out = proc.transform(world).embeddings
    images, texts = world.modality == "image", world.modality == "text"
    gap_before = (world.embeddings[images].mean(0) - world.embeddings[texts].mean(0)).norm()
    gap_after = (out[images].mean(0) - out[texts].mean(0)).norm()
    assert gap_before > 0.1 and gap_after < 1e-5


def test_language_groups_leave_images_and_unseen_languages_unchanged() -> None:
    world = make_world(n_items=24, dim=8)
    proc = OTRecenter(method="diag").fit(world)
    out = proc.transform(world)
    images = world.modality == "image"
    torch.testing.assert_close(out.embeddings[images], world.embeddings[images])
    new = EmbeddingSet(world.texts.embeddings[:2], modality="text", language=["xx", "en"])
    with pytest.warns(UserWarning, match="not seen at fit"):
        moved = proc.transform(new)
    torch.testing.assert_close(moved.embeddings[0], new.embeddings[0])


def test_errors_are_explicit() -> None:
    data, _, _ = make_texts(30, 4, seed=6)
    with pytest.raises(ValueError, match="got 1 for language 'sw'"):
        OTRecenter(method="gaussian").fit(data.with_labels(language=["en"] * 29 + ["sw"]))
    with pytest.raises(ValueError, match="images have none"):
        OTRecenter(apply_to=("image", "text")).fit(make_world(n_items=6, dim=4))
    with pytest.raises(ValueError, match="at least 2 modality groups"):
        OTRecenter(groups="modality").fit(data)
    with pytest.raises(ValueError, match="method"):
        OTRecenter(method="full").fit(data)
    with pytest.raises(ValueError, match="expected a 'language'"):
        OTRecenter().fit(EmbeddingSet(data.embeddings, modality="text"))


@pytest.mark.parametrize("method", ["mean", "diag", "lowrank", "gaussian"])
def test_save_load_gives_identical_outputs(method: str, tmp_path: object) -> None:
    world = make_world(n_items=24, dim=8)
    proc = OTRecenter(method=method, rank=3).fit(world)
    loaded = PostProcessor.load(proc.save(tmp_path / "o.safetensors"))  # type: ignore[operator]
    assert torch.equal(loaded.transform(world).embeddings, proc.transform(world).embeddings)


def test_gaussian_transform_equals_the_per_row_map_of_each_language(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Languages interleaved row by row, an unseen language, float64 input, chunks of 16 rows:
    row i is ``target + (unit(x_i) − m_l) A_l`` for its language l (unseen: ``unit(x_i)``)."""
    monkeypatch.setattr(_stats, "CHUNK_BYTES", 16 * 4 * 5)
    proc = OTRecenter(method="gaussian").fit(_groups())
    langs, x, data = interleaved_texts(["de", "en", "sw"], 5, seed=2)
    out = transform_with_unseen(proc, data)
    for i, lang in enumerate(langs.tolist()):
        row = x[i].float() / x[i].float().norm()
        if lang != "xx":
            g = ["de", "en", "sw"].index(lang)
            row = proc.target + (row - proc.means[g]) @ proc.maps[g]
        torch.testing.assert_close(out[i], row, rtol=1e-5, atol=1e-5)
