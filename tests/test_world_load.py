from __future__ import annotations

import numpy as np
import pytest
import torch

from xcm_debias.worlds import (
    CULTURES,
    LANGUAGES,
    Scene,
    caption,
    load_scenes,
    load_tower,
    world_calibration_test,
)
from xcm_debias.worlds.build import _named_cultures, world_items
from xcm_debias.worlds.cache import cache_dir, text_embeddings
from xcm_debias.worlds.culture_words import FORMS, culture_caption
from xcm_debias.worlds.scenes import draw_scene

N_ITEMS = 10


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("xcm_cache"))


@pytest.fixture()
def world(cache, monkeypatch):
    monkeypatch.setenv("XCM_DEBIAS_CACHE", cache)
    return load_scenes("all", seed=3, n_items=N_ITEMS)


def test_every_item_is_drawn_in_every_culture_and_captioned_in_every_language(world):
    images, texts = world.images, world.texts
    assert len(images) == N_ITEMS * len(CULTURES) and len(texts) == N_ITEMS * len(LANGUAGES)
    for item in np.unique(world.item):
        assert sorted(images.culture[images.item == item]) == sorted(CULTURES)
        assert sorted(texts.language[texts.item == item]) == sorted(LANGUAGES)
    assert (images.language == "").all() and (texts.culture == "").all()
    assert world.dim == 512


def test_label_columns_agree_with_the_item_content(world):
    extra = world.extra
    for row in range(len(world)):
        scene = Scene.from_item_id(str(world.item[row]))
        assert extra["objects"][row] == scene.object_names
        assert bool(extra["decorrelated"][row]) == scene.decorrelated
        assert extra["n_objects"][row] == len(scene.objects)
    assert extra["decorrelated"].dtype == bool
    texts = world.texts
    named = texts.extra["named_culture"]
    assert (world.images.extra["named_culture"] == "").all()
    for row in range(len(texts)):
        scene, language = Scene.from_item_id(str(texts.item[row])), str(texts.language[row])
        if named[row]:
            candidates = {
                culture_caption(scene, language, t, str(named[row]), form)
                for t in range(3)
                for form in FORMS
            }
        else:
            candidates = {caption(scene, language, t) for t in range(3)}
        assert texts.extra["caption"][row] in candidates
    # an explicit item names one culture in all nine captions; round(0.25 · 8) = 2 test items
    explicit = sorted(set(texts.item[named != ""].tolist()))
    assert len(explicit) == 2
    for item in explicit:
        assert len(set(named[texts.item == item].tolist())) == 1


def test_default_world_names_a_culture_in_a_quarter_of_each_split():
    _, splits = world_items(0, 300, 0.2)
    named = _named_cultures(0, splits, 0.25)
    explicit = (named != "").all(axis=1)
    assert ((named != "").any(axis=1) == explicit).all()  # all of an item's captions or none
    calibration = np.asarray(splits) == "calibration"
    assert explicit[calibration].sum() == 15 and explicit[~calibration].sum() == 60
    assert set(named[explicit, 0].tolist()) == set(CULTURES)  # cultures drawn over all eight
    assert not _named_cultures(0, splits, 0.0).any()


def test_splits_are_disjoint_in_items_and_sized_by_the_fraction(world, cache, monkeypatch):
    monkeypatch.setenv("XCM_DEBIAS_CACHE", cache)
    calib, test = world_calibration_test(seed=3, n_items=N_ITEMS)
    assert not set(calib.item) & set(test.item)
    assert len(set(calib.item)) == 2 and len(set(test.item)) == 8  # round(0.2 · 10)
    assert set(calib.extra["split"]) == {"calibration"} and set(test.extra["split"]) == {"test"}
    assert len(calib) + len(test) == len(world)
    test_only = load_scenes("test", seed=3, n_items=N_ITEMS)
    assert torch.equal(test_only.embeddings, test.embeddings)


def test_default_world_has_honest_test_sizes():
    items, splits = world_items(0, 300, 0.2)
    assert splits.count("test") == 240 and splits.count("calibration") == 60
    # 2 SE of a share near 1/9 with 240 queries per language is below 0.05
    assert 2 * np.sqrt((1 / 9) * (8 / 9) / 240) < 0.05
    assert len({s.signature for s in items}) == 300
    assert sum(s.decorrelated for s in items) == 90  # the default share 0.3


def test_embeddings_are_the_tower_and_the_text_encoder(world):
    tower = load_tower()
    images = world.images
    row = 5
    item, culture = str(images.item[row]), str(images.culture[row])
    scene = Scene.from_item_id(item)
    # images are drawn with the generator (seed, 4, row) of the build, rows in item order
    redrawn = draw_scene(scene, culture, rng=np.random.default_rng([3, 4, row]))
    torch.testing.assert_close(
        images.embeddings[row : row + 1], tower.embed(redrawn[None]), atol=1e-5, rtol=0
    )
    texts = world.texts
    expected = text_embeddings(texts.extra["caption"][:4].tolist())
    torch.testing.assert_close(texts.embeddings[:4], expected, atol=1e-5, rtol=0)


def test_same_seed_same_world_from_cache_other_seed_other_items(world, cache, monkeypatch):
    monkeypatch.setenv("XCM_DEBIAS_CACHE", cache)
    files = list((cache_dir() / "worlds").glob("world-seed3-n10-*.npz"))
    assert len(files) == 1
    again = load_scenes("all", seed=3, n_items=N_ITEMS)
    rebuilt = load_scenes("all", seed=3, n_items=N_ITEMS, cache=False)
    assert torch.equal(again.embeddings, world.embeddings)
    assert np.array_equal(rebuilt.id, world.id)
    torch.testing.assert_close(rebuilt.embeddings, world.embeddings, atol=1e-6, rtol=0)
    other = load_scenes("all", seed=4, n_items=N_ITEMS, cache=False)
    assert set(other.item) != set(world.item)


def test_invalid_arguments_are_rejected():
    with pytest.raises(ValueError, match="split"):
        load_scenes("train")
    with pytest.raises(ValueError, match="seed"):
        load_scenes(seed=-1)
    with pytest.raises(ValueError, match="n_items"):
        load_scenes(n_items=1)
    with pytest.raises(ValueError, match="n_items: expected at most 462"):
        load_scenes(n_items=500, cache=False)
    with pytest.raises(ValueError, match="decorrelated_share"):
        load_scenes(n_items=10, decorrelated_share=-0.1)
