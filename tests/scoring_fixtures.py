"""Shared data and direct dense formulas for the score-level tests (numpy, float64).

Every reference here is written from the papers' formulas on full matrices, independently of
``xcm_debias.scoring`` (which never forms them).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.special import logsumexp

from xcm_debias import EmbeddingSet


def unit_rows(n: int, dim: int, seed: int) -> torch.Tensor:
    """``n`` random L2-normalised float32 rows."""
    x = torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))
    return torch.nn.functional.normalize(x, dim=1)


def texts(n: int, dim: int, seed: int, **labels: object) -> EmbeddingSet:
    return EmbeddingSet(unit_rows(n, dim, seed), modality="text", **labels)


def images(n: int, dim: int, seed: int, **labels: object) -> EmbeddingSet:
    return EmbeddingSet(unit_rows(n, dim, seed), modality="image", **labels)


def sims(a: EmbeddingSet | torch.Tensor, b: EmbeddingSet | torch.Tensor) -> np.ndarray:
    """Dense ``a @ bᵀ`` in float64."""
    xa = a.embeddings if isinstance(a, EmbeddingSet) else a
    xb = b.embeddings if isinstance(b, EmbeddingSet) else b
    return xa.double().numpy() @ xb.double().numpy().T


def log_inverted_softmax(s_test: np.ndarray, s_bank: np.ndarray, beta: float) -> np.ndarray:
    """``log[exp(β s(q,g)) / Σ_{q̂} exp(β s(q̂,g))]`` (Smith et al. 2017); banks are rows."""
    return beta * s_test - logsumexp(beta * s_bank, axis=0)[None, :]


def activation_set(s_bank: np.ndarray, k: int) -> np.ndarray:
    """Gallery columns among the top-``k`` of at least one bank row (stable: lower index first)."""
    order = np.argsort(-s_bank, axis=1, kind="stable")[:, :k]
    mask = np.zeros(s_bank.shape[1], dtype=bool)
    mask[order.ravel()] = True
    return mask


def raw_top1(s_test: np.ndarray) -> np.ndarray:
    return np.argsort(-s_test, axis=1, kind="stable")[:, 0]


def rankings(scores: np.ndarray | torch.Tensor) -> np.ndarray:
    """Full descending ranking of each row (ties to the lower index)."""
    values = scores.numpy() if isinstance(scores, torch.Tensor) else scores
    return np.argsort(-values, axis=1, kind="stable")


def assert_equal_up_to_row_constant(a: np.ndarray, b: np.ndarray, atol: float) -> None:
    """``a − b`` is constant along every row (normalised scores up to the per-query constant)."""
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    centred = diff - diff.mean(axis=1, keepdims=True)
    assert np.abs(centred).max() < atol, f"max deviation {np.abs(centred).max():.3g} >= {atol}"


def multilingual_corpus(
    n_items: int = 24,
    dim: int = 16,
    languages: tuple[str, ...] = ("en", "de", "sw"),
    seed: int = 0,
    tug: float = 0.6,
    noise: float = 0.4,
) -> EmbeddingSet:
    """Items with one image (culture = one of the languages) and one caption per language.

    Captions carry a language direction that also points at the culture of that language's
    images (``tug``): 3XCM's cultural tugging (docs/concepts.md), in miniature.
    """
    g = torch.Generator().manual_seed(seed)
    content = torch.randn(n_items, dim, generator=g)
    culture_dir = torch.randn(len(languages), dim, generator=g)
    culture_index = torch.arange(n_items) % len(languages)
    image = content + culture_dir[culture_index] + 0.3 * torch.randn(n_items, dim, generator=g)
    captions, item, language = [], [], []
    for li, lang in enumerate(languages):
        captions.append(
            content + tug * culture_dir[li] + noise * torch.randn(n_items, dim, generator=g)
        )
        item += [f"item{i}" for i in range(n_items)]
        language += [lang] * n_items
    return EmbeddingSet.concat(
        [
            EmbeddingSet(
                image,
                modality="image",
                item=[f"item{i}" for i in range(n_items)],
                culture=[languages[int(c)] for c in culture_index],
            ),
            EmbeddingSet(torch.cat(captions), modality="text", item=item, language=language),
        ]
    )
