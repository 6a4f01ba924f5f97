"""Build the world's corpus: items, their images in every culture, their captions in every language.

Construction for a world ``seed`` and ``n_items``:

1. ``n_items`` contents with pairwise distinct bags of words (:func:`sample_items`), a share
   ``decorrelated_share`` (default 0.3) of them showing a held-back object without its partner,
   in random order; the first ``round(calibration_fraction · n_items)`` are the calibration items, the
   rest the test items (disjoint by construction).
2. Every item is drawn once on every culture's background (8 images; the drawing jitter is
   seeded per image), so each text→image query has 8 relevant images, one per culture, and the
   chance that the top relevant image is of a given culture is 1/8.
3. Every item gets one caption per language (9 captions), the template drawn at random, so the
   image→text gallery holds each language in equal share and a faithful caption exists in all.
   A share ``explicit_share`` (default 0.25) of the items of each split is *culture-explicit*:
   the item names one culture, drawn uniformly over the eight, and each of its nine captions
   names it in words (style or country form, drawn per caption;
   :func:`~xcm_debias.worlds.culture_words.culture_caption`), the content words unchanged — the
   captions stay translations of each other. The other captions are *implicit* (no culture
   word).
4. Images are embedded by the shipped image tower, captions by USE-m3.

Row labels: ``item`` (the content id), ``modality``, ``language`` (texts), ``culture``
(images); extra columns ``objects`` (sorted ';'-joined shapes), ``decorrelated`` (the scene
shows one object of a held-back pair without its partner), ``caption`` (texts; "" on images),
``split`` ("calibration"/"test"), ``n_objects`` and ``named_culture`` (the culture an
explicit caption names; "" on implicit captions and on images).
"""

from __future__ import annotations

import numpy as np

from xcm_debias._validation import check_fraction, check_positive_int
from xcm_debias.data import EmbeddingSet
from xcm_debias.worlds.cache import text_embeddings
from xcm_debias.worlds.captions import LANGUAGES, N_TEMPLATES, caption
from xcm_debias.worlds.culture_words import FORMS, culture_caption
from xcm_debias.worlds.scenes import CULTURES, Scene, draw_scene, sample_items
from xcm_debias.worlds.tower import ImageTower

#: bump when the construction changes, so cached corpora are rebuilt
WORLD_VERSION = 3
DEFAULT_N_ITEMS = 300
DEFAULT_CALIBRATION_FRACTION = 0.2
#: share of items that show a held-back object without its partner (ODmAP-style queries)
DEFAULT_DECORRELATED_SHARE = 0.3
#: share of the items (of each split) whose captions name a culture in words
DEFAULT_EXPLICIT_SHARE = 0.25


def world_items(
    seed: int,
    n_items: int,
    calibration_fraction: float = DEFAULT_CALIBRATION_FRACTION,
    decorrelated_share: float = DEFAULT_DECORRELATED_SHARE,
) -> tuple[list[Scene], list[str]]:
    """The items of world ``seed`` and the split of each (``"calibration"`` or ``"test"``)."""
    n_items = check_positive_int(n_items, "n_items", minimum=2)
    fraction = check_fraction(calibration_fraction, "calibration_fraction")
    items = sample_items(n_items, np.random.default_rng([seed, 2]), decorrelated_share)
    n_calibration = min(max(1, int(round(fraction * n_items))), n_items - 1)
    splits = ["calibration"] * n_calibration + ["test"] * (n_items - n_calibration)
    return items, splits


