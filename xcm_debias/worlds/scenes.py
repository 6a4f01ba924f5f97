"""Scene content (objects, colours, positions) and the procedural drawing of a scene in a culture.

An *item* of the world is a :class:`Scene`: one or two coloured shapes in fixed slots (one object:
left, centre or right; two objects: one left, one right, of different shapes). A scene is drawn
on the background of a *culture*: a two-colour palette and a texture (stripes, checks, dots,
rings, waves...), so the same content can be shown in every culture.

Drawing is pure numpy (no font or renderer version can change a pixel): every mask is evaluated
on a ``4×`` supersampled grid and box-filtered down to ``size × size`` (anti-aliasing). All
randomness (texture phase and period, object jitter) comes from the ``rng`` passed in, so the
same seed gives the same pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from xcm_debias._validation import check_positive_int

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross", "heart")
COLOURS: tuple[str, ...] = ("red", "yellow", "green", "blue", "purple", "black", "white")
SLOTS: tuple[str, ...] = ("left", "center", "right")

#: object colours (saturated, so that they stand out of every muted background palette)
COLOUR_RGB: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "yellow": (245, 215, 20),
    "green": (30, 165, 50),
    "blue": (30, 70, 225),
    "purple": (145, 40, 185),
    "black": (15, 15, 15),
    "white": (248, 248, 248),
}

#: object pairs that always co-occur in the training scenes and are shown apart in test scenes
#: (the held-back arrangement that makes an ODmAP-style measurement possible)
HELD_BACK_PAIRS: tuple[tuple[str, str], ...] = (("cross", "heart"),)

_SLOT_X = {"left": 0.27, "center": 0.5, "right": 0.73}
_SUPERSAMPLE = 4


@dataclass(frozen=True)
class Culture:
    """A culture's visual style: two background colours and a texture.

    ``texture`` is one of ``hstripes``, ``vstripes``, ``diagonal``, ``checks``, ``dots``,
    ``grid``, ``rings``, ``waves``; ``period`` is the texture's period as a fraction of the
    image width.
    """

    name: str
    base: tuple[int, int, int]
    accent: tuple[int, int, int]
    texture: str
    period: float


#: the eight cultures, named by the language each is associated with (en has none)
CULTURES: dict[str, Culture] = {
    c.name: c
    for c in (
        Culture("de", (108, 118, 140), (158, 168, 186), "hstripes", 0.22),
        Culture("fr", (168, 138, 116), (206, 180, 152), "vstripes", 0.22),
        Culture("es", (176, 112, 92), (212, 160, 126), "diagonal", 0.26),
        Culture("it", (118, 148, 106), (166, 190, 148), "checks", 0.25),
        Culture("ja", (206, 176, 186), (150, 112, 130), "dots", 0.2),
        Culture("ru", (176, 176, 204), (120, 122, 156), "grid", 0.2),
        Culture("sw", (172, 150, 88), (118, 98, 58), "rings", 0.18),
        Culture("vi", (98, 150, 150), (146, 190, 184), "waves", 0.24),
    )
}


@dataclass(frozen=True, order=True)
class SceneObject:
    """One coloured shape in a slot (``left``, ``center`` or ``right``)."""

    shape: str
    colour: str
    slot: str

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("shape", self.shape, SHAPES),
            ("colour", self.colour, COLOURS),
            ("slot", self.slot, SLOTS),
        ):
            if value not in allowed:
                raise ValueError(f"SceneObject.{name}: expected one of {allowed}, got {value!r}")


@dataclass(frozen=True)
class Scene:
    """The content of an item: one object (any slot) or two (left and right, distinct shapes).

    ``item_id`` names the content (``"red-circle@left+blue-square@right"``); ``objects`` are
    stored left to right.
    """

    objects: tuple[SceneObject, ...]

    def __post_init__(self) -> None:
        objs = tuple(self.objects)
        if len(objs) not in (1, 2) or not all(isinstance(o, SceneObject) for o in objs):
            raise ValueError(
                f"Scene.objects: expected one or two SceneObjects, got {len(objs)} object(s)"
            )
        if len(objs) == 2:
            if (objs[0].slot, objs[1].slot) != ("left", "right"):
                raise ValueError(
                    "Scene.objects: expected a pair in slots ('left', 'right'), "
                    f"got {(objs[0].slot, objs[1].slot)}"
                )
            if objs[0].shape == objs[1].shape:
                raise ValueError(
                    f"Scene.objects: expected two different shapes, got {objs[0].shape!r} twice"
                )
        object.__setattr__(self, "objects", objs)

    @property
    def item_id(self) -> str:
        return "+".join(f"{o.colour}-{o.shape}@{o.slot}" for o in self.objects)

    @classmethod
    def from_item_id(cls, item_id: str) -> Scene:
        """The scene named by ``item_id`` (inverse of :attr:`item_id`)."""
        if not isinstance(item_id, str):
            raise TypeError(f"item_id: expected a string, got {type(item_id).__name__}")
        objects = []
        for part in item_id.split("+"):
            colour_shape, _, slot = part.partition("@")
            colour, _, shape = colour_shape.partition("-")
            if not slot or not shape:
                raise ValueError(
                    f"item_id: expected 'colour-shape@slot' parts joined by '+', got {item_id!r}"
                )
            objects.append(SceneObject(shape, colour, slot))
        return cls(tuple(objects))

    @property
    def shapes(self) -> tuple[str, ...]:
        return tuple(o.shape for o in self.objects)

    @property
    def object_names(self) -> str:
        """The shapes, sorted and ';'-joined (the ``objects`` column: ``'circle;square'``)."""
        return ";".join(sorted(self.shapes))

    @property
    def signature(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The bag of words of the content: sorted shapes and sorted colours (no binding/order)."""
        return tuple(sorted(self.shapes)), tuple(sorted(o.colour for o in self.objects))

    @property
    def decorrelated(self) -> bool:
        """True when the scene shows one object of a held-back pair without its partner."""
        shapes = set(self.shapes)
        return any((a in shapes) != (b in shapes) for a, b in HELD_BACK_PAIRS)

    @property
    def in_training_distribution(self) -> bool:
        """True when the scene respects the co-occurrence of every held-back pair."""
        return not self.decorrelated


