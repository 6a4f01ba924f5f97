"""Plain vectors in, EmbeddingSets inside: the coercion retrievers and ``Debiased`` share.

A retriever only needs vectors, so ``search``/``rank_of`` also take ``[N, D]`` numpy arrays or
torch tensors (float16/bfloat16/float32/float64, no NaN/inf, no all-zero row), as faiss and
scikit-learn users hold them. They become unlabelled :class:`~xcm_debias.data.EmbeddingSet`
rows: queries are text rows, the gallery image rows (text→image), unless a caller names the
modalities (``Debiased`` uses the one direction it fitted score stages for). Methods that need
labels (a language per caption...) then fail with their usual error naming the missing label.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from xcm_debias._validation import as_float_matrix
from xcm_debias.data import EmbeddingSet

PlainOrSet = EmbeddingSet | np.ndarray | torch.Tensor
TEXT_TO_IMAGE = ("text", "image")


def as_embedding_set(value: object, name: str, modality: str) -> EmbeddingSet:
    """``value`` itself if an EmbeddingSet, else its ``[N, D]`` rows as unlabelled ``modality`` rows.

    The array or tensor is not copied. Raises TypeError/ValueError naming ``name``.
    """
    if isinstance(value, EmbeddingSet):
        return value
    if not isinstance(value, (np.ndarray, torch.Tensor)):
        raise TypeError(
            f"{name}: expected an EmbeddingSet or a [N, D] numpy array / torch tensor of "
            f"vectors, got {type(value).__name__}"
        )
    x = as_float_matrix(value, name)
    try:
        return EmbeddingSet(x, modality=modality)
    except ValueError as exc:  # e.g. an all-zero row: name the caller's argument
        raise ValueError(f"{name}: {str(exc).removeprefix('embeddings: ')}") from exc


def as_vectors(value: object, name: str) -> torch.Tensor:
    """The ``[N, D]`` rows of an EmbeddingSet, or of a plain numpy array / torch tensor checked
    as ``as_embedding_set`` checks it (float, finite, no all-zero row), without building the
    labels a retriever does not read (at a million rows their ids cost more than a search's
    bookkeeping)."""
    if isinstance(value, EmbeddingSet):
        return value.embeddings
    if not isinstance(value, (np.ndarray, torch.Tensor)):
        raise TypeError(
            f"{name}: expected an EmbeddingSet or a [N, D] numpy array / torch tensor of "
            f"vectors, got {type(value).__name__}"
        )
    x = as_float_matrix(value, name)
    # a finite row is all zero when its largest and smallest entries are both zero: two
    # reductions with no [N, D] temporary (at 2M × 512, 0.2 s against 1.6 s for the per-row
    # largest magnitude, vector_norm(ord=inf))
    zero = ((x.amax(dim=1) == 0) & (x.amin(dim=1) == 0)).nonzero().flatten()
    if len(zero):
        raise ValueError(
            f"{name}: expected non-zero rows (cosine retrieval needs a direction), got "
            f"{len(zero)} all-zero row(s), first at row {int(zero[0])}"
        )
    return x


def as_query_gallery(
    queries: object, gallery: object, candidates: Sequence[tuple[str, str]] = ()
) -> tuple[EmbeddingSet, EmbeddingSet]:
    """Both sides as EmbeddingSets. Plain vectors take the (query, gallery) modalities of the
    one pair in ``candidates`` (e.g. the directions a ``Debiased`` fitted), else text→image."""
    candidates = list(candidates)
    query_modality, gallery_modality = candidates[0] if len(candidates) == 1 else TEXT_TO_IMAGE
    return (
        as_embedding_set(queries, "queries", query_modality),
        as_embedding_set(gallery, "gallery", gallery_modality),
    )


def like_input(data: EmbeddingSet, original: object) -> PlainOrSet:
    """``data`` in the form the caller passed: the set, a numpy array or a torch tensor."""
    if isinstance(original, EmbeddingSet):
        return data
    if isinstance(original, np.ndarray):
        return data.embeddings.detach().cpu().numpy()
    return data.embeddings