def build_world(
    tower: ImageTower,
    *,
    seed: int = 0,
    n_items: int = DEFAULT_N_ITEMS,
    calibration_fraction: float = DEFAULT_CALIBRATION_FRACTION,
    decorrelated_share: float = DEFAULT_DECORRELATED_SHARE,
    style_strength: float = 1.0,
    explicit_share: float = DEFAULT_EXPLICIT_SHARE,
) -> EmbeddingSet:
    """The whole corpus (both splits) of world ``seed``; see the module docstring."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed: expected a non-negative integer, got {seed!r}")
    items, splits = world_items(int(seed), n_items, calibration_fraction, decorrelated_share)
    cultures = sorted(CULTURES)
    rng = np.random.default_rng([seed, 3])

    images = np.empty((len(items) * len(cultures), tower.image_size, tower.image_size, 3), np.uint8)
    for i, scene in enumerate(items):
        for j, culture in enumerate(cultures):
            row = i * len(cultures) + j
            images[row] = draw_scene(
                scene,
                culture,
                size=tower.image_size,
                rng=np.random.default_rng([seed, 4, row]),
                style_strength=style_strength,
            )
    templates = rng.integers(N_TEMPLATES, size=(len(items), len(LANGUAGES)))
    named = _named_cultures(
        int(seed),
        splits,
        check_fraction(explicit_share, "explicit_share", open_low=False, open_high=False),
    )
    forms = np.random.default_rng([seed, 6]).integers(len(FORMS), size=named.shape)
    captions = [
        culture_caption(scene, language, int(templates[i, j]), named[i, j], FORMS[forms[i, j]])
        if named[i, j]
        else caption(scene, language, int(templates[i, j]))
        for i, scene in enumerate(items)
        for j, language in enumerate(LANGUAGES)
    ]
    image_x = tower.embed(images)
    text_x = text_embeddings(captions)

    def per_item(values: list[object], repeat: int) -> np.ndarray:
        return np.repeat(np.asarray(values), repeat)

    image_rows = EmbeddingSet(
        image_x,
        modality="image",
        id=[f"img:{s.item_id}:{c}" for s in items for c in cultures],
        item=per_item([s.item_id for s in items], len(cultures)),
        culture=np.tile(np.asarray(cultures), len(items)),
        extra=_columns(items, splits, len(cultures), [""] * len(images), [""] * len(images)),
    )
    text_rows = EmbeddingSet(
        text_x,
        modality="text",
        id=[f"txt:{s.item_id}:{lang}" for s in items for lang in LANGUAGES],
        item=per_item([s.item_id for s in items], len(LANGUAGES)),
        language=np.tile(np.asarray(LANGUAGES), len(items)),
        extra=_columns(items, splits, len(LANGUAGES), captions, named.ravel().tolist()),
    )
    return EmbeddingSet.concat([image_rows, text_rows])


def _named_cultures(seed: int, splits: list[str], share: float) -> np.ndarray:
    """``[items, languages]``: the culture each caption names ("" for implicit captions).

    ``round(share · n)`` items of each split (``n`` its size), chosen at random, are explicit;
    each names one culture drawn uniformly over the eight, in all its captions."""
    rng = np.random.default_rng([seed, 5])
    cultures = np.asarray(sorted(CULTURES))
    named = np.full((len(splits), len(LANGUAGES)), "", dtype=cultures.dtype)
    split_of = np.asarray(splits)
    for split in ("calibration", "test"):
        rows = np.flatnonzero(split_of == split)
        chosen = rng.choice(rows, size=int(round(share * len(rows))), replace=False)
        draws = rng.integers(len(cultures), size=len(chosen))
        named[np.sort(chosen)] = cultures[draws][:, None]
    return named


def _columns(
    items: list[Scene],
    splits: list[str],
    repeat: int,
    captions: list[str],
    named_cultures: list[str],
) -> dict[str, np.ndarray]:
    return {
        "objects": np.repeat(np.asarray([s.object_names for s in items]), repeat),
        "decorrelated": np.repeat(np.asarray([s.decorrelated for s in items]), repeat),
        "n_objects": np.repeat(np.asarray([len(s.objects) for s in items], dtype=np.int64), repeat),
        "split": np.repeat(np.asarray(splits), repeat),
        "caption": np.asarray(captions, dtype=np.str_),
        "named_culture": np.asarray(named_cultures, dtype=np.str_),
    }
