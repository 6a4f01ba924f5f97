from __future__ import annotations

import numpy as np
import pytest
import torch

from xcm_debias import EmbeddingSet, ExactRetriever, Ranking
from xcm_debias.metrics import first_relevant_ranks, subset_ranks_from_topk


class SearchOnly:
    """A retriever without rank_of (forces the search fallback)."""

    def __init__(self, **kwargs: object) -> None:
        self.inner = ExactRetriever(**kwargs)

    def search(self, queries: EmbeddingSet, gallery: EmbeddingSet, k: int) -> Ranking:
        return self.inner.search(queries, gallery, k)


def corpus(seed: int, n_q: int = 40, n_g: int = 60, n_items: int = 10):
    gen = torch.Generator().manual_seed(seed)
    g_items = torch.randint(0, n_items, (n_g,), generator=gen).numpy()
    q_items = g_items[torch.randint(0, n_g, (n_q,), generator=gen).numpy()]
    queries = EmbeddingSet(
        torch.randn(n_q, 8, generator=gen), modality="text", item=q_items.astype(str)
    )
    gallery = EmbeddingSet(
        torch.randn(n_g, 8, generator=gen), modality="image", item=g_items.astype(str)
    )
    return queries, gallery


def dense_first_ranks(
    queries: EmbeddingSet, gallery: EmbeddingSet, normalize: bool = True
) -> np.ndarray:
    """Reference: full score matrix, stable descending argsort, first relevant position."""
    q, g = (queries.normalized(), gallery.normalized()) if normalize else (queries, gallery)
    order = torch.sort(
        q.embeddings.float() @ g.embeddings.float().T, dim=1, descending=True, stable=True
    ).indices
    rel = gallery.item[order.numpy()] == queries.item[:, None]
    return rel.argmax(axis=1) + 1


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize(
    "retriever",
    [ExactRetriever(block_size=16), SearchOnly(block_size=16)],
    ids=["rank_of", "search"],
)
@pytest.mark.parametrize("with_topk", [False, True])
def test_first_ranks_equal_a_dense_argsort(seed, retriever, with_topk):
    queries, gallery = corpus(seed)
    ranking = retriever.search(queries, gallery, 3) if with_topk else None
    ranks = first_relevant_ranks(
        retriever, queries, gallery, ranking, pair_block=7, max_block_entries=100
    )
    assert ranks.tolist() == dense_first_ranks(queries, gallery).tolist()
    assert ranks.max() > 3  # some queries needed the full ranking


@pytest.mark.parametrize(
    "retriever",
    [ExactRetriever(normalize=False), SearchOnly(normalize=False)],
    ids=["rank_of", "search"],
)
def test_ties_follow_the_lower_gallery_index(retriever):
    # small integers: exact float32 products; gallery rows 0, 2, 3 tie for the first query
    g = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    gallery = EmbeddingSet(g, modality="image", item=["x", "a", "a", "b"])
    queries = EmbeddingSet(torch.tensor([[1.0, 0.0], [2.0, 0.0]]), modality="text", item=["a", "b"])
    ranks = first_relevant_ranks(retriever, queries, gallery)
    assert ranks.tolist() == [2, 3]
    assert ranks.tolist() == dense_first_ranks(queries, gallery, normalize=False).tolist()


def test_inputs_are_not_modified():
    queries, gallery = corpus(5)
    before = queries.embeddings.clone(), gallery.embeddings.clone()
    first_relevant_ranks(ExactRetriever(), queries, gallery)
    assert torch.equal(queries.embeddings, before[0]) and torch.equal(gallery.embeddings, before[1])


class BadRankOf(SearchOnly):
    def rank_of(self, queries, gallery, targets):
        return torch.zeros(len(queries), dtype=torch.int64)


class ShortSearch(SearchOnly):
    def search(self, queries, gallery, k):
        return self.inner.search(queries, gallery, min(k, 2))


def test_bad_inputs_are_named():
    queries, gallery = corpus(0)
    with pytest.raises(TypeError, match="retriever: expected an object with a search"):
        first_relevant_ranks(object(), queries, gallery)
    with pytest.raises(TypeError, match="queries: expected an EmbeddingSet"):
        first_relevant_ranks(ExactRetriever(), queries.embeddings, gallery)
    lonely = EmbeddingSet(torch.randn(1, 8), modality="text", item=["nowhere"])
    with pytest.raises(
        ValueError, match="queries: expected every query to have a relevant gallery row"
    ):
        first_relevant_ranks(ExactRetriever(), lonely, gallery)
    with pytest.raises(ValueError, match=r"retriever.rank_of: expected \d+ ranks in \[1, 60\]"):
        first_relevant_ranks(BadRankOf(), queries, gallery)
    with pytest.raises(
        ValueError, match=r"retriever.search\(k = gallery size\): expected a ranking of shape"
    ):
        first_relevant_ranks(ShortSearch(), queries, gallery)
    with pytest.raises(ValueError, match="ranking: expected a ranking of shape"):
        first_relevant_ranks(
            ExactRetriever(), queries, gallery, ExactRetriever().search(queries[:3], gallery, 2)
        )


def test_subset_ranks_from_topk_by_hand():
    relevance = np.array(
        [[False, False, True, True], [True, False, False, False], [False, True, False, False]]
    )
    in_subset = np.array(
        [[True, False, False, True], [False, True, True, False], [True, True, True, True]]
    )
    # row 0: first relevant subset slot is 3, one subset slot before it -> rank 2
    # row 1: the only relevant slot is outside the subset -> unknown (0); row 2: slot 1 -> rank 2
    assert subset_ranks_from_topk(relevance, in_subset).tolist() == [2, 0, 2]
    with pytest.raises(ValueError, match="in_subset: expected the shape of relevance"):
        subset_ranks_from_topk(relevance, in_subset[:, :2])


@pytest.mark.parametrize("seed", range(3))
def test_subset_ranks_equal_ranks_on_the_subset_gallery(seed):
    queries, gallery = corpus(seed, n_g=80)
    subset = np.arange(len(gallery)) % 3 == 0
    ranking = ExactRetriever().search(queries, gallery, 20)
    indices = ranking.indices.numpy()
    relevance = gallery.item[indices] == queries.item[:, None]
    known = subset_ranks_from_topk(relevance, subset[indices])
    answerable = np.isin(queries.item, gallery.item[subset])
    dense = dense_first_ranks(queries[answerable], gallery[subset])
    got = known[answerable]
    assert (got > 0).any()
    assert got[got > 0].tolist() == dense[got > 0].tolist()
    assert (known[~answerable] == 0).all()
