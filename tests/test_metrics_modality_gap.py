from __future__ import annotations

import numpy as np
import pytest
import torch

from xcm_debias.metrics import modality_gap


def test_modality_gap_by_hand():
    images = torch.tensor([[1.0, 0.0], [2.0, 0.0]])
    texts = torch.tensor([[0.0, 3.0]])
    assert modality_gap(images, texts) == pytest.approx(np.sqrt(2))


def test_modality_gap_equals_the_direct_formula_and_ignores_row_scale():
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(50, 16, generator=gen) + 1.0
    texts = torch.randn(70, 16, generator=gen) - 0.5
    x = images.double() / images.double().norm(dim=1, keepdim=True)
    y = texts.double() / texts.double().norm(dim=1, keepdim=True)
    expected = float((x.mean(0) - y.mean(0)).norm())
    assert modality_gap(images, texts) == pytest.approx(expected, rel=1e-12)
    scales = torch.rand(50, 1, generator=gen) * 10 + 0.1
    assert modality_gap(images * scales, texts) == pytest.approx(expected, rel=1e-9)
    assert modality_gap(images, images.clone()) == pytest.approx(0.0, abs=1e-12)


def test_inputs_are_not_modified():
    images, texts = torch.randn(4, 3), torch.randn(5, 3)
    copies = images.clone(), texts.clone()
    modality_gap(images, texts)
    assert torch.equal(images, copies[0]) and torch.equal(texts, copies[1])


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="text_embeddings: expected dimension 3"):
        modality_gap(torch.randn(2, 3), torch.randn(2, 4))
    with pytest.raises(ValueError, match="image_embeddings: expected finite values"):
        modality_gap(torch.tensor([[np.nan, 1.0]]), torch.randn(2, 2))
    with pytest.raises(ValueError, match="image_embeddings: expected non-zero rows"):
        modality_gap(torch.zeros(1, 2), torch.randn(2, 2))
