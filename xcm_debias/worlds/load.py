"""Load the shipped image tower and the world's corpus (built once, then cached on disk)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
from safetensors.torch import load_file

from xcm_debias._validation import check_fraction, check_positive_int
from xcm_debias.data import EmbeddingSet
from xcm_debias.worlds.build import (
    DEFAULT_CALIBRATION_FRACTION,
    DEFAULT_DECORRELATED_SHARE,
    DEFAULT_EXPLICIT_SHARE,
    DEFAULT_N_ITEMS,
    WORLD_VERSION,
    build_world,
)
from xcm_debias.worlds.cache import cache_dir, digest
from xcm_debias.worlds.tower import ImageTower

#: folder of the shipped weights (``tower.safetensors``, ``tower.json``, ``reference.json``)
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
SPLITS = ("calibration", "test", "all")


def _weights_file(weights: str | Path | None) -> Path:
    path = WEIGHTS_DIR / "tower.safetensors" if weights is None else Path(weights)
    if path.is_dir():
        path = path / "tower.safetensors"
    if not path.exists():
        raise FileNotFoundError(
            f"weights: no tower weights at {str(path)!r} (train them with `xcm-debias world train`)"
        )
    return path


def tower_config(weights: str | Path | None = None) -> dict[str, object]:
    """The JSON saved beside the weights: ``{"config": TrainConfig fields, "training": log}``."""
    meta = _weights_file(weights).with_suffix(".json")
    if not meta.exists():
        raise FileNotFoundError(f"weights: expected the config {str(meta)!r} beside the weights")
    return json.loads(meta.read_text())


def load_tower(weights: str | Path | None = None) -> ImageTower:
    """The trained image tower in eval mode (default: the weights shipped in the package)."""
    path = _weights_file(weights)
    config = tower_config(path)["config"]
    tower = ImageTower(
        width=int(config["width"]),
        image_size=int(config["image_size"]),
        init_temperature=float(config["init_temperature"]),
    )
    state = load_file(str(path))
    missing, unexpected = tower.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(
            f"weights: expected the ImageTower parameters, got missing {missing[:3]} and "
            f"unexpected {unexpected[:3]} in {str(path)!r}"
        )
    return tower.eval()


def weights_digest(weights: str | Path | None = None) -> str:
    """SHA-256 (first 16 hex digits) of the weights file: part of every corpus cache key."""
    return hashlib.sha256(_weights_file(weights).read_bytes()).hexdigest()[:16]


def load_scenes(
    split: str = "test",
    *,
    seed: int = 0,
    n_items: int | None = None,
    calibration_fraction: float = DEFAULT_CALIBRATION_FRACTION,
    decorrelated_share: float = DEFAULT_DECORRELATED_SHARE,
    weights: str | Path | None = None,
    cache: bool = True,
    explicit_share: float = DEFAULT_EXPLICIT_SHARE,
) -> EmbeddingSet:
    """The embedded benchmark: images and captions of the world, as one EmbeddingSet.

    Args:
        split: ``"test"``, ``"calibration"`` or ``"all"`` (calibration and test items are
            disjoint; the extra column ``split`` says which side a row is on).
        seed: world seed: changes the items, the split, the caption templates and the drawing
            jitter (the image tower stays the shipped one).
        n_items: number of items in both splits together (default 300: 240 test items, i.e.
            240 queries per language and 240 images per culture, and 60 calibration items).
            A reduced world (e.g. 24) builds in seconds.
        calibration_fraction: share of the items in the calibration split.
        decorrelated_share: share of the items that show a held-back object without its
            partner (the ODmAP-style queries; 0.3 by default).
        explicit_share: share of the items of each split whose captions name a culture in
            words (``named_culture`` column; 0.25 by default, 0 for none).
        weights: a tower ``.safetensors`` file or folder (default: the shipped one).
        cache: read/write the built corpus under ``$XCM_DEBIAS_CACHE`` (or
            ``~/.cache/xcm_debias``)``/worlds``.

    Returns:
        Image rows (``culture`` = one of the 8 cultures) and text rows (``language`` = one of
        the 9 languages), labelled by ``item``, with extra columns ``objects``,
        ``decorrelated``, ``caption``, ``split``, ``n_objects`` and ``named_culture`` (see
        ``docs/world.md``).
    """
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed: expected a non-negative integer, got {seed!r}")
    seed = int(seed)
    n = DEFAULT_N_ITEMS if n_items is None else check_positive_int(n_items, "n_items", minimum=2)
    fraction = check_fraction(calibration_fraction, "calibration_fraction")
    share = float(decorrelated_share)
    if not 0.0 <= share <= 1.0:
        raise ValueError(
            f"decorrelated_share: expected a number in [0, 1], got {decorrelated_share!r}"
        )
    explicit = check_fraction(explicit_share, "explicit_share", open_low=False, open_high=False)
    key = digest(WORLD_VERSION, seed, n, fraction, share, explicit, weights_digest(weights))
    path = cache_dir() / "worlds" / f"world-seed{seed}-n{n}-{key}.npz"
    if cache and path.exists():
        world = EmbeddingSet.load(path)
    else:
        world = build_world(
            load_tower(weights),
            seed=seed,
            n_items=n,
            calibration_fraction=fraction,
            decorrelated_share=share,
            style_strength=float(tower_config(weights)["config"]["style_strength"]),
            explicit_share=explicit,
        )
        if cache:
            tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
            world.save(tmp)
            os.replace(tmp, path)
    return world if split == "all" else world.where(split=split)


def world_calibration_test(
    seed: int = 0, n_items: int | None = None
) -> tuple[EmbeddingSet, EmbeddingSet]:
    """``(calibration, test)`` of world ``seed`` (one build, disjoint items)."""
    world = load_scenes("all", seed=seed, n_items=n_items)
    return world.where(split="calibration"), world.where(split="test")
