"""The tile-by-tile exact search: running top-k, unit rows, half-precision and sharded galleries."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from xcm_debias import ExactRetriever, gemm
from xcm_debias.safe_norm import cosine_rows
from xcm_debias.shards import ShardedGallery
from xcm_debias.topk import QueryBlocks, RunningTopK, row_tiles, tile_topk


def dense_topk(q: torch.Tensor, g: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference in float64: full score matrix, stable descending sort (ties -> lower index)."""
    scores = q.double() @ g.double().T
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]
    return order, torch.gather(scores, 1, order)


def unit(n: int, d: int, seed: int) -> torch.Tensor:
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed))
    return x / x.norm(dim=1, keepdim=True)


@settings(max_examples=80, deadline=None)
@given(
    n_q=st.integers(1, 9),
    n_g=st.integers(1, 60),
    k=st.integers(1, 15),
    block=st.integers(1, 17),
    levels=st.integers(2, 4),
    seed=st.integers(0, 2**16),
)
def test_running_topk_equals_the_dense_stable_order_with_many_ties(
    n_q, n_g, k, block, levels, seed
):
    # integer entries: products are exact in float32, so ties are real and many
    rng = np.random.default_rng(seed)
    q = torch.from_numpy(rng.integers(-1, 2, (n_q, 3)).astype(np.float32))
    g = torch.from_numpy(rng.integers(-levels, levels + 1, (n_g, 3)).astype(np.float32))
    idx, scores = tile_topk(q, row_tiles(g, block), n_g, k, block)
    expected_idx, expected_scores = dense_topk(q, g, min(k, n_g))
    assert torch.equal(idx, expected_idx)
    assert torch.equal(scores.double(), expected_scores)


def test_running_topk_takes_the_exact_path_for_a_gallery_sorted_by_score():
    # every tile beats the current lists everywhere: the per-entry merge gives way to tile top-k
    q = torch.ones(4, 1)
    g = torch.arange(1, 201, dtype=torch.float32)[:, None]
    idx, scores = tile_topk(q, row_tiles(g, 16), 200, 5, 16)
    assert idx.tolist() == [[199, 198, 197, 196, 195]] * 4
    assert scores[0].tolist() == [200.0, 199.0, 198.0, 197.0, 196.0]


def test_running_topk_merges_hand_computed_tiles():
    top = RunningTopK(1, 2)
    top.push(0, torch.tensor([[0.5, 0.9]]), 0)
    top.push(0, torch.tensor([[0.9, 0.7, 0.95]]), 2)  # 0.9 at index 2 ties index 1: stays after
    assert top.indices.tolist() == [[4, 1]]
    assert top.values[0].tolist() == pytest.approx([0.95, 0.9])


def test_tiles_out_of_order_or_short_are_refused():
    q, g = unit(2, 4, 0), unit(10, 4, 1)
    with pytest.raises(ValueError, match="tiles: expected the tile starting at row 0, got 5"):
        tile_topk(q, [(5, g[5:])], 10, 3)
    with pytest.raises(ValueError, match="tiles: expected 10 gallery rows, got 5"):
        tile_topk(q, [(0, g[:5])], 10, 3)


