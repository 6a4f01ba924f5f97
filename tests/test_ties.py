"""Equal scores rank by lower gallery index, identically for every block size and retriever."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from xcm_debias import EmbeddingSet, ExactRetriever
from xcm_debias.faiss_retriever import FaissRetriever
from xcm_debias.ties import duplicate_rows

BLOCKS = (1, 2, 3, 5, 4096)


def retrievers(normalize: bool) -> dict[str, object]:
    found: dict[str, object] = {
        f"exact/{b}": ExactRetriever(block_size=b, normalize=normalize) for b in BLOCKS
    }
    found["faiss/flat"] = FaissRetriever("flat", normalize=normalize)
    return found


def test_ten_identical_rows_rank_in_index_order():
    row = torch.randn(1, 8, generator=torch.Generator().manual_seed(0))
    gallery = EmbeddingSet(row.repeat(10, 1), modality="image")
    queries = EmbeddingSet(
        torch.randn(25, 8, generator=torch.Generator().manual_seed(1)), modality="text"
    )
    for name, retriever in retrievers(True).items():
        for k in (3, 10):
            got = retriever.search(queries, gallery, k)
            assert got.indices.tolist() == [list(range(k))] * 25, name
            assert (got.scores == got.scores[:, :1]).all(), name


@st.composite
def duplicated(draw, integer: bool):
    """Queries and a gallery of a few distinct rows, each repeated at random positions."""
    dim = draw(st.integers(2, 5))
    n_distinct = draw(st.integers(1, 5))
    picks = draw(st.lists(st.integers(0, n_distinct - 1), min_size=2, max_size=14))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    if integer:  # exact products in float32: distinct rows may tie exactly too
        base = rng.integers(-3, 4, size=(n_distinct, dim)).astype(np.float32)
        base[(base == 0).all(axis=1), 0] = 1
        queries = rng.integers(-3, 4, size=(draw(st.integers(1, 25)), dim)).astype(np.float32)
    else:
        base = rng.standard_normal((n_distinct, dim)).astype(np.float32)
        queries = rng.standard_normal((draw(st.integers(1, 25)), dim)).astype(np.float32)
    queries[(queries == 0).all(axis=1), 0] = 1
    gallery = EmbeddingSet(torch.from_numpy(base[picks]), modality="image")
    return EmbeddingSet(torch.from_numpy(queries), modality="text"), gallery


def dense_order(queries: EmbeddingSet, gallery: EmbeddingSet, normalize: bool) -> torch.Tensor:
    """The reference: scores of each distinct row computed once, stable argsort."""
    q, g = queries.embeddings.double(), gallery.embeddings.double()
    if normalize:
        q, g = q / q.norm(dim=1, keepdim=True), g / g.norm(dim=1, keepdim=True)
    rows, inverse = torch.unique(g, dim=0, return_inverse=True)
    scores = (q @ rows.T)[:, inverse]
    return torch.sort(scores, dim=1, descending=True, stable=True).indices


@settings(max_examples=60, deadline=None)
@given(data=duplicated(integer=True), k=st.integers(1, 14))
def test_integer_galleries_rank_identically_everywhere(data, k):
    queries, gallery = data
    expected = dense_order(queries, gallery, normalize=False)[:, : min(k, len(gallery))]
    for name, retriever in retrievers(False).items():
        assert torch.equal(retriever.search(queries, gallery, k).indices, expected), name


@settings(max_examples=60, deadline=None)
@given(data=duplicated(integer=False), k=st.integers(1, 14))
def test_float_galleries_with_duplicates_rank_identically_everywhere(data, k):
    queries, gallery = data
    rankings = {n: r.search(queries, gallery, k).indices for n, r in retrievers(True).items()}
    reference = rankings.pop("exact/4096")
    assert torch.equal(reference, dense_order(queries, gallery, True)[:, : reference.shape[1]])
    for name, ranking in rankings.items():
        assert torch.equal(ranking, reference), name


@settings(max_examples=40, deadline=None)
@given(data=duplicated(integer=False), block=st.sampled_from(BLOCKS))
def test_rank_of_agrees_with_the_full_search(data, block):
    queries, gallery = data
    full = ExactRetriever(block_size=block).search(queries, gallery, len(gallery)).indices
    targets = torch.arange(len(queries)) % len(gallery)
    expected = (full == targets[:, None]).int().argmax(dim=1) + 1
    for retriever in (ExactRetriever(block_size=block), FaissRetriever("flat")):
        assert torch.equal(retriever.rank_of(queries, gallery, targets), expected)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=1, max_size=30), st.integers(1, 4))
def test_duplicate_groups_match_a_plain_unique(picks, dim):
    base = torch.arange(4 * dim, dtype=torch.float32).reshape(4, dim)
    x = base[picks]
    groups = duplicate_rows(x)
    if len(set(picks)) == len(picks):
        assert groups is None
        return
    assert groups is not None
    first_of = {p: picks.index(p) for p in picks}
    assert groups.first.tolist() == sorted(set(first_of.values()))
    assert [groups.first[g].item() for g in groups.group] == [first_of[p] for p in picks]
    assert groups.sizes.sum() == len(picks)


def test_fractional_rank_targets_are_refused():
    data = EmbeddingSet(torch.randn(3, 4), modality="image")
    with pytest.raises(ValueError, match="whole-number gallery indices, got 1.5"):
        ExactRetriever().rank_of(data, data, torch.tensor([0.0, 1.5, 2.0]))
    ranks = ExactRetriever().rank_of(data, data, torch.tensor([0.0, 1.0, 2.0]))
    assert ranks.tolist() == [1, 1, 1]


@pytest.mark.parametrize(
    "dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.uint8]
)
def test_duplicate_groups_of_every_element_size(dtype):
    """Rows of 1-, 2-, 4- and 8-byte entries: the key reads each entry's bytes whatever the
    dtype, so groups are those of a plain unique of the rows (``-0.0`` and ``0.0`` differ in
    their bytes, so they never group)."""
    base = torch.tensor([[1, 2, 3, 4, 5, 6, 7, 8, 9], [9, 8, 7, 6, 5, 4, 3, 2, 1]]).to(dtype)
    picks = [0, 1, 1, 0, 1]
    groups = duplicate_rows(base[picks])
    assert groups is not None
    assert groups.first.tolist() == [0, 1] and groups.group.tolist() == [0, 1, 1, 0, 1]
    assert groups.sizes.tolist() == [2, 3]
    if dtype.is_floating_point:
        signed = torch.zeros(3, 9, dtype=dtype)
        signed[1, 4] = -0.0
        assert duplicate_rows(signed).group.tolist() == [0, 1, 0]
