"""CultureLanguageDecoupler: LEACE parity, exact constraints, confounding, hand-built cases,
the preference shift against an independent least-squares solution."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from concept_erasure.leace import LeaceFitter
from synthetic_processors import make_texts, make_world

from xcm_debias import EmbeddingSet
from xcm_debias.processors import CultureLanguageDecoupler, LanguageProjection, PostProcessor


def _cross_cov(x: torch.Tensor, labels: np.ndarray) -> torch.Tensor:
    _, codes = np.unique(labels, return_inverse=True)
    z = torch.nn.functional.one_hot(torch.as_tensor(codes)).to(x.dtype)
    return (x - x.mean(0)).T @ (z - z.mean(0)) / len(x)


def test_oblique_without_culture_signal_is_leace() -> None:
    data, x, codes = make_texts(300, 10, seed=1)
    data = data.with_labels(culture=["any"] * len(data))  # one culture: Σ_xy = 0
    ours = CultureLanguageDecoupler(shrinkage="none").fit(data).transform(data).embeddings.double()
    z = torch.nn.functional.one_hot(torch.as_tensor(codes)).double()
    eraser = LeaceFitter.fit(x, z, shrinkage=False, constrain_cov_trace=False, svd_tol=1e-9).eraser
    torch.testing.assert_close(ours, eraser(x), atol=1e-5, rtol=0)
    leace = LanguageProjection(method="leace", apply_to=("text",)).fit(data).transform(data)
    oblique = CultureLanguageDecoupler().fit(data).transform(data)  # both Ledoit–Wolf
    torch.testing.assert_close(oblique.embeddings, leace.embeddings, atol=1e-5, rtol=0)


def test_oblique_removes_language_and_keeps_culture_covariance_exactly() -> None:
    world = make_world(n_items=60, dim=12, tug=0.4, culture_strength=0.8, seed=2)
    texts = world.texts
    # each caption's culture is its item's image culture
    culture_of = dict(zip(world.images.item.tolist(), world.images.culture.tolist(), strict=True))
    cultures = np.array([culture_of[i] for i in texts.item])
    out = CultureLanguageDecoupler().fit(world).transform(texts).embeddings.double()
    x = texts.embeddings.double()
    assert _cross_cov(x, texts.language).abs().max() > 1e-2
    torch.testing.assert_close(
        _cross_cov(out, texts.language), torch.zeros(12, 3, dtype=torch.float64), atol=1e-6, rtol=0
    )
    torch.testing.assert_close(
        _cross_cov(out, cultures), _cross_cov(x, cultures), atol=1e-6, rtol=0
    )
    # plain LEACE, by contrast, changes the culture covariance
    leace = LanguageProjection(apply_to=("text",)).fit(world).transform(texts).embeddings.double()
    assert (_cross_cov(leace, cultures) - _cross_cov(x, cultures)).abs().max() > 1e-3


def test_oblique_refuses_confounded_language_and_culture() -> None:
    data, _, _ = make_texts(90, 8, seed=3)
    confounded = data.with_labels(culture=data.language)  # every 'de' caption is culture 'de'
    with pytest.raises(ValueError, match=r"confounded.*every 'de' caption has culture 'de'"):
        CultureLanguageDecoupler().fit(confounded)


def test_orthogonal_hand_built_case_returns_the_content() -> None:
    # dims: e0 culture (and part of language), e1 language only, e2..e5 content
    g = torch.Generator().manual_seed(4)
    n_items, a, b = 20, 0.5, 0.3
    content = torch.zeros(n_items, 6, dtype=torch.float64)
    content[:, 2:] = torch.randn(n_items, 4, generator=g, dtype=torch.float64)
    e0, e1 = torch.eye(6, dtype=torch.float64)[0], torch.eye(6, dtype=torch.float64)[1]
    images = torch.cat([content + a * e0, content - a * e0])
    captions = torch.cat([content + b * (e0 + e1), content - b * (e0 + e1)])
    items = [f"i{i}" for i in range(n_items)] * 2
    data = EmbeddingSet.concat(
        [
            EmbeddingSet(
                images, modality="image", item=items, culture=["A"] * n_items + ["B"] * n_items
            ),
            EmbeddingSet(
                captions, modality="text", item=items, language=["de"] * n_items + ["sw"] * n_items
            ),
        ]
    )
    proc = CultureLanguageDecoupler(method="orthogonal", normalize=False).fit(data)
    assert proc.fitted_meta["culture_basis"] == "within-item"
    torch.testing.assert_close(proc.basis.abs().double(), e1[:, None], atol=1e-6, rtol=0)  # U_L⊥
    torch.testing.assert_close(
        proc.preference.double(), torch.stack([b * e0, -b * e0]), atol=1e-6, rtol=0
    )
    out = proc.transform(data)
    torch.testing.assert_close(
        out.embeddings[2 * n_items :].double(), torch.cat([content, content]), atol=1e-6, rtol=0
    )
    torch.testing.assert_close(out.embeddings[: 2 * n_items], images.float())  # images untouched


def test_orthogonal_falls_back_to_group_means_without_multi_image_items() -> None:
    world = make_world(n_items=30, dim=10, images_per_item=1)
    proc = CultureLanguageDecoupler(method="orthogonal").fit(world)
    assert proc.fitted_meta["culture_basis"] == "group-means"
    assert proc.fitted_meta["language_basis"] == "within-item"
    assert proc.fitted_meta["culture_rank"] == 2 and proc.fitted_meta["language_rank"] == 2


def test_errors_are_explicit() -> None:
    world = make_world(n_items=12, dim=6)
    with pytest.raises(ValueError, match="texts only"):
        CultureLanguageDecoupler(method="orthogonal", apply_to=("text", "image")).fit(world)
    texts_only = world.texts
    with pytest.raises(ValueError, match="expected a 'culture' for every calibration text row"):
        CultureLanguageDecoupler().fit(texts_only)
    with pytest.raises(ValueError, match="expected calibration image rows"):
        CultureLanguageDecoupler(method="orthogonal").fit(texts_only)
    with pytest.raises(ValueError, match="method"):
        CultureLanguageDecoupler(method="stiefel").fit(world)


def _with_named(world: EmbeddingSet, every: int = 4) -> EmbeddingSet:
    """Every ``every``-th item's captions name a culture (cycling), the rest name none."""
    named = np.full(len(world), "", dtype="<U8")
    cultures = world.cultures()
    items = sorted(set(world.item.tolist()))
    for k, item in enumerate(items[::every]):
        named[(world.item == item) & (world.modality == "text")] = cultures[k % len(cultures)]
    return world.with_labels(named_culture=named)


