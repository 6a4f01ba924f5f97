"""Synthetic embedded worlds for the processor tests (small, seeded, with known structure).

Each item has a random content direction and a culture; its image is content + a culture
direction, its captions (one per language) are content + a language direction (+ optionally a
pull toward the culture of the language, the "tugging" signal), all plus Gaussian noise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pytest
import torch

from xcm_debias import EmbeddingSet
from xcm_debias.processors import (
    CultureLanguageDecoupler,
    InvGC,
    LanguageAlignment,
    LanguageProjection,
    OTRecenter,
    PostProcessor,
)

LANGUAGES = ("de", "en", "sw")


def make_world(
    n_items: int = 48,
    dim: int = 16,
    languages: Sequence[str] = LANGUAGES,
    cultures: Sequence[str] | None = None,
    language_strength: float = 0.6,
    culture_strength: float = 0.6,
    tug: float = 0.0,
    noise: float = 0.15,
    images_per_item: int = 1,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> EmbeddingSet:
    """Images (``images_per_item`` per item, cultures cycling) and one caption per language."""
    cultures = tuple(languages if cultures is None else cultures)
    g = torch.Generator().manual_seed(seed)
    content = torch.randn(n_items, dim, generator=g, dtype=torch.float64)
    lang_dir = torch.randn(len(languages), dim, generator=g, dtype=torch.float64)
    cult_dir = torch.randn(len(cultures), dim, generator=g, dtype=torch.float64)
    rows, modality, item, language, culture = [], [], [], [], []
    for i in range(n_items):
        for j in range(images_per_item):
            c = (i + j) % len(cultures)
            rows.append(content[i] + culture_strength * cult_dir[c])
            modality.append("image")
            item.append(f"item{i}")
            language.append("")
            culture.append(cultures[c])
        for lang_index, lang in enumerate(languages):
            vec = content[i] + language_strength * lang_dir[lang_index]
            if tug and lang in cultures:
                vec = vec + tug * cult_dir[cultures.index(lang)]
            rows.append(vec)
            modality.append("text")
            item.append(f"item{i}")
            language.append(lang)
            culture.append("")
    x = torch.stack(rows)
    x = x + noise * torch.randn(x.shape, generator=g, dtype=torch.float64)
    x = x / x.norm(dim=1, keepdim=True)
    return EmbeddingSet(
        x.to(dtype), modality=modality, item=item, language=language, culture=culture
    )


def make_texts(
    n: int,
    dim: int,
    languages: Sequence[str] = LANGUAGES,
    signal: float = 1.0,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> tuple[EmbeddingSet, torch.Tensor, np.ndarray]:
    """Unit-norm captions whose language shifts them along random directions (``signal``).

    Returns the set, its embeddings and the integer language codes.
    """
    g = torch.Generator().manual_seed(seed)
    codes = np.arange(n) % len(languages)
    shift = torch.randn(len(languages), dim, generator=g, dtype=torch.float64)
    x = torch.randn(n, dim, generator=g, dtype=torch.float64) + signal * shift[codes]
    x = x / x.norm(dim=1, keepdim=True)
    labels = np.array(languages)[codes]
    return EmbeddingSet(x.to(dtype), modality="text", language=labels), x, codes


# every processor configuration the generic tests (save/load, properties, chains) run over
CONFIGS: dict[str, Callable[[], PostProcessor]] = {
    "projection-center": lambda: LanguageProjection(method="center"),
    "projection-subspace": lambda: LanguageProjection(method="subspace"),
    "projection-leace": lambda: LanguageProjection(method="leace"),
    "projection-lir": lambda: LanguageProjection(method="lir", rank=2),
    "alignment-ridge": lambda: LanguageAlignment(method="ridge"),
    "alignment-procrustes": lambda: LanguageAlignment(method="procrustes", target="en"),
    "alignment-contrastive": lambda: LanguageAlignment(
        method="contrastive", target="image", max_steps=10
    ),
    "decoupler-oblique": lambda: CultureLanguageDecoupler(method="oblique"),
    "decoupler-orthogonal": lambda: CultureLanguageDecoupler(method="orthogonal"),
    "ot-mean": lambda: OTRecenter(method="mean"),
    "ot-diag": lambda: OTRecenter(method="diag"),
    "ot-lowrank": lambda: OTRecenter(method="lowrank", rank=4),
    "ot-gaussian": lambda: OTRecenter(method="gaussian"),
    "ot-modality": lambda: OTRecenter(groups="modality", method="mean"),
    "invgc-local": lambda: InvGC(r_g=0.3, r_q=0.2, pool_rate=0.1),
    "invgc-full": lambda: InvGC(r_g=0.3, r_q=0.2, local_adj=False, apply_to=("image", "text")),
}


def interleaved_texts(
    languages: Sequence[str], dim: int, seed: int, rows: int = 150
) -> tuple[np.ndarray, torch.Tensor, EmbeddingSet]:
    """``rows`` float64 captions whose languages (``languages`` and an unseen ``"xx"``) change
    from row to row: ``(languages per row, embeddings, the EmbeddingSet)``."""
    langs = np.random.default_rng(seed).choice([*languages, "xx"], size=rows)
    x = torch.randn(
        rows, dim, dtype=torch.float64, generator=torch.Generator().manual_seed(seed + 1)
    )
    return langs, x, EmbeddingSet(x, modality="text", language=langs)


def transform_with_unseen(proc: PostProcessor, data: EmbeddingSet) -> torch.Tensor:
    """``proc.transform(data)``'s float32 embeddings, warning about the unseen language."""
    with pytest.warns(UserWarning, match="not seen at fit"):
        out = proc.transform(data).embeddings
    assert out.dtype == torch.float32
    return out
