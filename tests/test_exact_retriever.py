from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from xcm_debias import EmbeddingSet, ExactRetriever, Ranking
from xcm_debias.topk import blockwise_ranks, blockwise_topk


def dense_order(q: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Reference: the full score matrix, stable descending argsort (ties -> lower index)."""
    return torch.sort(q.float() @ g.float().T, dim=1, descending=True, stable=True).indices


def unit(n: int, d: int, seed: int) -> torch.Tensor:
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed))
    return x / x.norm(dim=1, keepdim=True)


@pytest.mark.parametrize("block_size", [1, 3, 16, 64, 1000])
@pytest.mark.parametrize(("n_q", "n_g", "k"), [(37, 101, 5), (64, 64, 64), (5, 7, 10)])
def test_topk_equals_dense_argsort(block_size, n_q, n_g, k):
    q, g = unit(n_q, 8, 0), unit(n_g, 8, 1)
    ranking = ExactRetriever(block_size=block_size).search(
        EmbeddingSet(q, modality="text"), EmbeddingSet(g, modality="image"), k=k
    )
    expected = dense_order(q, g)[:, : min(k, n_g)]
    assert torch.equal(ranking.indices, expected)
    assert torch.allclose(ranking.scores, torch.gather(q @ g.T, 1, expected), atol=1e-6)


@pytest.mark.parametrize("block_size", [2, 5, 1000])
def test_ties_are_broken_by_lower_gallery_index(block_size):
    # small integer entries: every dot product is exact in float32, so ties are real ties
    gen = torch.Generator().manual_seed(2)
    g = torch.randint(-2, 3, (6, 4), generator=gen).float()
    g = torch.cat([g[3:], g, g[:2]])  # rows 0-2 repeat 3-5, rows 9-10 repeat 3-4
    q = torch.randint(-2, 3, (9, 4), generator=gen).float()
    idx, _ = blockwise_topk(q, g, 7, block_size)
    assert torch.equal(idx, dense_order(q, g)[:, :7])
    targets = torch.tensor([3, 4, 5, 9, 10, 0, 1, 2, 8])
    expected = torch.argsort(dense_order(q, g), dim=1).gather(1, targets[:, None]).squeeze(1) + 1
    assert torch.equal(blockwise_ranks(q, g, targets, block_size), expected)


@settings(max_examples=40, deadline=None)
@given(
    n_q=st.integers(1, 30),
    n_g=st.integers(1, 50),
    block=st.integers(1, 40),
    seed=st.integers(0, 1000),
)
def test_ranks_equal_dense_ranks(n_q, n_g, block, seed):
    q, g = unit(n_q, 5, seed), unit(n_g, 5, seed + 1)
    targets = torch.randint(0, n_g, (n_q,), generator=torch.Generator().manual_seed(seed))
    expected = torch.argsort(dense_order(q, g), dim=1).gather(1, targets[:, None]).squeeze(1) + 1
    assert torch.equal(blockwise_ranks(q, g, targets, block), expected)


def test_half_precision_input_accumulates_in_float32():
    q, g = unit(20, 32, 4), unit(50, 32, 5)
    ranking = ExactRetriever(block_size=7, normalize=False).search(
        EmbeddingSet(q.half(), modality="text"), EmbeddingSet(g.half(), modality="image"), k=3
    )
    assert ranking.scores.dtype == torch.float32
    assert torch.equal(ranking.indices, dense_order(q.half(), g.half())[:, :3])


def test_search_never_modifies_inputs_and_normalizes_on_request():
    q, g = unit(4, 3, 6) * 5, unit(9, 3, 7) * 2
    q0, g0 = q.clone(), g.clone()
    ranking = ExactRetriever().search(
        EmbeddingSet(q, modality="text"), EmbeddingSet(g, modality="image"), 2
    )
    assert torch.equal(q, q0) and torch.equal(g, g0)
    assert float(ranking.scores.max()) <= 1.0 + 1e-6


def test_bad_arguments_are_named():
    data = EmbeddingSet(unit(3, 4, 0), modality="image")
    other = EmbeddingSet(unit(3, 5, 0), modality="image")
    with pytest.raises(ValueError, match="gallery: expected dimension 4"):
        ExactRetriever().search(data, other, 1)
    with pytest.raises(ValueError, match="k: expected an integer >= 1, got 0"):
        ExactRetriever().search(data, data, 0)
    with pytest.raises(TypeError, match="queries: expected an EmbeddingSet or a"):
        ExactRetriever().search(data.embeddings.tolist(), data, 1)
    with pytest.raises(ValueError, match="block_size"):
        ExactRetriever(block_size=0)
    with pytest.raises(ValueError, match="targets: expected gallery indices"):
        ExactRetriever().rank_of(data, data, torch.tensor([0, 1, 3]))
    with pytest.raises(ValueError, match="Ranking.scores: expected shape"):
        Ranking(indices=torch.zeros(2, 3, dtype=torch.int64), scores=torch.zeros(2, 2))


def test_peak_memory_stays_bounded_on_a_gallery_whose_dense_matrix_would_not_fit():
    """2,000 queries x 1,000,000 gallery rows: the dense float32 score matrix is 8 GB.

    The search runs in a subprocess whose peak resident memory must stay under 1.5 GB
    (inputs, their normalised copies and torch itself take about 0.5 GB).
    """
    script = textwrap.dedent(
        """
        import resource, torch
        torch.set_num_threads(2)
        from xcm_debias import EmbeddingSet, ExactRetriever
        g = torch.randn(1_000_000, 16, generator=torch.Generator().manual_seed(0))
        q = g[:2000] + 0.01 * torch.randn(2000, 16, generator=torch.Generator().manual_seed(1))
        r = ExactRetriever(block_size=2048).search(
            EmbeddingSet(q, modality="text"), EmbeddingSet(g, modality="image"), k=10)
        assert torch.equal(r.indices[:, 0], torch.arange(2000)), "nearest row must be itself"
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    peak_mb = int(out.stdout.strip().splitlines()[-1])
    assert peak_mb < 1536, f"peak RSS {peak_mb} MB"
