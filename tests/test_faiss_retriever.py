from __future__ import annotations

import pytest
import torch

from xcm_debias import EmbeddingSet, ExactRetriever
from xcm_debias.faiss_retriever import FaissRetriever


def sets(n_q: int = 50, n_g: int = 2000, d: int = 16, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    g = EmbeddingSet(torch.randn(n_g, d, generator=gen), modality="image")
    q = EmbeddingSet(torch.randn(n_q, d, generator=gen), modality="text")
    return q, g


def test_flat_index_equals_exact_retriever():
    q, g = sets()
    exact = ExactRetriever().search(q, g, 10)
    flat = FaissRetriever("flat").search(q, g, 10)
    assert torch.equal(flat.indices, exact.indices)
    assert torch.allclose(flat.scores, exact.scores, atol=1e-5)


def test_ivf_visiting_every_list_is_exact():
    q, g = sets()
    exact = ExactRetriever().search(q, g, 5)
    ivf = FaissRetriever("ivf", nlist=8, nprobe=8).search(q, g, 5)
    assert torch.equal(ivf.indices, exact.indices)


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_indexes_keep_most_true_neighbours(kind):
    q, g = sets(n_q=100)
    exact = ExactRetriever().search(q, g, 10).indices
    approx = FaissRetriever(kind, nprobe=16, ef_search=64).search(q, g, 10).indices
    overlap = (
        sum(len(set(a.tolist()) & set(b.tolist())) for a, b in zip(exact, approx, strict=True))
        / exact.numel()
    )
    assert overlap >= 0.9


def test_index_is_cached_per_gallery_and_saved_and_loaded(tmp_path):
    q, g = sets()
    retriever = FaissRetriever("hnsw")
    first = retriever.build(g)
    assert retriever.build(g) is first
    _, other = sets(seed=1)
    assert retriever.build(other) is not first
    retriever.build(g)
    path = retriever.save_index(tmp_path / "gallery.faiss")
    loaded = FaissRetriever("hnsw").load_index(path)
    assert torch.equal(loaded.search(q, g, 5).indices, retriever.search(q, g, 5).indices)


def test_bad_arguments_are_named():
    q, g = sets()
    with pytest.raises(ValueError, match="index: expected one of"):
        FaissRetriever("lsh")
    with pytest.raises(ValueError, match="k: expected an integer >= 1"):
        FaissRetriever().search(q, g, 0)
    with pytest.raises(RuntimeError, match="no index built yet"):
        FaissRetriever().save_index("x.faiss")
    with pytest.raises(ValueError, match="gallery: expected dimension"):
        FaissRetriever().search(q, EmbeddingSet(torch.randn(5, 3), modality="image"), 1)