def all_scenes() -> list[Scene]:
    """Every content of the world (single objects in 3 slots, ordered pairs of distinct shapes)."""
    singles = [Scene((SceneObject(s, c, slot),)) for s in SHAPES for c in COLOURS for slot in SLOTS]
    pairs = [
        Scene((SceneObject(s1, c1, "left"), SceneObject(s2, c2, "right")))
        for s1 in SHAPES
        for c1 in COLOURS
        for s2 in SHAPES
        for c2 in COLOURS
        if s1 != s2
    ]
    return singles + pairs


def training_scenes() -> list[Scene]:
    """Contents the image tower may see in training: held-back pairs only ever together."""
    return [s for s in all_scenes() if s.in_training_distribution]


def n_signatures() -> int:
    """How many items with distinct bags of words exist (the most ``sample_items`` can return)."""
    return len({s.signature for s in all_scenes()})


def sample_items(
    n_items: int, rng: np.random.Generator, decorrelated_share: float | None = None
) -> list[Scene]:
    """``n_items`` contents with pairwise distinct bags of words (signatures), in random order.

    Two contents with the same words differ only in binding or order ("red circle, blue square"
    vs "blue circle, red square"); a sentence encoder reads them as near-paraphrases. Items are
    kept apart in their words so that content recall measures how well a language's meaning is
    resolved, not compositional binding, which is a different weakness.

    ``decorrelated_share``: the share of items that show a held-back object without its partner
    (``round(share · n_items)`` of them); ``None`` samples signatures uniformly (about half are
    decorrelated then).
    """
    n_items = check_positive_int(n_items, "n_items")
    by_signature: dict[tuple[tuple[str, ...], tuple[str, ...]], list[Scene]] = {}
    for scene in all_scenes():
        by_signature.setdefault(scene.signature, []).append(scene)
    signatures = sorted(by_signature)
    if n_items > len(signatures):
        raise ValueError(
            f"n_items: expected at most {len(signatures)} (distinct contents), got {n_items}"
        )
    if decorrelated_share is None:
        chosen = [signatures[int(i)] for i in rng.choice(len(signatures), n_items, replace=False)]
    else:
        share = float(decorrelated_share)
        if not 0.0 <= share <= 1.0:
            raise ValueError(
                f"decorrelated_share: expected a number in [0, 1], got {decorrelated_share!r}"
            )
        apart = [g for g in signatures if by_signature[g][0].decorrelated]
        together = [g for g in signatures if not by_signature[g][0].decorrelated]
        n_apart = int(round(share * n_items))
        if n_apart > len(apart) or n_items - n_apart > len(together):
            raise ValueError(
                f"decorrelated_share: {n_apart} decorrelated and {n_items - n_apart} other items "
                f"requested, but only {len(apart)} and {len(together)} distinct contents exist"
            )
        picked = [apart[int(i)] for i in rng.choice(len(apart), n_apart, replace=False)]
        picked += [
            together[int(i)] for i in rng.choice(len(together), n_items - n_apart, replace=False)
        ]
        chosen = [picked[int(i)] for i in rng.permutation(n_items)]
    return [by_signature[g][int(rng.integers(len(by_signature[g])))] for g in chosen]


