from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from xcm_debias import EmbeddingSet


def make_corpus(n_items: int = 12, seed: int = 0) -> EmbeddingSet:
    g = torch.Generator().manual_seed(seed)
    cultures = ["de", "fr", "ja"]
    langs = ["en", "de", "fr", "ja"]
    img = EmbeddingSet(
        torch.randn(n_items, 8, generator=g),
        modality="image",
        item=[f"it{i}" for i in range(n_items)],
        culture=[cultures[i % 3] for i in range(n_items)],
    )
    txt = EmbeddingSet(
        torch.randn(n_items * len(langs), 8, generator=g),
        modality="text",
        item=[f"it{i}" for i in range(n_items) for _ in langs],
        language=[lang for _ in range(n_items) for lang in langs],
    )
    return EmbeddingSet.concat([img, txt])


def test_labels_are_aligned_and_defaults_filled():
    data = make_corpus()
    assert len(data) == 12 + 48
    assert data.languages() == ["de", "en", "fr", "ja"]
    assert data.cultures() == ["de", "fr", "ja"]
    assert (data.images.language == "").all()
    assert data.images.id[0] == "image-0" and data.texts.id[0] == "text-0"
    assert not data.has_label("language") and data.texts.has_label("language")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"embeddings": torch.randn(3)}, "2-D"),
        ({"embeddings": torch.zeros(0, 4)}, "non-empty"),
        ({"embeddings": torch.tensor([[1.0, float("nan")], [1.0, 0.0]])}, "1 NaN"),
        ({"embeddings": torch.tensor([[1.0, float("inf")], [1.0, 0.0]])}, "inf"),
        ({"embeddings": torch.tensor([[0.0, 0.0], [1.0, 0.0]])}, "all-zero row"),
        ({"embeddings": torch.ones(2, 2, dtype=torch.int64)}, "floating dtype"),
        ({"modality": "video"}, "modality: expected values in"),
        ({"item": ["a"]}, "item: expected 2 labels"),
        ({"language": ["en", "de", "fr"]}, "language: expected 2 labels"),
        ({"id": ["x", "x"]}, "unique ids"),
        ({"extra": {"objects": [["a"], ["b", "c"]]}}, "objects"),
    ],
)
def test_bad_input_names_field_expected_and_received(kwargs, message):
    args = {"embeddings": torch.ones(2, 2), "modality": "text"}
    args.update(kwargs)
    embeddings = args.pop("embeddings")
    with pytest.raises((ValueError, TypeError), match=message):
        EmbeddingSet(embeddings, **args)


def test_selection_and_where_keep_alignment():
    data = make_corpus()
    de = data.where(modality="text", language="de")
    assert len(de) == 12 and (de.language == "de").all()
    rows = np.flatnonzero((data.modality == "text") & (data.language == "de"))
    assert torch.equal(de.embeddings, data.embeddings[torch.from_numpy(rows)])
    assert (data[[0, 2]].item == ["it0", "it2"]).all()
    with pytest.raises(ValueError, match="empty selection"):
        data[np.zeros(len(data), dtype=bool)]
    with pytest.raises(ValueError, match="no row matches"):
        data.where(language="xx")


def test_normalized_returns_unit_rows_without_touching_input():
    data = make_corpus()
    before = data.embeddings.clone()
    unit = data.normalized()
    assert torch.allclose(unit.embeddings.norm(dim=1), torch.ones(len(data)), atol=1e-6)
    assert torch.equal(data.embeddings, before)


def test_concat_rejects_mismatched_dims_and_renames_colliding_generated_ids():
    a = EmbeddingSet(torch.ones(2, 3), modality="image")
    b = EmbeddingSet(torch.ones(2, 3), modality="image")
    both = EmbeddingSet.concat([a, b])
    assert len(set(both.id.tolist())) == 4
    with pytest.raises(ValueError, match="one embedding dimension"):
        EmbeddingSet.concat([a, EmbeddingSet(torch.ones(2, 4), modality="image")])
    with pytest.raises(ValueError, match="at least one"):
        EmbeddingSet.concat([])


def test_split_items_is_disjoint_deterministic_and_covers_every_culture_and_language():
    data = make_corpus(n_items=30)
    calib, test = data.split_items(test_size=0.5, seed=3)
    assert not set(calib.item) & set(test.item)
    assert len(calib) + len(test) == len(data)
    for side in (calib, test):
        assert side.cultures() == data.cultures()
        assert side.languages() == data.languages()
    again, _ = data.split_items(test_size=0.5, seed=3)
    assert (again.id == calib.id).all()
    with pytest.raises(ValueError, match="test_size"):
        data.split_items(test_size=1.5)


@settings(max_examples=30, deadline=None)
@given(n_items=st.integers(2, 40), test_size=st.floats(0.05, 0.95), seed=st.integers(0, 10_000))
def test_split_items_never_shares_an_item(n_items, test_size, seed):
    data = make_corpus(n_items=n_items, seed=seed % 7)
    calib, test = data.split_items(test_size=test_size, seed=seed)
    assert len(calib) > 0 and len(test) > 0
    assert not set(calib.item.tolist()) & set(test.item.tolist())


def test_with_embeddings_checks_rows_and_keeps_labels():
    data = make_corpus()
    new = data.with_embeddings(torch.ones(len(data), 5))
    assert new.dim == 5 and (new.item == data.item).all()
    with pytest.raises(ValueError, match=f"expected {len(data)} rows"):
        data.with_embeddings(torch.ones(3, 5))
