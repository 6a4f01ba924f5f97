from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.path import Path as MplPath

from xcm_debias.worlds.scenes import (
    _STAR,
    _TRIANGLE,
    COLOUR_RGB,
    COLOURS,
    CULTURES,
    SHAPES,
    Scene,
    SceneObject,
    _polygon_mask,
    all_scenes,
    draw_scene,
    draw_scenes,
    n_signatures,
    sample_items,
    shape_mask,
    training_scenes,
)

PAIR = Scene((SceneObject("circle", "red", "left"), SceneObject("square", "blue", "right")))
SINGLE = Scene((SceneObject("star", "yellow", "center"),))


def test_content_space_sizes_are_the_hand_counted_ones():
    # singles: 6 shapes × 7 colours × 3 slots; pairs: ordered distinct shapes 6·5 × 7²
    assert len(all_scenes()) == 6 * 7 * 3 + 6 * 5 * 7 * 7 == 1596
    # training: singles without cross/heart 4·7·3; pairs within {circle, square, triangle,
    # star} (4·3 ordered) or exactly {cross, heart} (2 ordered), × 7² colours
    assert len(training_scenes()) == 4 * 7 * 3 + (4 * 3 + 2) * 49 == 770
    # signatures: 6·7 singles + C(6,2) shape sets × (7 same + C(7,2)) colour multisets
    assert n_signatures() == 42 + 15 * 28 == 462


def test_training_scenes_never_show_a_held_back_object_alone():
    for scene in training_scenes():
        shapes = set(scene.shapes)
        assert ("cross" in shapes) == ("heart" in shapes)
    apart = [s for s in all_scenes() if s.decorrelated]
    assert apart and all(("cross" in s.shapes) != ("heart" in s.shapes) for s in apart)


@given(st.sampled_from(all_scenes()))
@settings(max_examples=200, deadline=None)
def test_item_id_round_trips(scene):
    assert Scene.from_item_id(scene.item_id) == scene


def test_object_names_are_sorted_shapes():
    reverse = Scene((SceneObject("square", "red", "left"), SceneObject("circle", "red", "right")))
    assert PAIR.object_names == reverse.object_names == "circle;square"
    assert SINGLE.object_names == "star"


@pytest.mark.parametrize(
    ("objects", "message"),
    [
        ((), "one or two"),
        ((SceneObject("star", "red", "left"), SceneObject("circle", "red", "left")), "slots"),
        ((SceneObject("star", "red", "left"), SceneObject("star", "blue", "right")), "different"),
    ],
)
def test_invalid_scenes_are_rejected(objects, message):
    with pytest.raises(ValueError, match=message):
        Scene(objects)


def test_unknown_vocabulary_is_rejected():
    with pytest.raises(ValueError, match="SceneObject.shape"):
        SceneObject("hexagon", "red", "left")
    with pytest.raises(ValueError, match="SceneObject.colour"):
        SceneObject("star", "pink", "left")
    with pytest.raises(ValueError, match="item_id"):
        Scene.from_item_id("red circle")


def test_sample_items_have_distinct_signatures_and_are_seeded():
    items = sample_items(300, np.random.default_rng(5))
    assert len({s.signature for s in items}) == 300
    assert items == sample_items(300, np.random.default_rng(5))
    assert items != sample_items(300, np.random.default_rng(6))
    with pytest.raises(ValueError, match="at most 462"):
        sample_items(463, np.random.default_rng(0))


def test_sample_items_hold_the_requested_decorrelated_share():
    items = sample_items(300, np.random.default_rng(1), decorrelated_share=0.3)
    assert sum(s.decorrelated for s in items) == 90
    assert len({s.signature for s in items}) == 300
    # the order is shuffled: decorrelated items are not all at the front
    assert 0 < sum(s.decorrelated for s in items[:60]) < 60
    none = sample_items(50, np.random.default_rng(1), decorrelated_share=0.0)
    assert not any(s.decorrelated for s in none)
    # 224 contents respect every held-back pair: 300 items need at least 76 decorrelated
    with pytest.raises(ValueError, match="only 238 and 224"):
        sample_items(300, np.random.default_rng(1), decorrelated_share=0.2)
    with pytest.raises(ValueError, match="decorrelated_share"):
        sample_items(10, np.random.default_rng(1), decorrelated_share=1.5)


