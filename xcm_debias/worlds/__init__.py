"""The embedded benchmark: a procedural miniature of the 3XCM setting.

Drawn scenes (coloured shapes on culture-styled backgrounds), captions in nine languages, the
real USE-m3 text tower and a small image tower trained LiT-style on web-like data in which a
culture's images co-occur with its language. The language-prevalence, cultural-tugging and
low-resource effects are not planted: they emerge from that training. See ``docs/world.md``.

Usage::

    from xcm_debias.worlds import load_scenes, world_calibration_test

    test = load_scenes("test")                       # 240 items × (8 images + 9 captions)
    calib, test = world_calibration_test(seed=1)     # 60 / 240 items, disjoint
    small = load_scenes("all", n_items=24)           # a reduced world, built in seconds
"""

from __future__ import annotations

from xcm_debias.worlds.captions import (
    CULTURE_OF_LANGUAGE,
    HIGH_RESOURCE,
    LANGUAGES,
    LOW_RESOURCE,
    caption,
)
from xcm_debias.worlds.load import (
    load_scenes,
    load_tower,
    tower_config,
    weights_digest,
    world_calibration_test,
)
from xcm_debias.worlds.scenes import (
    COLOURS,
    CULTURES,
    HELD_BACK_PAIRS,
    SHAPES,
    Scene,
    SceneObject,
    draw_scene,
    sample_items,
)
from xcm_debias.worlds.tower import ImageTower
from xcm_debias.worlds.train import TrainConfig, train_tower

__all__ = [
    "COLOURS",
    "CULTURES",
    "CULTURE_OF_LANGUAGE",
    "HELD_BACK_PAIRS",
    "HIGH_RESOURCE",
    "LANGUAGES",
    "LOW_RESOURCE",
    "SHAPES",
    "ImageTower",
    "Scene",
    "SceneObject",
    "TrainConfig",
    "caption",
    "draw_scene",
    "load_scenes",
    "load_tower",
    "sample_items",
    "tower_config",
    "train_tower",
    "weights_digest",
    "world_calibration_test",
]