# --------------------------------------------------------------------------- drawing
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    n = size * _SUPERSAMPLE
    coords = (np.arange(n, dtype=np.float64) + 0.5) / n
    y, x = np.meshgrid(coords, coords, indexing="ij")
    return x, y


def _polygon_mask(x: np.ndarray, y: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Even-odd rule: is each point inside the polygon ``vertices`` ``[V, 2]``?"""
    inside = np.zeros(x.shape, dtype=bool)
    vx, vy = vertices[:, 0], vertices[:, 1]
    for i in range(len(vertices)):
        x0, y0, x1, y1 = vx[i - 1], vy[i - 1], vx[i], vy[i]
        crosses = (y0 > y) != (y1 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_cross = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
        inside ^= crosses & (x < x_cross)
    return inside


def _star_vertices() -> np.ndarray:
    angles = -np.pi / 2 + np.arange(10) * np.pi / 5
    radii = np.where(np.arange(10) % 2 == 0, 1.0, 0.42)
    return np.stack([radii * np.cos(angles), radii * np.sin(angles) + 0.08], axis=1)


_TRIANGLE = np.array([[0.0, -0.92], [0.98, 0.78], [-0.98, 0.78]])
_STAR = _star_vertices()


def shape_mask(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inside-test of a shape in unit coordinates (``u`` right, ``v`` down, radius about 1)."""
    if shape == "circle":
        return u**2 + v**2 <= 0.92
    if shape == "square":
        return (np.abs(u) <= 0.8) & (np.abs(v) <= 0.8)
    if shape == "triangle":
        return _polygon_mask(u, v, _TRIANGLE)
    if shape == "star":
        return _polygon_mask(u, v, _STAR)
    if shape == "cross":
        return ((np.abs(u) <= 0.3) & (np.abs(v) <= 0.95)) | (
            (np.abs(v) <= 0.3) & (np.abs(u) <= 0.95)
        )
    if shape == "heart":
        hx, hy = 1.2 * u, -1.2 * v + 0.25  # implicit heart curve (x² + y² − 1)³ = x²y³
        return (hx**2 + hy**2 - 1) ** 3 - hx**2 * hy**3 <= 0
    raise ValueError(f"shape: expected one of {SHAPES}, got {shape!r}")


def _texture(
    culture: Culture, x: np.ndarray, y: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """The culture's pattern in [0, 1] (0 = base colour, 1 = accent), with a random phase."""
    period = culture.period * rng.uniform(0.85, 1.15)
    phase = rng.uniform(0.0, 1.0, size=2)
    px, py = x / period + phase[0], y / period + phase[1]
    kind = culture.texture
    if kind == "hstripes":
        pattern = (py % 1.0) < 0.5
    elif kind == "vstripes":
        pattern = (px % 1.0) < 0.5
    elif kind == "diagonal":
        pattern = ((px + py) % 1.0) < 0.5
    elif kind == "checks":
        pattern = ((np.floor(px) + np.floor(py)) % 2) == 0
    elif kind == "dots":
        pattern = ((px % 1.0) - 0.5) ** 2 + ((py % 1.0) - 0.5) ** 2 < 0.09
    elif kind == "grid":
        pattern = ((px % 1.0) < 0.22) | ((py % 1.0) < 0.22)
    elif kind == "rings":
        cx, cy = rng.uniform(0.2, 0.8, size=2)
        pattern = (np.hypot(x - cx, y - cy) / period + phase[0]) % 1.0 < 0.5
    elif kind == "waves":
        pattern = ((py + 0.35 * np.sin(2 * np.pi * px / 1.6)) % 1.0) < 0.5
    else:
        raise ValueError(f"culture.texture: unknown texture {kind!r}")
    return pattern.astype(np.float64)


def draw_scene(
    scene: Scene,
    culture: str,
    *,
    size: int = 32,
    rng: np.random.Generator | None = None,
    style_strength: float = 1.0,
) -> np.ndarray:
    """Draw ``scene`` on ``culture``'s background: a ``[size, size, 3]`` uint8 RGB array.

    Args:
        scene: the content.
        culture: a key of :data:`CULTURES`.
        size: image side in pixels (16–128; the world uses 32).
        rng: source of the drawing jitter (texture phase/period, object position/size);
            default ``np.random.default_rng(0)``.
        style_strength: contrast of the culture texture, 0 (flat base colour) to 1.
    """
    if not isinstance(scene, Scene):
        raise TypeError(f"scene: expected a Scene, got {type(scene).__name__}")
    if culture not in CULTURES:
        raise ValueError(f"culture: expected one of {sorted(CULTURES)}, got {culture!r}")
    size = check_positive_int(size, "size", minimum=16)
    if size > 128:
        raise ValueError(f"size: expected at most 128 pixels, got {size}")
    strength = float(style_strength)
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"style_strength: expected a number in [0, 1], got {style_strength!r}")
    rng = np.random.default_rng(0) if rng is None else rng
    style = CULTURES[culture]
    x, y = _grid(size)
    pattern = strength * _texture(style, x, y, rng)
    base, accent = np.asarray(style.base, float), np.asarray(style.accent, float)
    canvas = base + pattern[..., None] * (accent - base)
    radius = 0.2 if len(scene.objects) == 1 else 0.19
    for obj in scene.objects:
        cx = _SLOT_X[obj.slot] + rng.uniform(-0.03, 0.03)
        cy = 0.5 + rng.uniform(-0.08, 0.08)
        r = radius * rng.uniform(0.9, 1.08)
        mask = shape_mask(obj.shape, (x - cx) / r, (y - cy) / r)
        canvas[mask] = COLOUR_RGB[obj.colour]
    pooled = canvas.reshape(size, _SUPERSAMPLE, size, _SUPERSAMPLE, 3).mean(axis=(1, 3))
    return np.clip(np.rint(pooled), 0, 255).astype(np.uint8)


def draw_scenes(
    scenes: Sequence[Scene],
    cultures: Sequence[str],
    *,
    size: int = 32,
    seed: int = 0,
    style_strength: float = 1.0,
) -> np.ndarray:
    """Draw ``scenes[i]`` in ``cultures[i]``: ``[N, size, size, 3]`` uint8.

    Drawing ``i`` uses its own generator seeded by ``(seed, i)``, so a drawing does not depend
    on how many were drawn before it.
    """
    if len(scenes) != len(cultures):
        raise ValueError(
            f"cultures: expected {len(scenes)} cultures (one per scene), got {len(cultures)}"
        )
    out = np.empty((len(scenes), size, size, 3), dtype=np.uint8)
    for i, (scene, culture) in enumerate(zip(scenes, cultures, strict=True)):
        rng = np.random.default_rng([seed, i])
        out[i] = draw_scene(scene, culture, size=size, rng=rng, style_strength=style_strength)
    return out