@pytest.mark.parametrize("block_size", [1, 7, 64, 4096])
def test_exact_retriever_matches_the_float64_dense_ranking(block_size):
    q, g = unit(23, 16, 0), unit(301, 16, 1)
    ranking = ExactRetriever(block_size=block_size).search(q, g, 12)
    expected_idx, expected_scores = dense_topk(q, g, 12)
    assert torch.equal(ranking.indices, expected_idx)  # random data: no gap below float32 error
    assert torch.allclose(ranking.scores.double(), expected_scores, atol=1e-6)


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_query_blocks_in_parallel_rank_like_the_dense_order(monkeypatch, workers):
    """Queries cut into blocks for ``workers`` parallel single-threaded products: top-k equal to
    the float64 dense order, ``rank_of`` equal to each row's place in the full order, and
    numpy's BLAS back to its own thread count afterwards."""
    monkeypatch.setattr(gemm, "product_workers", lambda: workers)
    blas = gemm._blas()
    before = [lib.num_threads for lib in blas.lib_controllers]
    q, g = unit(37, 16, 7), unit(203, 16, 8)
    retriever = ExactRetriever(block_size=16)  # 3 query blocks, rounded up to the workers
    blocks = QueryBlocks(37, 16, 16)
    assert len(blocks.rows) == -(-3 // workers) * workers
    assert [r.start for r in blocks.rows][1:] == [r.stop for r in blocks.rows][:-1]
    ranking = retriever.search(q, g, 9)
    expected_idx, expected_scores = dense_topk(q, g, 9)
    assert torch.equal(ranking.indices, expected_idx)
    assert torch.allclose(ranking.scores.double(), expected_scores, atol=1e-6)
    targets = torch.arange(37) * 5 % 203
    full_order = dense_topk(q, g, 203)[0]
    expected_ranks = (full_order == targets[:, None]).int().argmax(dim=1) + 1
    assert torch.equal(retriever.rank_of(q, g, targets), expected_ranks)
    assert [lib.num_threads for lib in blas.lib_controllers] == before


@pytest.mark.parametrize("workers", [2, 3])
def test_workers_reading_their_own_passes_score_bit_for_bit_as_one_shared_pass(
    monkeypatch, workers
):
    """``tile_topk`` given a function starting passes (each worker reads its own, no waiting
    between tiles) returns the very bits of the shared pass, on rows that need normalising and
    with tied scores, and the BLAS gets its thread count back."""
    monkeypatch.setattr(gemm, "product_workers", lambda: workers)
    blas = gemm._blas()
    before = [lib.num_threads for lib in blas.lib_controllers]
    g = 3.0 * torch.randn(301, 24, generator=torch.Generator().manual_seed(2))
    g[150:160] = g[10]  # equal rows: equal scores, kept by lower index
    q = cosine_rows(torch.randn(41, 24, generator=torch.Generator().manual_seed(3)))
    shared = tile_topk(q, row_tiles(g, 32, cosine_rows), len(g), 12, block_size=32)
    passes = tile_topk(q, lambda: row_tiles(g, 32, cosine_rows), len(g), 12, block_size=32)
    assert torch.equal(passes[0], shared[0]) and torch.equal(passes[1], shared[1])
    expected_idx, _ = dense_topk(q, cosine_rows(g), 12)
    assert torch.equal(passes[0][:, :5], expected_idx[:, :5])
    assert [lib.num_threads for lib in blas.lib_controllers] == before


@pytest.mark.parametrize("passes", [False, True])
def test_an_error_in_a_worker_reaches_the_caller_and_lifts_the_blas_limit(monkeypatch, passes):
    monkeypatch.setattr(gemm, "product_workers", lambda: 2)
    blas = gemm._blas()
    before = [lib.num_threads for lib in blas.lib_controllers]

    def fail(*_: object) -> None:
        raise RuntimeError("worker failed")

    blocks = QueryBlocks(10, 4, 4)
    with pytest.raises(RuntimeError, match="worker failed"):
        if passes:
            blocks.run_passes(lambda: row_tiles(unit(9, 4, 0), 4), fail)
        else:
            blocks.run(row_tiles(unit(9, 4, 0), 4), fail)
    assert [lib.num_threads for lib in blas.lib_controllers] == before


def test_unit_rows_are_used_as_they_are_and_others_normalised():
    x = unit(50, 32, 2)
    assert cosine_rows(x).data_ptr() == x.data_ptr()  # no copy, bit for bit
    raw = 3.0 * torch.randn(40, 32, generator=torch.Generator().manual_seed(3))
    original = raw.clone()
    raw[5] = x[5]  # a unit row among others stays as it is
    got = cosine_rows(raw)
    expected = raw.double() / raw.double().norm(dim=1, keepdim=True)
    assert torch.allclose(got.double(), expected, atol=2e-7, rtol=0)
    assert torch.equal(got[5], x[5])
    assert torch.equal(raw[6:], original[6:])  # the input is not modified
    huge = torch.cat([raw[:3] * 1e30, raw[:2] * 1e-30])  # scaled first: no overflow, no zeros
    assert torch.allclose(
        cosine_rows(huge).double(), torch.cat([expected[:3], expected[:2]]), atol=2e-7
    )


@settings(max_examples=60, deadline=None)
@given(
    dtype=st.sampled_from([torch.float16, torch.bfloat16, torch.float32, torch.float64]),
    n=st.integers(1, 12),
    seed=st.integers(0, 2**16),
    scale=st.sampled_from([1.0, 3.0, 1e-3, 1e20, 1e-20]),
    unit_row=st.booleans(),
)
def test_cosine_rows_into_a_buffer_gives_the_bits_of_a_new_tensor(dtype, n, seed, scale, unit_row):
    """``out`` receives exactly the rows ``cosine_rows`` returns otherwise (float16 finds its
    out-of-range rows from the squares alone), the rows are unit to float32 rounding, and the
    input is never written."""
    x = (scale * torch.randn(n, 8, generator=torch.Generator().manual_seed(seed))).to(dtype)
    if unit_row:
        x[0] = unit(1, 8, seed).to(dtype)
    if not bool(torch.isfinite(x).all()) or bool((x.abs().amax(dim=1) == 0).any()):
        return  # scales beyond the dtype's range: not rows to normalise
    original = x.clone()
    fresh = cosine_rows(x)
    out = torch.full((n, 8), float("nan"))
    assert cosine_rows(x, out=out) is out
    assert torch.equal(out, fresh)
    assert torch.equal(x, original)
    expected = x.double() / x.double().norm(dim=1, keepdim=True)
    assert torch.allclose(out.double(), expected, atol=1e-6, rtol=0)


def test_cosine_rows_of_float16_at_the_ends_of_its_range_and_bad_buffers():
    big = torch.full((1, 512), 65504.0, dtype=torch.float16)  # squares 2.2e12: no overflow
    tiny = torch.full((1, 512), 2.0**-24, dtype=torch.float16)  # subnormal: squares 2^-39
    for rows in (big, tiny):  # each entry 512^-½ to float32 rounding (not 0, not inf, not NaN)
        got = cosine_rows(rows).double()
        assert torch.allclose(got, torch.full((1, 512), 512**-0.5, dtype=torch.float64), rtol=2e-7)
    zero = torch.cat([big, torch.zeros(1, 512, dtype=torch.float16)])
    with pytest.raises(ValueError, match="all-zero row"):
        cosine_rows(zero, out=torch.empty(2, 512))
    with pytest.raises(ValueError, match=r"out: expected a float32 tensor of shape \(1, 512\)"):
        cosine_rows(big, out=torch.empty(1, 512, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"got torch.float32 \(2, 512\)"):
        cosine_rows(big, out=torch.empty(2, 512))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_gallery_ranks_as_its_float32_copy(dtype):
    q, g = unit(31, 24, 4), unit(517, 24, 5).to(dtype)
    retriever = ExactRetriever(block_size=64)
    half = retriever.search(q, g, 10)
    wide = retriever.search(q, g.float(), 10)  # the same rounded rows, stored in float32
    assert torch.equal(half.indices, wide.indices)
    assert torch.equal(half.scores, wide.scores)
    assert g.dtype == dtype  # not converted in place


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), k=st.integers(1, 20))
def test_float16_storage_swaps_only_pairs_closer_than_its_rounding_bound(seed, k):
    q, g = unit(8, 32, seed), unit(200, 32, seed + 1)
    stored = ExactRetriever().search(q, g.half(), k).indices
    exact = q.double() @ g.double().T
    bound = 2.0**-11 * 2  # |q·(g − fl16(g))| ≤ 2⁻¹¹|q||g| for each side of a pair
    for row in range(len(q)):
        got = exact[row, stored[row]]
        expected = torch.sort(exact[row], descending=True).values[:k]
        # the k-th score found is within the bound of the true k-th, and each rank too
        assert torch.all((got - expected).abs() <= bound)