@pytest.mark.parametrize(("vertices", "name"), [(_STAR, "star"), (_TRIANGLE, "triangle")])
def test_polygon_mask_matches_matplotlib_path(vertices, name):
    points = np.random.default_rng(0).uniform(-1.2, 1.2, size=(4000, 2))
    ours = _polygon_mask(points[:, 0], points[:, 1], vertices)
    reference = MplPath(vertices).contains_points(points)
    assert (ours == reference).mean() == 1.0, name


@pytest.mark.parametrize(
    ("shape", "inside", "outside"),
    [
        ("circle", (0.0, 0.9), (0.7, 0.7)),  # 0.98 > 0.92
        ("square", (0.79, -0.79), (0.85, 0.0)),
        ("triangle", (0.0, 0.5), (0.0, -0.95)),
        ("star", (0.0, -0.9), (0.6, -0.6)),  # tip inside, the notch between tips outside
        ("cross", (0.0, 0.9), (0.6, 0.6)),
        ("heart", (0.5, -0.5), (0.0, -0.72)),  # a lobe inside, the cleft between lobes out
    ],
)
def test_shape_masks_at_hand_picked_points(shape, inside, outside):
    u = np.array([inside[0], outside[0]])
    v = np.array([inside[1], outside[1]])
    assert shape_mask(shape, u, v).tolist() == [True, False]


def test_same_seed_same_pixels_other_seed_other_pixels():
    a = draw_scene(PAIR, "ja", rng=np.random.default_rng(3))
    b = draw_scene(PAIR, "ja", rng=np.random.default_rng(3))
    c = draw_scene(PAIR, "ja", rng=np.random.default_rng(4))
    assert a.dtype == np.uint8 and a.shape == (32, 32, 3)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_draw_scenes_draws_each_image_from_its_own_seed():
    scenes, cultures = [PAIR, SINGLE, PAIR], ["de", "vi", "sw"]
    batch = draw_scenes(scenes, cultures, seed=9)
    for i in range(3):
        alone = draw_scene(scenes[i], cultures[i], rng=np.random.default_rng([9, i]))
        assert np.array_equal(batch[i], alone)


def test_object_and_flat_background_colours_are_exact():
    # style_strength 0: a flat base colour; the object's interior pixel is its pure colour
    for culture in CULTURES.values():
        image = draw_scene(SINGLE, culture.name, style_strength=0.0, size=64)
        assert tuple(image[0, 0]) == culture.base
        assert tuple(image[34, 32]) == COLOUR_RGB["yellow"]


def test_cultures_differ_in_their_backgrounds():
    means = {
        c: draw_scene(SINGLE, c, rng=np.random.default_rng(0)).reshape(-1, 3).std(0).sum()
        for c in CULTURES
    }
    assert all(v > 5 for v in means.values())  # every culture has a visible texture
    first = {c: draw_scene(SINGLE, c, rng=np.random.default_rng(0))[:4, :4] for c in CULTURES}
    names = sorted(first)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not np.array_equal(first[a], first[b])


def test_every_shape_and_colour_is_drawable():
    for shape in SHAPES:
        for colour in COLOURS:
            image = draw_scene(Scene((SceneObject(shape, colour, "center"),)), "it", size=16)
            assert image.shape == (16, 16, 3)


def test_draw_scene_validates_inputs():
    with pytest.raises(ValueError, match="culture"):
        draw_scene(PAIR, "xx")
    with pytest.raises(ValueError, match="size"):
        draw_scene(PAIR, "de", size=8)
    with pytest.raises(ValueError, match="style_strength"):
        draw_scene(PAIR, "de", style_strength=1.5)
    with pytest.raises(TypeError, match="scene"):
        draw_scene("circle", "de")
    with pytest.raises(ValueError, match="cultures"):
        draw_scenes([PAIR], ["de", "fr"])
