"""Cached indexes and processed galleries never serve a gallery that changed, and go with it."""

from __future__ import annotations

import gc

import numpy as np
import pytest
import torch
from scoring_fixtures import multilingual_corpus

from xcm_debias import Debiased, EmbeddingSet, ExactRetriever
from xcm_debias.faiss_retriever import FaissRetriever
from xcm_debias.processors import LanguageProjection
from xcm_debias.scoring import InvertedSoftmax


def test_faiss_rebuilds_for_a_gallery_edited_in_place():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((10000, 64)).astype(np.float32)
    gallery = EmbeddingSet(torch.from_numpy(x), modality="image")  # shares x's memory
    queries = EmbeddingSet(torch.from_numpy(rng.standard_normal((1, 64))), modality="text")
    retriever = FaissRetriever()
    before = retriever.search(queries, gallery, 1).indices.item()
    x[1] = 3 * queries.embeddings.numpy()[0]  # row 1 (no sampled row) now matches query 0
    assert before != 1
    assert retriever.search(queries, gallery, 1).indices.item() == 1
    assert ExactRetriever().search(queries, gallery, 1).indices.item() == 1


@pytest.fixture(scope="module")
def fair_and_corpus():
    corpus = multilingual_corpus(n_items=12, dim=8)
    fair = Debiased(ExactRetriever(), LanguageProjection(), InvertedSoftmax(beta=5.0))
    return fair.fit(corpus), corpus


def test_debiased_sees_edits_made_through_the_callers_numpy_array(fair_and_corpus):
    fair, corpus = fair_and_corpus
    array = np.random.default_rng(0).standard_normal((1000, corpus.dim)).astype(np.float32)
    gallery = EmbeddingSet(torch.from_numpy(array), modality="image")  # shares the memory
    queries = corpus.texts[:1]
    before = fair.search(queries, gallery, 1000).indices
    # row 1 (between sampled rows) now points where query 0 does: same object, same
    # tensor version counter, other content
    array[1] = 50 * queries.embeddings.numpy()[0]
    fresh = EmbeddingSet(torch.from_numpy(array.copy()), modality="image")
    expected = fair.search(queries, fresh, 1000).indices
    assert not torch.equal(expected, before)
    assert torch.equal(fair.search(queries, gallery, 1000).indices, expected)


@pytest.mark.parametrize("processors", [True, False])
def test_cached_galleries_go_with_the_callers_object(fair_and_corpus, processors):
    fitted, corpus = fair_and_corpus
    fair = fitted if processors else Debiased(ExactRetriever(), None, InvertedSoftmax()).fit(corpus)
    fair.clear_cache()
    galleries = [corpus.images.with_embeddings(corpus.images.embeddings + i) for i in range(3)]
    for gallery in galleries:
        fair.search(corpus.texts, gallery, 2)
    assert len(fair._cache) == 3
    del gallery
    galleries.pop()
    gc.collect()
    assert len(fair._cache) == 2
    fair.clear_cache()
    assert len(fair._cache) == 0
    fair.search(corpus.texts, galleries[0], 2)  # still works after a clear
    assert len(fair._cache) == 1