def _pairs_offsets(world: EmbeddingSet) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Unit image rows minus their item's mean image, with item and culture per image."""
    images = world.images
    x = images.embeddings.double()
    x = x / x.norm(dim=1, keepdim=True)
    out = x.clone()
    for item in set(images.item.tolist()):
        rows = torch.from_numpy(images.item == item)
        out[rows] = x[rows] - x[rows].mean(dim=0)
    return out, images.item, images.culture


def test_preference_matches_least_squares_and_zeroes_each_languages_mean_preference() -> None:
    world = _with_named(make_world(n_items=40, dim=12, tug=0.5, images_per_item=3, seed=5))
    proc = CultureLanguageDecoupler(method="preference").fit(world)
    offsets, image_items, image_cultures = _pairs_offsets(world)
    cultures = sorted(set(image_cultures.tolist()))
    texts = world.texts
    implicit = texts.extra["named_culture"] == ""
    x = texts.embeddings.double()
    x = x / x.norm(dim=1, keepdim=True)
    out = proc.transform(texts).embeddings.double()
    for k, lang in enumerate(proc.fitted_meta["languages"]):
        rows = np.flatnonzero((texts.language == lang) & implicit)
        # independent solution: numpy's minimum-norm least squares of G δ = P
        p, g = np.zeros(len(cultures)), np.zeros((len(cultures), x.shape[1]))
        for c, culture in enumerate(cultures):
            pairs = [
                (r, j)
                for r in rows
                for j in np.flatnonzero(
                    (image_items == texts.item[r]) & (image_cultures == culture)
                )
            ]
            p[c] = np.mean([float(x[r] @ offsets[j]) for r, j in pairs])
            g[c] = np.mean([offsets[j].numpy() for _, j in pairs], axis=0)
            after = np.mean([float(out[r] @ offsets[j]) for r, j in pairs])
            assert abs(after) < 1e-6  # the language's mean culture offset is gone
        assert np.abs(p).max() > 0.05  # ...and it was there (tug)
        expected = np.linalg.lstsq(g, p, rcond=None)[0]
        np.testing.assert_allclose(proc.shifts[k].double().numpy(), expected, atol=1e-6)
    # the shift depends on the language only: explicit captions move exactly as implicit ones
    delta = out - x
    for lang in proc.fitted_meta["languages"]:
        rows = torch.from_numpy(texts.language == lang)
        torch.testing.assert_close(delta[rows], delta[rows][:1].expand_as(delta[rows]))