def write_shards(folder, x: np.ndarray, sizes: list[int]) -> list:
    paths, start = [], 0
    for n, size in enumerate(sizes):
        path = folder / f"img_emb_{n}.npy"
        np.save(path, x[start : start + size])
        paths.append(path)
        start += size
    return paths


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
@pytest.mark.parametrize(("prefetch", "workers"), [(True, 2), (False, 1), (True, 3)])
def test_sharded_search_equals_the_in_memory_search(
    monkeypatch, tmp_path, dtype, prefetch, workers
):
    """Tiles read as stored; the search from disk (each worker reading and converting a share of
    every tile) returns the bits of the in-memory search, for any number of workers."""
    monkeypatch.setattr(gemm, "product_workers", lambda: workers)
    x = unit(1000, 16, 6).numpy().astype(dtype)
    sizes = [130, 1, 400, 0, 469]  # tiles of 64 rows span shard boundaries
    paths = write_shards(tmp_path, x, sizes)
    gallery = ShardedGallery(paths)
    assert len(gallery) == 1000 and gallery.dim == 16 and gallery.dtype == dtype
    tiles = gallery.tiles(64, prefetch=prefetch)
    for n, (start, rows) in enumerate(tiles):  # each tile as read, before it is overwritten
        assert start == 64 * n and torch.equal(rows, torch.from_numpy(x[start : start + 64]))
    q = unit(37, 16, 7)
    retriever = ExactRetriever(block_size=64)
    on_disk = retriever.search(q, gallery, 9)
    in_memory = retriever.search(q, torch.from_numpy(x), 9)
    assert torch.equal(on_disk.indices, in_memory.indices)
    assert torch.equal(on_disk.scores, in_memory.scores)


