"""LanguageAlignment(target="image") against sklearn; LanguageAlignment(method="contrastive"):
the InfoNCE loss by hand, Adam steps against an independent numpy implementation, the step count
chosen on held-out items, save/load, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.linear_model import Ridge
from synthetic_processors import make_world

from xcm_debias.processors import LanguageAlignment, PostProcessor
from xcm_debias.processors.contrastive_map import PATIENCE, contrastive_steps, info_nce
from xcm_debias.processors.language_alignment import ridge_map


def test_image_target_equals_sklearn_ridge_onto_the_mean_of_the_item_images() -> None:
    """Two images per item, and the images of 5 items removed: every language (no identity
    pivot) is mapped by ridge onto the mean of its item's unit image rows, fitted on the
    captions whose item still has an image."""
    world = make_world(n_items=30, dim=8, images_per_item=2, seed=3)
    dropped = {f"item{i}" for i in range(5)}
    keep = ~((world.modality == "image") & np.isin(world.item, list(dropped)))
    data = world[keep]
    proc = LanguageAlignment(target="image", lam=0.5).fit(data)
    images = data.images
    unit = images.embeddings.double() / images.embeddings.double().norm(dim=1, keepdim=True)
    mean_image = {i: unit[images.item == i].mean(0).numpy() for i in np.unique(images.item)}
    texts = data.texts
    x = texts.embeddings.double() / texts.embeddings.double().norm(dim=1, keepdim=True)
    x = x.numpy()
    out = proc.transform(texts).embeddings.numpy()
    for lang in texts.languages():
        rows = np.flatnonzero((texts.language == lang) & ~np.isin(texts.item, list(dropped)))
        target = np.stack([mean_image[i] for i in texts.item[rows]])
        ridge = Ridge(alpha=0.5, fit_intercept=False).fit(x[rows], target - x[rows])
        every = texts.language == lang
        np.testing.assert_allclose(out[every], x[every] + ridge.predict(x[every]), atol=1e-5)


def test_image_target_needs_calibration_images() -> None:
    texts = make_world(n_items=12, dim=6).texts
    with pytest.raises(ValueError, match="'image' needs calibration image rows"):
        LanguageAlignment(target="image").fit(texts)


def test_info_nce_by_hand() -> None:
    """Rows e1, e2 against targets e1, e2 at τ = 1: each row's loss is −1 + log(e + 1)."""
    x = torch.eye(2)
    loss = info_nce(x, torch.eye(2), torch.eye(2), torch.tensor([0, 1]), 1.0)
    assert float(loss) == pytest.approx(math.log(math.e + 1) - 1, rel=1e-6)
    # τ = 0.5 and a rotated map: rows land on (e2, e1), so each row's positive scores 0
    swap = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    loss = info_nce(x, swap, torch.eye(2), torch.tensor([0, 1]), 0.5)
    assert float(loss) == pytest.approx(-0.0 + math.log(1 + math.exp(2.0)), rel=1e-6)


