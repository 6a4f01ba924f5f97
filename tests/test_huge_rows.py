"""Rows of any finite magnitude rank as their direction says (no overflow to zero vectors)."""

from __future__ import annotations

import pytest
import torch
from scoring_fixtures import multilingual_corpus

from xcm_debias import EmbeddingSet, ExactRetriever
from xcm_debias.configs import build
from xcm_debias.faiss_retriever import FaissRetriever
from xcm_debias.safe_norm import safe_scaled_rows

RETRIEVERS = {"exact": ExactRetriever, "faiss": FaissRetriever}


@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    return torch.randn(5, 8, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("retriever", sorted(RETRIEVERS))
@pytest.mark.parametrize(
    ("scale", "dtype"),
    [(1e19, torch.float32), (1e19, torch.float64), (1e-30, torch.float32), (1e300, torch.float64)],
)
def test_huge_and_tiny_galleries_rank_like_the_unit_one(x, retriever, scale, dtype):
    queries = EmbeddingSet(x, modality="text")
    expected = RETRIEVERS[retriever]().search(queries, EmbeddingSet(x, modality="image"), 5)
    gallery = EmbeddingSet(x.to(dtype) * scale, modality="image")
    got = RETRIEVERS[retriever]().search(queries, gallery, 5)
    assert torch.equal(got.indices, expected.indices)
    torch.testing.assert_close(got.scores, expected.scores, atol=1e-6, rtol=0)
    assert got.scores[:, 0].min() > 0.5  # the scores are cosines, not the zeros of an overflow


def test_a_power_of_two_scale_changes_no_bit(x):
    unit = EmbeddingSet(x, modality="image").normalized().embeddings
    for exponent in (70, -70, 120):
        scaled = EmbeddingSet(x * 2.0**exponent, modality="image").normalized().embeddings
        assert torch.equal(scaled, unit)


def test_ordinary_rows_are_not_copied(x):
    assert safe_scaled_rows(x) is x
    scaled = safe_scaled_rows(x * 1e20)
    peaks = scaled.abs().amax(dim=1)
    assert bool(((peaks >= 0.5) & (peaks < 1)).all())  # by a power of two, to [0.5, 1)
    ratio = scaled / (x * 1e20)
    assert torch.equal(ratio, ratio[:, :1].expand_as(ratio))  # one exact factor per row
    assert torch.equal(torch.frexp(ratio)[0], torch.full_like(ratio, 0.5))


def test_subnormal_rows_are_not_zero():
    x = torch.full((2, 4), 1e-45)  # the smallest float32 subnormal
    x[1, 0] = 3e-45  # twice the others
    unit = EmbeddingSet(x, modality="image").normalized().embeddings
    assert torch.allclose(unit.norm(dim=1), torch.ones(2))
    assert unit[1, 0] > unit[1, 1]


@pytest.mark.parametrize("name", ["recommended", "language_eraser"])
def test_debiased_rankings_ignore_a_huge_row_scale(name):
    corpus = multilingual_corpus(n_items=30, dim=12)
    fair = build(name).fit(corpus)
    texts, images = corpus.texts, corpus.images
    expected = fair.search(texts, images, 5).indices
    huge = images.with_embeddings(images.embeddings * 2.0**70)
    assert torch.equal(fair.search(texts, huge, 5).indices, expected)
    huge_queries = texts.with_embeddings(texts.embeddings * 1e20)
    assert (fair.search(huge_queries, images, 5).indices == expected).float().mean() == 1.0