def test_sharded_gallery_reads_any_row_range_and_orders_shards_by_number(tmp_path):
    x = np.arange(60, dtype=np.float32).reshape(20, 3) + 1
    for n, (a, b) in enumerate([(0, 5), (5, 7), (7, 20)]):
        np.save(tmp_path / f"img_emb_{[0, 2, 10][n]}.npy", x[a:b])
    (tmp_path / "img_emb").mkdir()
    gallery = ShardedGallery.from_folder(tmp_path)  # no img_emb/ shards: the folder's own
    assert [p.name for p in gallery.paths] == ["img_emb_0.npy", "img_emb_2.npy", "img_emb_10.npy"]
    assert np.array_equal(gallery.read(3, 9), x[3:9])
    assert np.array_equal(gallery.read(0, 20), x)
    with pytest.raises(ValueError, match="start, stop: expected 0 <= start <= stop <= 20"):
        gallery.read(5, 21)


def test_sharded_gallery_refuses_bad_shards(tmp_path):
    np.save(tmp_path / "a.npy", np.ones((3, 4), np.float32))
    np.save(tmp_path / "b.npy", np.ones((3, 5), np.float32))
    np.save(tmp_path / "c.npy", np.ones(3, np.float32))
    np.save(tmp_path / "d.npy", np.ones((3, 4), np.int32))
    np.save(tmp_path / "e.npy", np.ones((3, 4), np.float16))
    with pytest.raises(ValueError, match="one dimension and dtype, got dimensions \\[4, 5\\]"):
        ShardedGallery([tmp_path / "a.npy", tmp_path / "b.npy"])
    with pytest.raises(ValueError, match="one dimension and dtype"):
        ShardedGallery([tmp_path / "a.npy", tmp_path / "e.npy"])
    with pytest.raises(ValueError, match="expected 2-D .npy arrays"):
        ShardedGallery([tmp_path / "c.npy"])
    with pytest.raises(ValueError, match="float16/float32/float64 arrays in C order, got int32"):
        ShardedGallery([tmp_path / "d.npy"])
    with pytest.raises(ValueError, match="at least one .npy shard"):
        ShardedGallery([])
    with pytest.raises(TypeError, match="paths: expected a sequence of .npy paths"):
        ShardedGallery(tmp_path / "a.npy")
    with pytest.raises(FileNotFoundError, match="folder: expected a folder"):
        ShardedGallery.from_folder(tmp_path / "missing")
    with pytest.raises(ValueError, match="gallery: expected dimension 3"):
        ExactRetriever().search(torch.ones(1, 3), ShardedGallery([tmp_path / "a.npy"]), 1)


@pytest.mark.parametrize("prefetch", [True, False])
def test_a_tile_stays_as_read_while_the_next_one_is_asked_for(tmp_path, prefetch):
    """Three buffers: tile i is intact after tile i + 1 is handed out (and the read of i + 2
    has started), so a caller may finish scoring tile i meanwhile."""
    x = np.arange(40 * 3, dtype=np.float32).reshape(40, 3)
    gallery = ShardedGallery(write_shards(tmp_path, x, [17, 23]))
    tiles = gallery.tiles(8, prefetch=prefetch)
    start, current = next(tiles)
    for later_start, later in tiles:
        time.sleep(0.01)  # the background read of the tile after next has finished by now
        assert np.array_equal(current.numpy(), x[start : start + 8])
        start, current = later_start, later
    assert start == 32 and np.array_equal(current.numpy(), x[32:])


