"""Retrievers and Debiased take plain [N, D] numpy arrays / torch tensors; Debiased takes a list
of processors as a Chain."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scoring_fixtures import multilingual_corpus

from xcm_debias import Debiased, EmbeddingSet, ExactRetriever
from xcm_debias.plain_vectors import as_vectors
from xcm_debias.processors import Chain, PostProcessor
from xcm_debias.scoring import InvertedSoftmax


class Centre(PostProcessor):
    """Test processor: subtract the calibration mean, then add a fixed ``offset`` to coordinate 0."""

    def __init__(self, offset: float = 0.0) -> None:
        super().__init__()
        self.offset = offset

    def _fit(self, calibration: EmbeddingSet) -> None:
        self.set_state("mean", calibration.embeddings.float().mean(dim=0))

    def forward(self, x: torch.Tensor, data: EmbeddingSet) -> torch.Tensor:
        out = x - self.mean
        out[:, 0] += self.offset
        return out


def unit(n: int, d: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_exact_retriever_on_arrays_matches_the_cosine_formula():
    q, g = unit(9, 6, 0), 3.0 * unit(30, 6, 1)  # gallery norms 3: cosine, not dot product
    ranking = ExactRetriever().search(q, g, 4)
    cos = q @ (g / np.linalg.norm(g, axis=1, keepdims=True)).T
    expected = np.argsort(-cos, axis=1, kind="stable")[:, :4]
    assert np.array_equal(ranking.indices.numpy(), expected)
    assert np.allclose(ranking.scores.numpy(), np.take_along_axis(cos, expected, 1), atol=1e-6)
    tensors = ExactRetriever().search(torch.from_numpy(q), torch.from_numpy(g), 4)
    assert torch.equal(tensors.indices, ranking.indices)
    targets = np.arange(9)
    ranks = ExactRetriever().rank_of(q, g, targets).numpy()
    assert np.array_equal(ranks, (cos > cos[np.arange(9), targets][:, None]).sum(1) + 1)


def test_bad_plain_inputs_name_the_argument():
    q, g = unit(3, 4, 0), unit(5, 4, 1)
    with pytest.raises(TypeError, match=r"queries: expected an EmbeddingSet or a \[N, D\]"):
        ExactRetriever().search(q.tolist(), g, 1)
    with pytest.raises(
        ValueError, match=r"gallery: expected a 2-D tensor \[N, D\], got shape \(4,\)"
    ):
        ExactRetriever().search(q, g[0], 1)
    zero = g.copy()
    zero[2] = 0
    with pytest.raises(ValueError, match="gallery: expected non-zero rows .* first at row 2"):
        ExactRetriever().search(q, zero, 1)
    with pytest.raises(TypeError, match="queries: expected a floating dtype"):
        ExactRetriever().search(np.ones((2, 4), dtype=np.int64), g, 1)


@pytest.mark.parametrize("direction", ["t2i", "i2t"])
def test_debiased_on_arrays_equals_debiased_on_sets_of_its_direction(direction):
    calibration, test = multilingual_corpus(n_items=24, dim=12).split_items(0.5, seed=0)
    fair = Debiased(ExactRetriever(), scoring={direction: InvertedSoftmax(beta=10.0)})
    fair.fit(calibration)
    queries, gallery = (
        (test.texts, test.images) if direction == "t2i" else (test.images, test.texts)
    )
    expected = fair.search(queries, gallery, 5)
    plain = fair.search(queries.embeddings.numpy(), gallery.embeddings, 5)
    assert torch.equal(plain.indices, expected.indices)
    assert torch.equal(plain.scores, expected.scores)
    targets = torch.arange(len(queries)) % len(gallery)
    assert torch.equal(
        fair.rank_of(queries.embeddings, gallery.embeddings.numpy(), targets),
        fair.rank_of(queries, gallery, targets),
    )
    # the score stage took part: without it the ranking differs
    assert not torch.equal(ExactRetriever().search(queries, gallery, 5).indices, plain.indices)


def test_debiased_transform_gives_back_the_form_it_was_given():
    calibration, test = multilingual_corpus(n_items=12, dim=8).split_items(0.5, seed=0)
    fair = Debiased(ExactRetriever(), Centre(offset=0.5)).fit(calibration)
    x = test.texts.embeddings
    mean = calibration.embeddings.float().mean(dim=0)
    expected = x - mean
    expected[:, 0] += 0.5
    as_tensor = fair.transform(x)
    as_array = fair.transform(x.numpy())
    assert isinstance(as_tensor, torch.Tensor) and isinstance(as_array, np.ndarray)
    assert torch.allclose(as_tensor, expected, atol=1e-6)
    assert np.allclose(as_array, expected.numpy(), atol=1e-6)
    assert isinstance(fair.transform(test), EmbeddingSet)


def test_debiased_takes_a_list_of_processors_as_a_chain():
    calibration, test = multilingual_corpus(n_items=12, dim=8).split_items(0.5, seed=0)
    listed = Debiased(ExactRetriever(), [Centre(0.5), Centre(-0.2)]).fit(calibration)
    chained = Debiased(ExactRetriever(), Chain(Centre(0.5), Centre(-0.2))).fit(calibration)
    assert isinstance(listed.processors, Chain) and len(listed.processors.steps) == 2
    assert torch.equal(listed.transform(test).embeddings, chained.transform(test).embeddings)
    # the second stage was fitted on the first one's output: its mean is ~(0.5, 0, ...)
    second_mean = listed.processors.steps[1].mean
    assert abs(float(second_mean[0]) - 0.5) < 1e-5 and float(second_mean[1:].abs().max()) < 1e-5
    with pytest.raises(TypeError, match="processors\\[1\\]: expected a PostProcessor, got str"):
        Debiased(ExactRetriever(), [Centre(), "LanguageAlignment"])
    with pytest.raises(TypeError, match="processors: expected a PostProcessor, a Chain, a list"):
        Debiased(ExactRetriever(), {"a": Centre()})
    assert Debiased(ExactRetriever(), []).processors is None


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(1, 30),
    dim=st.integers(1, 9),
    zero_at=st.lists(st.integers(0, 29), max_size=4),
    seed=st.integers(0, 2**16),
    dtype=st.sampled_from([torch.float16, torch.float32, torch.float64]),
)
def test_plain_rows_that_are_all_zero_are_found_as_the_dense_check_finds_them(
    rows, dim, zero_at, seed, dtype
):
    """A row is refused exactly when every entry is ±0 (rows with one negative entry among
    zeros, or -0.0 entries, included), and the message names the count and the first."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(-1, 2, (rows, dim), generator=g).to(dtype)  # many zeros and -1s
    for r in zero_at:
        if r < rows:
            x[r] = -0.0
    zero = (x == 0).all(dim=1).nonzero().flatten()
    if len(zero) == 0:
        assert as_vectors(x, "gallery") is x
        return
    with pytest.raises(
        ValueError,
        match=rf"got {len(zero)} all-zero row\(s\), first at row "
        rf"{int(zero[0])}$",
    ):
        as_vectors(x, "gallery")
