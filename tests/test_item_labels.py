"""Item labels never silently merge: blanks are refused, and so are values whose text collides."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xcm_debias import EmbeddingSet

X = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize(
    "items",
    [
        ["", "", "", ""],
        [None, "a", "b", "c"],
        ["a", "  ", "b", "c"],
        [float("nan"), "a", "b", "c"],
        np.array([1.0, np.nan, 2.0, 3.0]),
        "",
    ],
)
def test_blank_items_are_refused(items):
    with pytest.raises(ValueError, match="item: expected a non-empty item label on every row"):
        EmbeddingSet(X, modality="text", item=items)
    with pytest.raises(ValueError, match="item: expected a non-empty item label"):
        EmbeddingSet(X, modality="text").with_labels(item=items)


@pytest.mark.parametrize(
    ("items", "pair"),
    [
        ([1, "1", "a", "b"], r"1 \(int\) and '1' \(str\)"),
        (["nan", "a", "b", np.float64(np.nan)], "non-empty"),  # NaN is blank, never "nan"
        ([True, "True", "a", "b"], r"True \(bool\) and 'True' \(str\)"),
    ],
)
def test_values_of_different_types_with_one_text_are_refused(items, pair):
    with pytest.raises(ValueError, match=pair):
        EmbeddingSet(X, modality="text", item=items)


def test_one_kind_of_value_is_fine():
    assert EmbeddingSet(X, modality="text", item=[1, 2, 2, 3]).item.tolist() == ["1", "2", "2", "3"]
    mixed = EmbeddingSet(X, modality="text", item=[1, np.int64(1), "a", "b"])
    assert mixed.item.tolist() == ["1", "1", "a", "b"]
    assert EmbeddingSet(X, modality="text", item=np.array(["nan", "x", "y", "z"])).item[0] == "nan"
