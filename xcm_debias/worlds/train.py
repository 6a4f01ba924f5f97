"""LiT-style training of the world's image tower against frozen USE-m3 caption embeddings.

The training set imitates web data: each image is a random scene drawn in one culture (uniform
over the eight) with one caption whose language follows a web-like mix:

- with probability ``native_rate`` (``low_resource_native_rate`` for Swahili/Vietnamese
  cultures) the caption is in the culture's own language;
- otherwise it is English with probability ``english_rate``, else one of the other
  high-resource languages (uniformly, never the native one).

So most captions are English, a culture's images co-occur with its language, and low-resource
languages are rare. A share ``explicit_rate`` of the captions also *names* the image's culture
in words (``culture_words.culture_caption``: *…, in Japanese style*, *…, aus Japan*), as web
captions sometimes do, so the tower learns culture words as content. Nothing else ties culture to language: the biases of the trained world are
*learned* from this co-occurrence and from how USE-m3 embeds the languages.

Objective: the symmetric InfoNCE loss of CLIP (Radford et al. 2021) with a learnable logit
scale, only the image tower trained (LiT, Zhai et al. CVPR 2022):
``L = ½ [CE(s·I Tᵀ, diag) + CE(s·T Iᵀ, diag)]``, ``s = exp(log_scale) ≤ 100``.
AdamW with linear warm-up and cosine decay. Seeded and deterministic for a given machine and
thread count.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from tqdm.auto import tqdm

from xcm_debias._validation import check_positive_int
from xcm_debias.worlds.cache import text_embeddings
from xcm_debias.worlds.captions import (
    CULTURE_OF_LANGUAGE,
    HIGH_RESOURCE,
    LOW_RESOURCE,
    N_TEMPLATES,
    caption,
)
from xcm_debias.worlds.culture_words import FORMS, culture_caption
from xcm_debias.worlds.scenes import CULTURES, Scene, draw_scenes, training_scenes
from xcm_debias.worlds.tower import ImageTower, to_pixels

_MAX_LOG_SCALE = math.log(100.0)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained tower (saved beside its weights as JSON)."""

    seed: int = 0
    n_images: int = 12000
    image_size: int = 32
    style_strength: float = 1.0
    native_rate: float = 0.5
    low_resource_native_rate: float = 0.15
    english_rate: float = 0.9
    explicit_rate: float = 0.5
    width: int = 16
    epochs: int = 10
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_steps: int = 50
    init_temperature: float = 0.07
    threads: int = 2

    def __post_init__(self) -> None:
        for name in ("n_images", "image_size", "width", "epochs", "batch_size", "threads"):
            check_positive_int(getattr(self, name), name)
        check_positive_int(self.warmup_steps, "warmup_steps", minimum=0)
        for name in (
            "native_rate",
            "low_resource_native_rate",
            "english_rate",
            "explicit_rate",
            "style_strength",
        ):
            value = getattr(self, name)
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{name}: expected a number in [0, 1], got {value!r}")
        for name in ("lr", "weight_decay"):
            if not float(getattr(self, name)) >= 0:
                raise ValueError(
                    f"{name}: expected a non-negative number, got {getattr(self, name)!r}"
                )

    @classmethod
    def from_dict(cls, values: dict[str, object]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"config: unknown TrainConfig fields {unknown}")
        return cls(**values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class TrainingSet:
    """The web-like training pairs: scene, culture, caption language and caption per image
    (``explicit``: the caption names the image's culture)."""

    scenes: list[Scene]
    cultures: list[str]
    languages: list[str]
    captions: list[str]
    explicit: list[bool]
    images: np.ndarray  # [N, S, S, 3] uint8


def caption_language(culture: str, config: TrainConfig, rng: np.random.Generator) -> str:
    """Draw the language of one training caption of an image of ``culture``."""
    native = next(lang for lang, c in CULTURE_OF_LANGUAGE.items() if c == culture)
    p_native = config.low_resource_native_rate if native in LOW_RESOURCE else config.native_rate
    if rng.random() < p_native:
        return native
    if rng.random() < config.english_rate:
        return "en"
    others = [lang for lang in HIGH_RESOURCE if lang not in ("en", native)]
    return others[int(rng.integers(len(others)))]


def make_training_set(config: TrainConfig) -> TrainingSet:
    """Sample and draw the training pairs of ``config`` (deterministic in ``config.seed``)."""
    rng = np.random.default_rng([config.seed, 1])
    pool = training_scenes()
    cultures_pool = sorted(CULTURES)
    # the explicit draws come from their own stream, so the pairs stay those of explicit_rate 0
    explicit_rng = np.random.default_rng([config.seed, 5])
    scenes, cultures, languages, captions, explicit = [], [], [], [], []
    for _ in range(config.n_images):
        scene = pool[int(rng.integers(len(pool)))]
        culture = cultures_pool[int(rng.integers(len(cultures_pool)))]
        language = caption_language(culture, config, rng)
        template = int(rng.integers(N_TEMPLATES))
        named = bool(explicit_rng.random() < config.explicit_rate)
        form = FORMS[int(explicit_rng.integers(len(FORMS)))]
        scenes.append(scene)
        cultures.append(culture)
        languages.append(language)
        explicit.append(named)
        captions.append(
            culture_caption(scene, language, template, culture, form)
            if named
            else caption(scene, language, template)
        )
    images = draw_scenes(
        scenes,
        cultures,
        size=config.image_size,
        seed=config.seed + 1_000_003,
        style_strength=config.style_strength,
    )
    return TrainingSet(scenes, cultures, languages, captions, explicit, images)


def clip_loss(image: torch.Tensor, text: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE of matched rows (unit vectors), scale ``exp(log_scale)``."""
    logits = log_scale.exp() * image @ text.T
    target = torch.arange(len(image), device=image.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def _lr_at(step: int, total: int, config: TrainConfig) -> float:
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, total - config.warmup_steps)
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def train_tower(
    config: TrainConfig | None = None,
    *,
    max_steps: int | None = None,
    progress: bool = True,
) -> tuple[ImageTower, dict[str, object]]:
    """Train an image tower; returns it (eval mode) and a log (losses, timings, counts).

    ``max_steps`` stops early (for smoke tests); the learning-rate schedule still spans the
    configured epochs.
    """
    config = config or TrainConfig()
    if max_steps is not None:
        check_positive_int(max_steps, "max_steps")
    threads_before = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        start = time.perf_counter()
        data = make_training_set(config)
        drawn = time.perf_counter()
        text = text_embeddings(data.captions)
        encoded = time.perf_counter()
        torch.manual_seed(config.seed)
        tower = ImageTower(
            width=config.width,
            image_size=config.image_size,
            init_temperature=config.init_temperature,
        )
        pixels = to_pixels(data.images)
        optimizer = torch.optim.AdamW(
            tower.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        generator = torch.Generator().manual_seed(config.seed)
        steps_per_epoch = max(1, len(pixels) // config.batch_size)
        total = steps_per_epoch * config.epochs
        losses: list[float] = []
        tower.train()
        bar = tqdm(total=min(total, max_steps or total), desc="LiT", disable=not progress)
        step = 0
        with bar:
            for _ in range(config.epochs):
                order = torch.randperm(len(pixels), generator=generator)
                for b in range(steps_per_epoch):
                    if max_steps is not None and step >= max_steps:
                        break
                    rows = order[b * config.batch_size : (b + 1) * config.batch_size]
                    for group in optimizer.param_groups:
                        group["lr"] = _lr_at(step, total, config)
                    loss = clip_loss(tower(pixels[rows]), text[rows], tower.log_scale)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    with torch.no_grad():
                        tower.log_scale.clamp_(max=_MAX_LOG_SCALE)
                    losses.append(float(loss.detach()))
                    step += 1
                    bar.update(1)
                    bar.set_postfix(loss=f"{losses[-1]:.3f}")
        tower.eval()
        done = time.perf_counter()
    finally:
        torch.set_num_threads(threads_before)
    language_counts = {lang: data.languages.count(lang) for lang in sorted(set(data.languages))}
    log = {
        "steps": step,
        "final_loss": float(np.mean(losses[-steps_per_epoch:])) if losses else float("nan"),
        "losses_per_epoch": [
            float(np.mean(losses[i : i + steps_per_epoch]))
            for i in range(0, len(losses), max(1, steps_per_epoch))
        ],
        "temperature": float(torch.exp(-tower.log_scale.detach())),
        "caption_languages": language_counts,
        "culture_explicit_captions": int(sum(data.explicit)),
        "seconds": {
            "draw": round(drawn - start, 1),
            "encode_captions": round(encoded - drawn, 1),
            "train": round(done - encoded, 1),
            "total": round(done - start, 1),
        },
    }
    return tower, log


def save_tower(
    tower: ImageTower, config: TrainConfig, directory: str | Path, log: dict[str, object]
) -> Path:
    """Write ``tower.safetensors`` (float32) and ``tower.json`` (config + log) to ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().float().contiguous() for k, v in tower.state_dict().items()}
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    path = directory / "tower.safetensors"
    save_file(state, str(path), metadata={"format": "xcm_debias.worlds.ImageTower"})
    meta = {"config": asdict(config), "training": log}
    (directory / "tower.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    return path