def _numpy_adam(
    x: np.ndarray, t: np.ndarray, w: np.ndarray, tau: float, lr: float, steps: int
) -> np.ndarray:
    """Adam (β = 0.9, 0.999, ε = 1e-8) on the InfoNCE loss with its analytic gradient:
    ``dL/ds = (P − Y)/n``, ``dL/dz = dL/ds·T/τ``, ``dL/du = (dz − z(z·dz))/‖u‖``, ``dL/dW = xᵀdL/du``
    (one target per row, row i's positive is target i)."""
    n = len(x)
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    tn = t / np.linalg.norm(t, axis=1, keepdims=True)
    for k in range(1, steps + 1):
        u = x @ w
        r = np.linalg.norm(u, axis=1, keepdims=True)
        z = u / r
        s = z @ tn.T / tau
        p = np.exp(s - s.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        ds = (p - np.eye(n)) / n
        dz = ds @ tn / tau
        du = (dz - z * (z * dz).sum(axis=1, keepdims=True)) / r
        g = x.T @ du
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        w = w - lr * (m / (1 - 0.9**k)) / (np.sqrt(v / (1 - 0.999**k)) + 1e-8)
    return w


def test_adam_steps_match_an_independent_numpy_implementation() -> None:
    g = np.random.default_rng(0)
    x, t = g.normal(size=(12, 6)), g.normal(size=(12, 6))
    w0 = ridge_map(torch.from_numpy(x), torch.from_numpy(t), 0.5)
    got, losses = contrastive_steps(
        torch.from_numpy(x), torch.from_numpy(t), np.arange(12), w0, 0.1, 0.01, n_steps=5
    )
    assert losses == []
    expected = _numpy_adam(x, t, w0.numpy(), 0.1, 0.01, 5)
    np.testing.assert_allclose(got.numpy(), expected, atol=2e-5)
    assert not np.allclose(expected, w0.numpy(), atol=1e-3)  # the steps moved the map


def test_rows_of_one_item_share_their_target_and_negatives_are_the_other_items() -> None:
    """Two captions of item a and one of item b: the loss has 2 candidates, not 3."""
    x = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    t = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    items = np.array(["a", "a", "b"])
    _, losses = contrastive_steps(x, t, items, torch.eye(2), 1.0, 0.01, 0, 1, (x, t, items))
    assert losses == [pytest.approx(math.log(math.e + 1) - 1, rel=1e-6)]


def test_zero_steps_is_the_ridge_map() -> None:
    world = make_world(n_items=30, dim=8, seed=1)
    ridge = LanguageAlignment(lam=0.5).fit(world)
    flat = LanguageAlignment(method="contrastive", lam=0.5, max_steps=0).fit(world)
    assert flat.fitted_meta["steps"] == dict.fromkeys(world.languages(), 0)
    torch.testing.assert_close(flat.maps, ridge.maps, atol=1e-6, rtol=0)


def test_steps_minimise_the_held_out_loss_and_the_refit_uses_them() -> None:
    """The chosen count is the argmin of the held-out losses on the inner split (re-derived
    here with the same seed), and the map is the ridge map plus that many steps on all items."""
    world = make_world(n_items=40, dim=8, noise=0.6, seed=2)
    proc = LanguageAlignment(method="contrastive", lam=1.0, max_steps=60).fit(world)
    texts = world.texts
    x = torch.nn.functional.normalize(texts.embeddings.double(), dim=1)
    items, item_codes = np.unique(texts.item, return_inverse=True)
    centroid = torch.stack([x[item_codes == i].mean(0) for i in range(len(items))])
    rng = np.random.default_rng(0)
    languages = proc.fitted_meta["languages"]
    for lang_index, lang in enumerate(languages):
        rows = np.flatnonzero(texts.language == lang)
        xl, tl, ri = x[rows], centroid[item_codes[rows]], item_codes[rows]
        val = np.isin(ri, rng.permutation(np.unique(ri))[:10])
        w0 = ridge_map(xl[~val], tl[~val], 1.0)
        held_out = (xl[val], tl[val], ri[val])
        _, losses = contrastive_steps(xl[~val], tl[~val], ri[~val], w0, 0.05, 1e-3, 60, 3, held_out)
        best = int(np.argmin(losses))
        assert len(losses) == 21 or len(losses) - 1 - best == PATIENCE  # ran out, or stopped early
        assert proc.fitted_meta["steps"][lang] == 3 * best
        expected, _ = contrastive_steps(
            xl, tl, ri, ridge_map(xl, tl, 1.0), 0.05, 1e-3, proc.fitted_meta["steps"][lang]
        )
        torch.testing.assert_close(proc.maps[lang_index], expected.float(), atol=1e-6, rtol=0)
    assert any(s > 0 for s in proc.fitted_meta["steps"].values())


def test_save_load_keeps_the_maps_and_the_steps(tmp_path: object) -> None:
    world = make_world(n_items=24, dim=8)
    proc = LanguageAlignment(method="contrastive", max_steps=20).fit(world)
    loaded = PostProcessor.load(proc.save(tmp_path / "c.safetensors"))  # type: ignore[operator]
    assert loaded.fitted_meta == proc.fitted_meta
    assert loaded.get_params() == proc.get_params()
    assert torch.equal(loaded.transform(world).embeddings, proc.transform(world).embeddings)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"temperature": 0.0}, "temperature: expected a positive number, got 0.0"),
        ({"learning_rate": -1.0}, "learning_rate: expected a positive number"),
        ({"max_steps": -1}, "max_steps"),
        ({"method": "mlp"}, "method: expected one of"),
    ],
)
def test_errors_name_the_argument(params: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        LanguageAlignment(**params).fit(make_world(n_items=12, dim=6))  # type: ignore[arg-type]
