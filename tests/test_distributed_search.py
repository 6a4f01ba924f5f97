"""search_dask: per-shard exact top-k on Dask workers, merged exactly, equals the in-process search."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from xcm_debias import ExactRetriever
from xcm_debias.distributed import search_dask
from xcm_debias.topk import merge_topk


def unit(n: int, d: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("scheduler", ["synchronous", "threads", "processes"])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_four_aligned_shards_equal_the_in_process_search_bit_for_bit(scheduler, dtype):
    x, q = unit(64 * 9, 12, 0).astype(dtype), unit(21, 12, 1)
    gallery = da.from_array(x, chunks=((128, 192, 64, 192), 12))  # 4 shards, multiples of 64
    with dask.config.set(scheduler=scheduler):
        got = search_dask(q, gallery, 15, block_size=64)
    expected = ExactRetriever(block_size=64).search(q, torch.from_numpy(x), 15)
    assert torch.equal(got.indices, expected.indices)
    assert torch.equal(got.scores, expected.scores)


def test_a_local_cluster_gives_the_in_process_ranking():
    distributed = pytest.importorskip("dask.distributed")
    x, q = unit(1000, 16, 2), unit(9, 16, 3)
    gallery = da.from_array(x, chunks=(250, 16))
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False) as cluster,
        distributed.Client(cluster),
    ):
        got = search_dask(q, gallery, 7, block_size=50)
    expected = ExactRetriever(block_size=50).search(q, x, 7)
    assert torch.equal(got.indices, expected.indices)
    assert torch.equal(got.scores, expected.scores)


@settings(max_examples=30, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 40), min_size=4, max_size=7).filter(lambda s: sum(s) > 0),
    k=st.integers(1, 30),
    seed=st.integers(0, 2**16),
)
def test_unaligned_shards_with_ties_rank_as_the_dense_stable_order(sizes, k, seed):
    # integer rows: exact products, so many exact ties across shard boundaries
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, (sum(sizes), 3)).astype(np.float32)
    x[(x == 0).all(axis=1), 0] = 1
    q = rng.integers(-1, 2, (5, 3)).astype(np.float32)
    q[(q == 0).all(axis=1), 1] = 1
    gallery = da.from_array(x, chunks=(tuple(sizes), 3))
    with dask.config.set(scheduler="synchronous"):
        got = search_dask(q, gallery, k, block_size=8, normalize=False)
    scores = torch.from_numpy(q).double() @ torch.from_numpy(x).double().T
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, : min(k, len(x))]
    assert torch.equal(got.indices, order)
    assert torch.equal(got.scores.double(), torch.gather(scores, 1, order))


def test_merge_of_hand_written_lists():
    first = (torch.tensor([[1, 0]]), torch.tensor([[0.9, 0.5]]))
    second = (torch.tensor([[7, 5]]), torch.tensor([[0.9, 0.8]]))
    indices, scores = merge_topk([first, second], 3)
    assert indices.tolist() == [[1, 7, 5]]  # 0.9 at 1 and at 7: the lower index first
    assert scores[0].tolist() == pytest.approx([0.9, 0.9, 0.8])


def test_bad_arguments_are_named():
    q = unit(2, 4, 0)
    with pytest.raises(TypeError, match="gallery: expected a dask.array.Array"):
        search_dask(q, unit(5, 4, 1), 1)
    with pytest.raises(ValueError, match="gallery: expected dimension 4 \\(as queries\\), got 3"):
        search_dask(q, da.ones((5, 3), chunks=2), 1)
    with pytest.raises(ValueError, match="gallery: expected a 2-D float Dask array"):
        search_dask(q, da.ones((5, 4), chunks=2, dtype=np.int32), 1)
    with pytest.raises(ValueError, match="k: expected"):
        search_dask(q, da.ones((5, 4), chunks=2), 0)
