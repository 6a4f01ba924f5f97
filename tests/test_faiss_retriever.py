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


def test_a_tie_that_straddles_the_cut_keeps_the_lower_indices():
    # 64 distinct rows (a, 2 − a) all score 2 against the query (1, 1), one row scores 3: the
    # top-4 are row 64, then rows 0, 1, 2 — faiss's heap alone keeps arbitrary members of the tie
    a = torch.linspace(-3.0, 5.0, 64)
    rows = torch.cat([torch.stack([a, 2.0 - a], dim=1), torch.tensor([[1.5, 1.5]])])
    gallery = EmbeddingSet(rows, modality=["image"] * 65)
    queries = EmbeddingSet(torch.tensor([[1.0, 1.0], [1.0, 1.0]]), modality=["text"] * 2)
    for k in (1, 4, 10):
        got = FaissRetriever("flat", normalize=False).search(queries, gallery, k)
        want = ExactRetriever(normalize=False).search(queries, gallery, k)
        assert got.indices.tolist() == [[64, *range(k - 1)]] * 2
        assert torch.equal(got.indices, want.indices)
        torch.testing.assert_close(got.scores, want.scores)
