"""Debiased searched tile by tile (stream=True, ShardedGallery) equals the offset-form search."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from synthetic_processors import make_world

from xcm_debias import Debiased, EmbeddingSet, ExactRetriever
from xcm_debias.faiss_retriever import FaissRetriever
from xcm_debias.processors import InvGC, LanguageAlignment
from xcm_debias.scored_search import unit_float32_rows
from xcm_debias.scoring import (
    CSLS,
    DualInvertedSoftmax,
    GroupBalance,
    InvertedSoftmax,
    QBNorm,
)
from xcm_debias.shards import ShardedGallery

STAGES = {
    "IS": lambda: InvertedSoftmax(beta=5.0),
    "DIS": lambda: DualInvertedSoftmax(),
    "CSLS": lambda: CSLS(k=3),
    "IS+GroupBalance": lambda: [InvertedSoftmax(beta=5.0), GroupBalance()],
}


@pytest.fixture(scope="module")
def world():
    calib = make_world(n_items=40, dim=16, cultures=["a", "b", "c"], seed=0)
    test = make_world(n_items=150, dim=16, cultures=["a", "b", "c"], seed=1)
    return calib, test


def fitted(calib, scoring, stream, block_size=32):
    processors = LanguageAlignment() | InvGC(apply_to=("image",), block_size=8)
    fair = Debiased(ExactRetriever(block_size=block_size), processors, scoring, stream=stream)
    return fair.fit(calib)


def assert_same_up_to_ties(got, expected, tol=1e-5):
    """Scores equal within float32 rounding; indices equal wherever the scores are apart."""
    assert torch.allclose(got.scores, expected.scores, atol=tol, rtol=0)
    differ = got.indices != expected.indices
    if bool(differ.any()):  # only among near-equal scores
        rows = differ.any(dim=1).nonzero().flatten()
        for row in rows.tolist():
            gaps = expected.scores[row, :-1] - expected.scores[row, 1:]
            assert bool((gaps[differ[row, :-1] | differ[row, 1:]] <= tol).all())


@pytest.mark.parametrize("name", list(STAGES))
def test_streamed_search_and_ranks_equal_the_offset_form(world, name):
    calib, test = world
    texts, images = test.texts, test.images
    plain = fitted(calib, STAGES[name](), stream=False)
    streamed = fitted(calib, STAGES[name](), stream=True)
    expected = plain.search(texts, images, 12)
    got = streamed.search(texts, images, 12)
    assert_same_up_to_ties(got, expected)
    # ranks agree with the streamed ranking itself, and with the offset form's ranks
    targets = got.indices[:, 4]
    ranks = streamed.rank_of(texts, images, targets)
    distinct = (got.scores[:, 4] != got.scores[:, 3]) & (got.scores[:, 4] != got.scores[:, 5])
    assert torch.equal(ranks[distinct], torch.full_like(ranks[distinct], 5))
    item_of = {i: n for n, i in enumerate(images.item.tolist())}
    relevant = torch.tensor([item_of[i] for i in texts.item.tolist()])
    assert (
        streamed.rank_of(texts, images, relevant) - plain.rank_of(texts, images, relevant)
    ).abs().max() <= 1


def test_streaming_keeps_no_processed_gallery(world):
    calib, test = world
    streamed = fitted(calib, InvertedSoftmax(beta=5.0), stream=True)
    images = test.images  # the cache keeps an entry only while the caller's gallery lives
    streamed.search(test.texts, images, 5)
    assert len(streamed._cache) == 0  # no processed rows, no index vectors
    assert len(streamed._tiles._columns) == 1  # only the per-row columns


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_a_sharded_gallery_searches_as_the_same_rows_in_memory(world, tmp_path, dtype):
    calib, test = world
    rows = test.images.embeddings.numpy().astype(dtype)
    bounds = [0, 40, 41, 100, len(rows)]  # tiles of 32 rows span the shards
    paths = []
    for n, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        paths.append(tmp_path / f"img_emb_{n}.npy")
        np.save(paths[-1], rows[a:b])
    fair = fitted(calib, [InvertedSoftmax(beta=5.0), GroupBalance()], stream=True)
    in_memory = EmbeddingSet(torch.from_numpy(rows), modality="image")  # unlabelled, as on disk
    got = fair.search(test.texts, ShardedGallery(paths), 9)
    expected = fair.search(test.texts, in_memory, 9)
    assert torch.equal(got.indices, expected.indices)
    assert torch.equal(got.scores, expected.scores)
    targets = expected.indices[:, 0]
    ranks = fair.rank_of(test.texts, ShardedGallery(paths), targets)
    assert torch.equal(ranks, fair.rank_of(test.texts, in_memory, targets))


def test_sharded_galleries_need_an_exact_retriever_and_no_gated_stage(world, tmp_path):
    calib, test = world
    np.save(tmp_path / "a.npy", test.images.embeddings.numpy())
    shards = ShardedGallery([tmp_path / "a.npy"])
    gated = Debiased(ExactRetriever(), scoring=QBNorm()).fit(calib)
    with pytest.raises(ValueError, match="depend on the whole gallery \\(QB-Norm"):
        gated.search(test.texts, shards, 3)
    over_faiss = Debiased(FaissRetriever(), scoring=InvertedSoftmax()).fit(calib)
    with pytest.raises(TypeError, match="searched by an ExactRetriever, got FaissRetriever"):
        over_faiss.search(test.texts, shards, 3)


def test_a_gated_stage_keeps_the_offset_form_when_streaming(world):
    calib, test = world
    plain = Debiased(ExactRetriever(), scoring=QBNorm()).fit(calib)
    streamed = Debiased(ExactRetriever(), scoring=QBNorm(), stream=True).fit(calib)
    a, b = plain.search(test.texts, test.images, 5), streamed.search(test.texts, test.images, 5)
    assert torch.equal(a.indices, b.indices) and torch.equal(a.scores, b.scores)


def test_no_stage_and_no_processor_over_shards_is_the_plain_search_bit_for_bit(
    monkeypatch, world, tmp_path
):
    """A pipeline with no stage for the direction and no processor scores a float16
    ShardedGallery exactly as ExactRetriever does (no pass for absent columns)."""
    calib, test = world
    rows = test.images.embeddings.numpy().astype(np.float16)
    np.save(tmp_path / "img_emb_0.npy", rows[:70])
    np.save(tmp_path / "img_emb_1.npy", rows[70:])
    shards = ShardedGallery([tmp_path / "img_emb_0.npy", tmp_path / "img_emb_1.npy"])
    i2t_only = Debiased(ExactRetriever(block_size=32), None, {"i2t": InvertedSoftmax(beta=5.0)})
    i2t_only.fit(calib)
    passes = []
    monkeypatch.setattr(ShardedGallery, "tiles", lambda *a, **k: passes.append(1) or iter(()))
    got = i2t_only.search(test.texts, shards, 9)  # text queries: t2i, which has no stage
    expected = ExactRetriever(block_size=32).search(test.texts, shards, 9)
    assert torch.equal(got.indices, expected.indices) and torch.equal(got.scores, expected.scores)
    assert passes == []  # neither a columns pass nor a streamed pass
    plain = ExactRetriever(block_size=32).search(test.texts, torch.from_numpy(rows), 9)
    assert torch.equal(got.scores, plain.scores)


def test_float16_galleries_are_scored_on_float32_unit_rows():
    """The score stages see float16 rows normalised in float32 (as the exact search scores
    them), not rounded to float16 again after normalising."""
    x = torch.tensor([[3.0, 4.0, 0.0], [1.0, 1.0, 1.0]], dtype=torch.float16)
    rows = EmbeddingSet(x, modality="image")
    got = unit_float32_rows(rows).embeddings
    assert got.dtype == torch.float32
    expected = torch.tensor([[0.6, 0.8, 0.0], [3**-0.5] * 3], dtype=torch.float64)
    assert torch.allclose(got.double(), expected, atol=1e-7, rtol=0)
    # float16 rounding of the second row would be off by about 1e-4
    assert (rows.normalized().embeddings.double() - expected).abs().max() > 1e-5
    assert x.dtype == torch.float16  # the caller's rows are untouched
