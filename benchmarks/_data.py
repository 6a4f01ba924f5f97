"""Synthetic embeddings for the scale benchmarks: unit-norm Gaussians with item structure.

Every item ``i`` has a content direction ``c_i``; its image is ``normalize(c_i + m_img + σ ε)``,
its captions ``normalize(c_i + m_txt + ℓ_L + σ ε)`` (``m`` a modality offset — the modality
gap —, ``ℓ_L`` a language offset). Gallery-sized sets are generated in row chunks into one
preallocated tensor, so building them never needs more than the result plus one chunk.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch

from xcm_debias import EmbeddingSet

LANGUAGES = ("en", "de", "fr", "ja", "it", "sw", "vi")
CHUNK = 65536
CACHE = Path(os.environ.get("XCM_BENCH_CACHE", "/tmp/xcm_bench_cache"))
BLOCK = 4096
NOISE = 0.8


def _offsets(dim: int) -> dict[str, torch.Tensor]:
    """Modality and language offsets (norms ≈ 0.6 and 0.3 against unit content)."""
    g = torch.Generator().manual_seed(10_000)
    return {
        "image": 0.6 * torch.randn(dim, generator=g) / dim**0.5,
        "text": 0.6 * torch.randn(dim, generator=g) / dim**0.5,
        "languages": 0.3 * torch.randn(len(LANGUAGES), dim, generator=g) / dim**0.5,
    }


def rows(
    n: int,
    dim: int,
    modality: str,
    seed: int,
    item_offset: int = 0,
    items: torch.Tensor | None = None,
    languages: torch.Tensor | None = None,
) -> torch.Tensor:
    """``[n, dim]`` unit rows of items ``item_offset .. item_offset + n`` (or ``items``);
    captions in language ``languages[i]`` (default: item number mod 7).

    Cached as ``.npy`` under ``$XCM_BENCH_CACHE`` (default ``/tmp/xcm_bench_cache``): the
    benchmarks start one process per measured case, and generating a 1M-row gallery costs
    more than most of the cases it serves. A cached file is read whole (resident before timing).
    """
    key = hashlib.blake2b(digest_size=12)
    key.update(repr((n, dim, modality, seed, item_offset, NOISE, BLOCK)).encode())
    for extra in (items, languages):
        key.update(b"-" if extra is None else extra.numpy().tobytes())
    path = CACHE / f"{modality}_{n}_{dim}_{key.hexdigest()}.npy"
    if path.exists():
        return torch.from_numpy(np.load(path))
    out = _generate(n, dim, modality, seed, item_offset, items, languages)
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + f".{os.getpid()}.partial.npy")
    np.save(partial, out.numpy())
    os.replace(partial, path)
    return out


def _generate(
    n: int,
    dim: int,
    modality: str,
    seed: int,
    item_offset: int,
    items: torch.Tensor | None,
    languages: torch.Tensor | None,
) -> torch.Tensor:
    out = torch.empty(n, dim)
    off = _offsets(dim)
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        chunk = (
            torch.arange(item_offset + start, item_offset + stop)
            if items is None
            else items[start:stop]
        )
        x = _content(chunk, dim) + off[modality]
        if modality == "text":
            lang = chunk % len(LANGUAGES) if languages is None else languages[start:stop]
            x += off["languages"][lang]
        g = torch.Generator().manual_seed(seed * 1_000_003 + start)
        x += NOISE * torch.randn(stop - start, dim, generator=g) / dim**0.5
        out[start:stop] = torch.nn.functional.normalize(x, dim=1)
    return out


def _content(items: torch.Tensor, dim: int) -> torch.Tensor:
    """Unit content directions (64 topics + an item part), a pure function of the item number."""
    topics = torch.randn(64, dim, generator=torch.Generator().manual_seed(7)) / dim**0.5
    out = torch.empty(len(items), dim)
    block_of = items // BLOCK
    for block in torch.unique(block_of).tolist():
        at = (block_of == block).nonzero().flatten()
        g = torch.Generator().manual_seed(1_000 + block)
        out[at] = (torch.randn(BLOCK, dim, generator=g) / dim**0.5)[items[at] % BLOCK]
    out += topics[items % 64]
    return torch.nn.functional.normalize(out, dim=1)


def embedding_set(n: int, dim: int, modality: str, seed: int, item_offset: int = 0) -> EmbeddingSet:
    """Rows of ``n`` items of one modality, labelled (texts cycle through the languages)."""
    items = np.arange(item_offset, item_offset + n)
    language = np.array(LANGUAGES)[items % len(LANGUAGES)] if modality == "text" else None
    return EmbeddingSet(
        rows(n, dim, modality, seed, item_offset),
        modality=modality,
        item=items.astype(np.str_),
        language=language,
        culture=np.array(LANGUAGES)[items % len(LANGUAGES)] if modality == "image" else None,
    )


def calibration(
    n_items: int, dim: int, seed: int = 1, item_offset: int = 10**8, captions: int = 7
) -> EmbeddingSet:
    """``n_items`` items, each with one image and a caption in ``captions`` languages
    (translations, as ``LanguageAlignment`` needs); items disjoint from the galleries'."""
    items = torch.arange(item_offset, item_offset + n_items).repeat_interleave(captions)
    languages = (
        torch.arange(captions).repeat(n_items) + torch.arange(n_items).repeat_interleave(captions)
    ) % len(LANGUAGES)
    texts = EmbeddingSet(
        rows(len(items), dim, "text", seed + 1, items=items, languages=languages),
        modality="text",
        item=items.numpy().astype(np.str_),
        language=np.array(LANGUAGES)[languages.numpy()],
    )
    return EmbeddingSet.concat([embedding_set(n_items, dim, "image", seed, item_offset), texts])


def queries_and_gallery(
    n_gallery: int, n_queries: int, dim: int, seed: int
) -> tuple[EmbeddingSet, EmbeddingSet]:
    """Text queries spread evenly over the items of an image gallery (seeds ``seed``, ``seed + 1``)."""
    gallery = embedding_set(n_gallery, dim, "image", seed=seed)
    items = torch.linspace(0, n_gallery - 1, n_queries).long()
    queries = EmbeddingSet(
        rows(n_queries, dim, "text", seed=seed + 1, items=items), modality="text"
    )
    return queries, gallery
