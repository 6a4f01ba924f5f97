"""Reference embeddings of a few scenes, shipped beside the tower weights.

``weights/reference.json`` holds, for a handful of fixed scenes and cultures, the tower's
embedding as computed when the weights were written. A test reloads the weights, redraws the
scenes and compares: it catches a changed drawing, a changed architecture or corrupt weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from xcm_debias.worlds.scenes import Scene, draw_scene
from xcm_debias.worlds.tower import ImageTower

#: (item id, culture, drawing seed) of the reference scenes
REFERENCE_SCENES: tuple[tuple[str, str, int], ...] = (
    ("red-circle@left+blue-square@right", "de", 0),
    ("yellow-star@center", "ja", 1),
    ("white-heart@left+black-cross@right", "sw", 2),
    ("green-triangle@right", "vi", 3),
)


def reference_images(size: int) -> np.ndarray:
    """The reference scenes drawn at ``size`` px: ``[R, size, size, 3]`` uint8."""
    return np.stack(
        [
            draw_scene(
                Scene.from_item_id(item), culture, size=size, rng=np.random.default_rng(seed)
            )
            for item, culture, seed in REFERENCE_SCENES
        ]
    )


def write_reference(tower: ImageTower, directory: str | Path) -> Path:
    """Write ``reference.json``: the reference scenes and their embeddings by ``tower``."""
    path = Path(directory) / "reference.json"
    x = tower.embed(reference_images(tower.image_size)).numpy()
    payload = {
        "scenes": [list(s) for s in REFERENCE_SCENES],
        "image_size": tower.image_size,
        "embeddings": [[round(float(v), 7) for v in row] for row in x],
    }
    path.write_text(json.dumps(payload) + "\n")
    return path


def read_reference(directory: str | Path) -> tuple[np.ndarray, torch.Tensor]:
    """``(images, embeddings)`` stored in ``directory/reference.json``."""
    payload = json.loads((Path(directory) / "reference.json").read_text())
    scenes = [tuple(s) for s in payload["scenes"]]
    if scenes != list(REFERENCE_SCENES):
        raise ValueError(
            "reference.json: expected the scenes of REFERENCE_SCENES, got "
            f"{scenes} (rewrite it with `xcm-debias world train`)"
        )
    images = reference_images(int(payload["image_size"]))
    return images, torch.tensor(payload["embeddings"], dtype=torch.float32)
