"""FaissRetriever with any faiss factory string and with an existing faiss.Index, checked
against raw faiss searches of the same normalised vectors."""

from __future__ import annotations

import faiss
import numpy as np
import pytest
import torch

from xcm_debias import EmbeddingSet, ExactRetriever
from xcm_debias.faiss_retriever import FaissRetriever


def arrays(n_q: int = 40, n_g: int = 400, d: int = 16, seed: int = 0):
    """Unit-norm float32 queries and gallery (what a cosine faiss index holds)."""
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((n_q, d)).astype(np.float32)
    g = rng.standard_normal((n_g, d)).astype(np.float32)
    return q / np.linalg.norm(q, axis=1, keepdims=True), g / np.linalg.norm(
        g, axis=1, keepdims=True
    )


def sets(q: np.ndarray, g: np.ndarray) -> tuple[EmbeddingSet, EmbeddingSet]:
    return EmbeddingSet(q, modality="text"), EmbeddingSet(g, modality="image")


def raw_search(index, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    scores, idx = index.search(q, k)
    return idx, scores


@pytest.mark.parametrize("spec", ["Flat", "flat"])
def test_flat_factory_string_equals_raw_index_flat_ip(spec):
    q, g = arrays()
    raw = faiss.IndexFlatIP(g.shape[1])
    raw.add(g)
    idx, scores = raw_search(raw, q, 7)
    ranking = FaissRetriever(spec).search(*sets(q, g), 7)
    assert np.array_equal(ranking.indices.numpy(), idx)
    assert np.allclose(ranking.scores.numpy(), scores, atol=1e-6)


@pytest.mark.parametrize("nprobe", [1, 4])
def test_ivf_factory_string_equals_raw_index_ivf_flat(nprobe):
    """Same training data and faiss's fixed k-means seed: the same lists, the same search."""
    q, g = arrays()
    raw = faiss.index_factory(g.shape[1], "IVF4,Flat", faiss.METRIC_INNER_PRODUCT)
    raw.train(g)
    raw.add(g)
    raw.nprobe = nprobe
    idx, scores = raw_search(raw, q, 5)
    retriever = FaissRetriever("IVF4,Flat", nprobe=nprobe)
    ranking = retriever.search(*sets(q, g), 5)
    assert isinstance(retriever.build(sets(q, g)[1]), faiss.IndexIVFFlat)
    assert np.array_equal(ranking.indices.numpy(), idx)
    assert np.allclose(ranking.scores.numpy(), scores, atol=1e-6)
    exact = ExactRetriever().search(*sets(q, g), 5).indices.numpy()
    # nprobe reached the index: every list visited is exact, one list of four is not
    assert np.array_equal(idx, exact) == (nprobe == 4)


def test_hnsw_factory_string_sets_ef_search_and_finds_true_neighbours():
    q, g = arrays(n_q=100)
    retriever = FaissRetriever("HNSW32", ef_search=64)
    approx = retriever.search(*sets(q, g), 10).indices.numpy()
    index = faiss.downcast_index(retriever.build(sets(q, g)[1]))
    assert isinstance(index, faiss.IndexHNSWFlat)
    assert index.hnsw.efSearch == 64
    assert index.metric_type == faiss.METRIC_INNER_PRODUCT
    exact = ExactRetriever().search(*sets(q, g), 10).indices.numpy()
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact, approx, strict=True)])
    assert overlap >= 0.9


def test_a_factory_string_that_does_not_fit_the_data_names_the_index():
    q, g = arrays(n_g=100)
    with pytest.raises(ValueError, match=r"index: faiss could not build 'IVF4,PQ4' for 100"):
        FaissRetriever("IVF4,PQ4").search(*sets(q, g), 3)  # PQ needs 256 training points


@pytest.mark.parametrize("kind", ["IndexFlatIP", "IndexIVFFlat"])
def test_an_existing_index_is_searched_as_built(kind, tmp_path):
    """E.g. clip-retrieval's knn.index: written by faiss, read back, wrapped without a rebuild."""
    q, g = arrays()
    d = g.shape[1]
    if kind == "IndexFlatIP":
        built = faiss.IndexFlatIP(d)
    else:
        built = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, 8, faiss.METRIC_INNER_PRODUCT)
        built.train(g)
        built.nprobe = 2
    built.add(g)
    faiss.write_index(built, str(tmp_path / "knn.index"))
    index = faiss.read_index(str(tmp_path / "knn.index"))
    idx, scores = raw_search(index, q, 6)
    retriever = FaissRetriever(index)
    ranking = retriever.search(*sets(q, g), 6)
    assert retriever.build(sets(q, g)[1]) is index
    assert index.ntotal == len(g)  # not rebuilt, nothing added
    assert np.array_equal(ranking.indices.numpy(), idx)
    assert np.allclose(ranking.scores.numpy(), scores, atol=1e-6)
    assert "IndexIVFFlat" in repr(retriever) or kind == "IndexFlatIP"


def test_an_existing_index_refuses_a_gallery_it_does_not_hold():
    q, g = arrays()
    index = faiss.IndexFlatIP(g.shape[1])
    index.add(g)
    retriever = FaissRetriever(index)
    other = arrays(seed=1)[1]
    with pytest.raises(
        ValueError, match=r"gallery row \d+ differs from the index.s \(cosine -?0\.\d+\)"
    ):
        retriever.search(*sets(q, other), 3)
    with pytest.raises(ValueError, match="expected the 400 rows of dimension 16"):
        retriever.search(*sets(q, g[:10]), 3)


def test_an_existing_index_must_be_inner_product_and_filled():
    _, g = arrays()
    l2 = faiss.IndexFlatL2(g.shape[1])
    l2.add(g)
    with pytest.raises(ValueError, match="index: expected a faiss.Index with the inner product"):
        FaissRetriever(l2)
    with pytest.raises(ValueError, match="got an empty one"):
        FaissRetriever(faiss.IndexFlatIP(16))
    with pytest.raises(TypeError, match="index: expected one of .* got int"):
        FaissRetriever(3)


def test_plain_arrays_and_tensors_search_like_embedding_sets():
    q, g = arrays()
    expected = FaissRetriever("flat").search(*sets(q, g), 4)
    for query, gallery in ((q, g), (torch.from_numpy(q), torch.from_numpy(g))):
        got = FaissRetriever("flat").search(query, gallery, 4)
        assert torch.equal(got.indices, expected.indices)
        assert torch.equal(got.scores, expected.scores)