def test_row_ranges_cover_the_gallery_and_ask_the_kernel_to_read_ahead(monkeypatch, tmp_path):
    x = unit(40, 4, 1).numpy()
    gallery = ShardedGallery(write_shards(tmp_path, x, [10, 30]))
    header = int(np.load(gallery.paths[0], mmap_mode="r").offset)  # 128 for these small arrays
    advice = []

    def record(fd: int, offset: int, length: int, what: int) -> None:
        advice.append((os.path.basename(os.readlink(f"/proc/self/fd/{fd}")), offset, length))
        assert what == os.POSIX_FADV_WILLNEED

    monkeypatch.setattr(os, "posix_fadvise", record)
    ranges = list(gallery.row_ranges(8, ahead=1))
    assert ranges == [(s, range(s, min(s + 8, 40))) for s in range(0, 40, 8)]
    row = 4 * 4  # bytes of one float32 row of 4
    # handing out tile 0 advises tile 1 (rows 8..15: 2 rows of shard 0, 6 of shard 1), and so on
    assert advice == [
        ("img_emb_0.npy", header + 8 * row, 2 * row),
        ("img_emb_1.npy", header, 6 * row),
        ("img_emb_1.npy", header + 6 * row, 8 * row),
        ("img_emb_1.npy", header + 14 * row, 8 * row),
        ("img_emb_1.npy", header + 22 * row, 8 * row),
    ]  # the last tile has none ahead of it


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_workers_preparing_shares_of_each_tile_score_as_prepared_tiles(monkeypatch, workers):
    """``prepare`` split between the workers (``window`` 2, tiles given as row ranges) gives the
    bits of the search over the same tiles prepared whole."""
    monkeypatch.setattr(gemm, "product_workers", lambda: workers)
    g = (3.0 * torch.randn(301, 24, generator=torch.Generator().manual_seed(2))).half()
    q = cosine_rows(torch.randn(41, 24, generator=torch.Generator().manual_seed(3)))
    whole = tile_topk(q, row_tiles(g, 32, cosine_rows), len(g), 12, block_size=32)
    shared = []

    def prepare(rows: range, out: torch.Tensor) -> None:
        shared.append(len(rows))
        cosine_rows(g[rows.start : rows.stop], out=out)

    tiles = ((s, range(s, min(s + 32, len(g)))) for s in range(0, len(g), 32))
    split = tile_topk(q, tiles, len(g), 12, block_size=32, window=2, prepare=prepare)
    assert torch.equal(split[0], whole[0]) and torch.equal(split[1], whole[1])
    assert sum(shared) == len(g) and max(shared) == -(-32 // workers)


@pytest.mark.parametrize("where", ["prepare", "visit"])
def test_an_error_while_preparing_or_scoring_a_shared_tile_reaches_the_caller(monkeypatch, where):
    monkeypatch.setattr(gemm, "product_workers", lambda: 2)
    blas = gemm._blas()
    before = [lib.num_threads for lib in blas.lib_controllers]
    calls = []

    def prepare(rows: torch.Tensor, out: torch.Tensor) -> None:
        calls.append(1)
        if where == "prepare" and len(calls) == 3:  # one worker fails; the other must not hang
            raise RuntimeError("prepare failed")
        out.copy_(rows)

    def visit(*_: object) -> None:
        if where == "visit":
            raise RuntimeError("visit failed")

    blocks = QueryBlocks(10, 4, 4, dim=4)
    with pytest.raises(RuntimeError, match=f"{where} failed"):
        blocks.run(row_tiles(unit(20, 4, 0), 4), visit, window=2, prepare=prepare)
    assert [lib.num_threads for lib in blas.lib_controllers] == before
    with pytest.raises(ValueError, match="window: expected 1 or 2, got 3"):
        blocks.run(row_tiles(unit(20, 4, 0), 4), visit, window=3)
    with pytest.raises(ValueError, match="prepare: needs the dimension"):
        QueryBlocks(10, 4, 4).run(row_tiles(unit(20, 4, 0), 4), visit, prepare=prepare)
