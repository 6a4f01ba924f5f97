"""GatedOffsetIndex: the one-pass gated top-k equals the dense two-pass formula."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from xcm_debias import Debiased, EmbeddingSet, ExactRetriever
from xcm_debias.gated_topk import GatedOffsetIndex
from xcm_debias.scoring import DualInvertedSoftmax, QBNorm


def dense_gated(q, g, offsets, active, w_on, w_off, k):
    """Raw top-1 gate, then the top-k of ``q·g + w·o`` (float64, ties to the lower index).

    Returns the top-k indices and the full float64 score matrix.
    """
    raw = q.double().numpy() @ g.double().numpy().T
    top1 = np.argsort(-raw, axis=1, kind="stable")[:, 0]
    w = np.where(active.numpy()[top1], w_on.double().numpy(), w_off.double().numpy())
    scores = raw + w[:, None] * offsets.double().numpy()[None, :]
    return np.argsort(-scores, axis=1, kind="stable")[:, :k], scores


def assert_same_top_k(idx, expected, scores, tol=1e-6):
    """Equal top-k lists, except that two rows whose float64 scores differ by less than float32
    can resolve (``tol``) may swap: every position must hold a row of the expected score."""
    ours = idx.numpy()
    assert ours.shape == expected.shape
    got = np.take_along_axis(scores, ours, axis=1)
    want = np.take_along_axis(scores, expected, axis=1)
    assert np.abs(got - want).max() < tol
    assert (ours != expected).mean() < 0.01  # swaps are rare near-ties, not a different ranking


def problem(n, q, dim, seed, offset_scale=0.05):
    gen = torch.Generator().manual_seed(seed)
    unit = lambda m: torch.nn.functional.normalize(torch.randn(m, dim, generator=gen), dim=1)  # noqa: E731
    return (
        unit(q),
        unit(n),
        torch.randn(n, generator=gen) * offset_scale,
        torch.rand(n, generator=gen) < 0.3,
    )


@pytest.mark.parametrize(
    ("n", "n_queries", "k", "block_size", "chunk"),
    [
        (1000, 60, 10, 64, 32),
        (1037, 40, 5, 4096, 32),
        (50, 7, 10, 16, 8),
        (20, 3, 30, 4096, 32),
        (3001, 90, 1, 300, 16),
        (2000, 25, 50, 4096, 64),
    ],
)
@pytest.mark.parametrize("weights", ["qb_norm", "signed"])
def test_top_k_equals_the_dense_formula(n, n_queries, k, block_size, chunk, weights):
    q, g, offsets, active = problem(n, n_queries, 16, seed=n + k)
    if weights == "qb_norm":  # the 0/1 gate of QB-Norm's column
        w_on, w_off = torch.ones(n_queries), torch.zeros(n_queries)
    else:  # any per-query weights, either sign
        w_on, w_off = torch.randn(2, n_queries, generator=torch.Generator().manual_seed(k))
    index = GatedOffsetIndex(g, offsets, active, block_size=block_size, chunk=chunk)
    idx, scores = index.search(q, k, w_on, w_off)
    expected_idx, dense = dense_gated(q, g, offsets, active, w_on, w_off, k)
    assert idx.shape == (n_queries, min(k, n))
    assert_same_top_k(idx, expected_idx, dense)
    expected_scores = np.take_along_axis(dense, idx.numpy(), axis=1)
    assert np.allclose(scores.numpy(), expected_scores, atol=1e-5)


def test_wide_offsets_fall_back_to_exact_rows():
    # offsets far wider than the score spread: the chunk bounds select too many chunks, and the
    # affected rows take the dense path — results stay exact
    q, g, offsets, active = problem(800, 30, 8, seed=5, offset_scale=5.0)
    w_on, w_off = torch.ones(30), torch.full((30,), 0.5)
    idx, _ = GatedOffsetIndex(g, offsets, active, chunk=16).search(q, 10, w_on, w_off)
    assert_same_top_k(idx, *dense_gated(q, g, offsets, active, w_on, w_off, 10))


def test_ties_go_to_the_lower_gallery_index():
    q, g, offsets, active = problem(100, 30, 8, seed=7)
    g2, o2 = torch.cat([g, g]), torch.cat([offsets, offsets])  # every row twice: exact ties
    a2 = torch.cat([active, ~active])  # duplicates disagree on the gate: the lower index decides
    w_on, w_off = torch.full((30,), 0.5), torch.full((30,), -0.2)
    idx, _ = GatedOffsetIndex(g2, o2, a2, block_size=50).search(q, 10, w_on, w_off)
    expected, _ = dense_gated(q, g2, o2, a2, w_on, w_off, 10)
    assert np.array_equal(idx.numpy(), expected)
    assert (idx[:, 0] < 100).all()  # each pair's lower index comes first


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 120),
    n_queries=st.integers(1, 12),
    k=st.integers(1, 15),
    chunk=st.integers(1, 40),
    seed=st.integers(0, 10_000),
    scale=st.sampled_from([0.0, 0.01, 0.3, 3.0]),
)
def test_property_equals_the_dense_formula(n, n_queries, k, chunk, seed, scale):
    q, g, offsets, active = problem(n, n_queries, 6, seed, offset_scale=scale)
    w_on = torch.rand(n_queries, generator=torch.Generator().manual_seed(seed)) * 2 - 0.5
    w_off = torch.zeros(n_queries)
    index = GatedOffsetIndex(g, offsets, active, block_size=9, chunk=chunk)
    idx, _ = index.search(q, k, w_on, w_off)
    expected, dense = dense_gated(q, g, offsets, active, w_on, w_off, k)
    got = np.take_along_axis(dense, idx.numpy(), axis=1)
    assert np.abs(got - np.take_along_axis(dense, expected, axis=1)).max() < 1e-6


def test_does_not_modify_its_inputs():
    q, g, offsets, active = problem(300, 10, 8, seed=3)
    copies = [t.clone() for t in (q, g, offsets, active)]
    GatedOffsetIndex(g, offsets, active).search(q, 5, torch.ones(10), torch.zeros(10))
    for before, after in zip(copies, (q, g, offsets, active), strict=True):
        assert torch.equal(before, after)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda a: {**a, "offsets": torch.zeros(3)},
            r"offsets: expected shape \(50,\), got \(3,\)",
        ),
        (
            lambda a: {**a, "active": torch.zeros(50)},
            "active: expected a bool tensor, got torch.float32",
        ),
        (lambda a: {**a, "offsets": torch.full((50,), float("nan"))}, "offsets: expected finite"),
        (lambda a: {**a, "gallery": torch.zeros(50)}, r"gallery: expected a 2-D tensor"),
        (lambda a: {**a, "chunk": 0}, "chunk: expected an integer >= 1, got 0"),
    ],
)
def test_index_arguments_are_checked(change, message):
    _, g, offsets, active = problem(50, 1, 4, seed=0)
    args = {"gallery": g, "offsets": offsets, "active": active, "chunk": 32}
    with pytest.raises((ValueError, TypeError), match=message):
        GatedOffsetIndex(**change(args))


def test_search_arguments_are_checked():
    q, g, offsets, active = problem(50, 4, 4, seed=0)
    index = GatedOffsetIndex(g, offsets, active)
    ones = torch.ones(4)
    with pytest.raises(ValueError, match="queries: expected dimension 4 .as gallery., got 5"):
        index.search(torch.zeros(4, 5), 3, ones, ones)
    with pytest.raises(ValueError, match="k: expected an integer >= 1, got 0"):
        index.search(q, 0, ones, ones)
    with pytest.raises(ValueError, match=r"weight_off: expected shape \(4,\), got \(2,\)"):
        index.search(q, 3, ones, torch.ones(2))
    with pytest.raises(TypeError, match="weight_on: expected a float tensor, got torch.int64"):
        index.search(q, 3, torch.ones(4, dtype=torch.int64), ones)


def paired_sets(
    n_items: int, n_texts: int, n_images: int, dim: int, seed: int
) -> tuple[EmbeddingSet, EmbeddingSet, EmbeddingSet]:
    """Random unit rows: a calibration set (one image and one caption per item), text queries
    and an image gallery."""
    gen = torch.Generator().manual_seed(seed)

    def unit(m: int) -> torch.Tensor:
        return torch.nn.functional.normalize(torch.randn(m, dim, generator=gen), dim=1)

    calibration = EmbeddingSet(
        torch.cat([unit(n_items), unit(n_items)]),
        modality=["image"] * n_items + ["text"] * n_items,
        item=np.r_[np.arange(n_items), np.arange(n_items)],
    )
    return (
        calibration,
        EmbeddingSet(unit(n_texts), modality="text"),
        EmbeddingSet(unit(n_images), modality="image"),
    )


class SearchOnly:
    """An exact retriever that Debiased does not recognise: the two-pass path."""

    def __init__(self) -> None:
        self.inner = ExactRetriever()

    def search(self, queries, gallery, k):
        return self.inner.search(queries, gallery, k)


@pytest.mark.parametrize(
    "scorer",
    [
        lambda: QBNorm(beta=20.0, k=1),
        lambda: QBNorm(beta=5.0, k=3),
        lambda: DualInvertedSoftmax(10.0, 0.5, dynamic=True, k=1),
    ],
)
def test_debiased_one_pass_equals_the_two_pass_search(scorer):
    calibration, texts, images = paired_sets(80, 300, 2500, dim=24, seed=11)
    fused = Debiased(ExactRetriever(), scoring=scorer()).fit(calibration)
    two_pass = Debiased(SearchOnly(), scoring=scorer()).fit(calibration)
    ours, theirs = fused.search(texts, images, 10), two_pass.search(texts, images, 10)
    assert torch.equal(ours.indices, theirs.indices)
    assert torch.allclose(ours.scores, theirs.scores, atol=1e-5)


def test_rank_of_by_hand():
    # g0 = (1, 0), g1 = (0, 1), g2 = (0.6, 0.8); offsets (0, 0.5, -0.1); only g1 active.
    # q = (1, 0): raw (1, 0, 0.6), top-1 g0 inactive, w_off = 0: order g0, g2, g1.
    # q = (0, 1): raw (0, 1, 0.8), top-1 g1 active, w_on = -2: scores (0, 0, 0.8): g2 first,
    # then the tie g0 = g1 = 0 broken by the lower index.
    g = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    index = GatedOffsetIndex(g, torch.tensor([0.0, 0.5, -0.1]), torch.tensor([False, True, False]))
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    w_on, w_off = torch.tensor([-2.0, -2.0]), torch.tensor([0.0, 0.0])
    ranks = [index.rank_of(q, torch.tensor([t, t]), w_on, w_off).tolist() for t in range(3)]
    assert ranks == [[1, 2], [3, 3], [2, 1]]
    assert index.search(q, 3, w_on, w_off)[0].tolist() == [[0, 2, 1], [2, 0, 1]]


@pytest.mark.parametrize("duplicated", [False, True])
def test_rank_of_every_search_position_is_that_position(duplicated):
    q, g, offsets, active = problem(300, 20, 8, seed=4)
    if duplicated:  # exact ties everywhere
        g, offsets, active = (
            torch.cat([g, g]),
            torch.cat([offsets, offsets]),
            torch.cat([active, ~active]),
        )
    w_on, w_off = torch.full((20,), 0.7), torch.full((20,), -0.3)
    index = GatedOffsetIndex(g, offsets, active, block_size=64, chunk=16)
    order, _ = index.search(q, len(g), w_on, w_off)
    for position in (0, 1, 7, len(g) - 1):
        ranks = index.rank_of(q, order[:, position], w_on, w_off)
        assert torch.equal(ranks, torch.full((20,), position + 1))


def test_rank_of_targets_are_checked():
    q, g, offsets, active = problem(50, 4, 4, seed=0)
    index, ones = GatedOffsetIndex(g, offsets, active), torch.ones(4)
    with pytest.raises(ValueError, match=r"targets: expected an integer tensor of shape \(4,\)"):
        index.rank_of(q, torch.zeros(3, dtype=torch.int64), ones, ones)
    with pytest.raises(
        ValueError, match=r"targets: expected gallery indices in \[0, 50\), got 0..50"
    ):
        index.rank_of(q, torch.tensor([0, 1, 2, 50]), ones, ones)


def test_debiased_rank_of_agrees_with_the_one_pass_search():
    calibration, texts, images = paired_sets(40, 50, 400, dim=16, seed=12)
    fair = Debiased(ExactRetriever(block_size=32), scoring=QBNorm(beta=20.0, k=2)).fit(calibration)
    order = fair.search(texts, images, len(images)).indices
    for position in (0, 3, len(images) - 1):
        ranks = fair.rank_of(texts, images, order[:, position].numpy())
        assert torch.equal(ranks, torch.full((50,), position + 1))