def test_preference_hand_built_case_lets_the_named_culture_win() -> None:
    # e0: culture axis (images of A at +a, of B at −a); e1: language identity; e2..: content.
    # German captions lean to A (+b e0), Swahili ones to B; a caption that names a culture
    # adds ±w e0 with w < b, so before the fix a German query asking for B still gets A.
    g = torch.Generator().manual_seed(6)
    n, a, b, w = 16, 0.5, 0.4, 0.25
    content = torch.zeros(n, 6, dtype=torch.float64)
    content[:, 2:] = torch.randn(n, 4, generator=g, dtype=torch.float64)
    e0, e1 = torch.eye(6, dtype=torch.float64)[0], torch.eye(6, dtype=torch.float64)[1]
    asks = ["", "B"] * (n // 2)  # odd items name culture B
    word = torch.tensor([0.0 if c == "" else -w for c in asks], dtype=torch.float64)[:, None]
    images = torch.cat([content + a * e0, content - a * e0])
    captions = torch.cat([content + b * e0 + 0.3 * e1 + word * e0, content - b * e0 - 0.3 * e1])
    items = [f"i{i}" for i in range(n)] * 2
    data = EmbeddingSet.concat(
        [
            EmbeddingSet(
                images,
                modality="image",
                item=items,
                culture=["A"] * n + ["B"] * n,
                extra={"named_culture": [""] * 2 * n},
            ),
            EmbeddingSet(
                captions,
                modality="text",
                item=items,
                language=["de"] * n + ["sw"] * n,
                extra={"named_culture": asks + [""] * n},
            ),
        ]
    )
    proc = CultureLanguageDecoupler(method="preference", normalize=False).fit(data)
    torch.testing.assert_close(
        proc.shifts.double(), torch.stack([b * e0, -b * e0]), atol=1e-6, rtol=0
    )
    out = proc.transform(data.texts).embeddings.double()
    # implicit captions: content + language identity only (e1 is kept: it predicts no culture)
    torch.testing.assert_close(out[:n:2], content[::2] + 0.3 * e1, atol=1e-6, rtol=0)
    # the German captions asking for B: before, culture A scored higher; after, B does
    before = captions[1:n:2] @ (a * e0)
    after = out[1:n:2] @ (a * e0)
    assert (before > 0).all() and (after < 0).all()


def test_oblique_keeps_the_covariance_with_the_named_culture() -> None:
    world = _with_named(make_world(n_items=60, dim=12, tug=0.4, images_per_item=1, seed=7), 2)
    texts = world.texts
    culture_of = dict(zip(world.images.item.tolist(), world.images.culture.tolist(), strict=True))
    named = texts.extra["named_culture"]
    y = np.where(named != "", named, [culture_of[i] for i in texts.item])
    out = CultureLanguageDecoupler().fit(world).transform(texts).embeddings.double()
    x = texts.embeddings.double()
    torch.testing.assert_close(_cross_cov(out, y), _cross_cov(x, y), atol=1e-6, rtol=0)
    torch.testing.assert_close(
        _cross_cov(out, texts.language), torch.zeros(12, 3, dtype=torch.float64), atol=1e-6, rtol=0
    )


def test_preference_errors_are_explicit() -> None:
    world = make_world(n_items=12, dim=6, images_per_item=2)
    with pytest.raises(ValueError, match="texts only"):
        CultureLanguageDecoupler(method="preference", apply_to=("text", "image")).fit(world)
    with pytest.raises(ValueError, match="expected an item shown in at least 2 cultures"):
        CultureLanguageDecoupler(method="preference").fit(make_world(n_items=12, dim=6))
    everyone = world.with_labels(named_culture=np.where(world.modality == "text", "de", ""))
    with pytest.raises(ValueError, match="captions that name no culture"):
        CultureLanguageDecoupler(method="preference").fit(everyone)
    with pytest.raises(ValueError, match="expected calibration image rows"):
        CultureLanguageDecoupler(method="preference").fit(world.texts)


@pytest.mark.parametrize("method", ["oblique", "orthogonal", "preference"])
def test_save_load_gives_identical_outputs(method: str, tmp_path: object) -> None:
    world = make_world(n_items=24, dim=8, images_per_item=2)
    proc = CultureLanguageDecoupler(method=method).fit(world)
    loaded = PostProcessor.load(proc.save(tmp_path / "d.safetensors"))  # type: ignore[operator]
    assert torch.equal(loaded.transform(world).embeddings, proc.transform(world).embeddings)


def _named_world(seed: int = 8) -> EmbeddingSet:
    """Items shown in 3 cultures; every other item's captions name a culture (+ its direction),
    German captions are pulled to culture "de" (the bias), all plus noise."""
    world = make_world(n_items=120, dim=16, tug=0.5, images_per_item=3, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    directions = {c: torch.randn(16, generator=g, dtype=torch.float64) for c in world.cultures()}
    named = np.full(len(world), "", dtype="<U4")
    x = world.embeddings.double().clone()
    for k, item in enumerate(sorted(set(world.item.tolist()))[::2]):
        culture = world.cultures()[k % 3]
        rows = (world.item == item) & (world.modality == "text")
        named[rows] = culture
        x[torch.from_numpy(rows)] += 0.8 * directions[culture]
    for culture, direction in directions.items():  # images of a culture show its direction
        x[torch.from_numpy(world.culture == culture)] += 0.8 * direction
    return world.with_embeddings(x / x.norm(dim=1, keepdim=True)).with_labels(named_culture=named)


def test_a_full_culture_eraser_fails_named_culture_and_the_preference_shift_keeps_it() -> None:
    from xcm_debias import BiasReport, Debiased, ExactRetriever
    from xcm_debias.processors._stats import one_hot, prepare, remove_low_rank
    from xcm_debias.processors.language_projection import leace_factors

    world = _named_world()
    first = np.isin(world.item, sorted(set(world.item.tolist()))[:60])
    calib, test = world[first], world[~first]
    before = BiasReport.evaluate(ExactRetriever(), test).metrics["t2i/named_culture@1"]
    # LEACE of culture from every row, fitted on the images' cultures and the named cultures
    named = calib.extra["named_culture"]
    rows = (calib.modality == "image") | (named != "")
    labels = np.where(calib.modality == "image", calib.culture, named)[rows]
    cultures, codes = np.unique(labels, return_inverse=True)
    fit_x = prepare(calib.embeddings[torch.from_numpy(rows)], True)
    left, right, mean = leace_factors(fit_x, one_hot(codes, len(cultures)), "ledoit-wolf")
    erased = test.with_embeddings(
        remove_low_rank(prepare(test.embeddings, True), mean, right, left).float()
    )
    after_erasure = BiasReport.evaluate(ExactRetriever(), erased).metrics
    kept = Debiased(ExactRetriever(), CultureLanguageDecoupler(method="preference")).fit(calib)
    after_shift = BiasReport.evaluate(kept, test).metrics
    # 30 explicit test items × 3 languages; chance 1/3 (each item shown in 3 cultures).
    # Measured: 1.000 before, 0.333 after the eraser, 1.000 after the preference shift
    assert after_erasure["t2i/named_culture_chance"] == pytest.approx(1 / 3)
    assert before > 0.95
    assert after_erasure["t2i/named_culture@1"] < 0.45  # asked-for culture wiped out
    assert after_shift["t2i/named_culture@1"] >= before - 0.01  # asked-for culture kept
