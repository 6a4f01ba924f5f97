"""Saved pipelines carry a content hash and a tensor manifest: damage is refused at load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from scoring_fixtures import multilingual_corpus

from xcm_debias import Debiased, ExactRetriever
from xcm_debias.cli import main
from xcm_debias.processors import LanguageProjection, PostProcessor
from xcm_debias.scoring import InvertedSoftmax


@pytest.fixture(scope="module")
def corpus():
    return multilingual_corpus(n_items=8, dim=6)


@pytest.fixture
def pipeline(corpus, tmp_path) -> Path:
    fair = Debiased(ExactRetriever(), LanguageProjection(), InvertedSoftmax(beta=5.0))
    return fair.fit(corpus).save(tmp_path / "p.safetensors")


def flip_a_tensor_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    header = 8 + int.from_bytes(data[:8], "little")
    data[header + 5] ^= 0x40  # inside the first tensor's bytes
    path.write_bytes(bytes(data))


def rewrite(path: Path, edit) -> None:
    """Re-save ``path`` with its metadata kept and its tensors changed by ``edit``."""
    with safe_open(str(path), framework="pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    save_file(edit(tensors), str(path), metadata=meta)


def test_a_flipped_byte_is_refused(pipeline):
    flip_a_tensor_byte(pipeline)
    with pytest.raises(ValueError, match="content hash mismatch"):
        Debiased.load(pipeline)


def test_a_missing_tensor_is_refused(pipeline):
    rewrite(pipeline, lambda t: {k: v for k, v in t.items() if k != "scoring.i2t.0.query_bank"})
    with pytest.raises(ValueError, match=r"tensors missing \['scoring\.i2t\.0\.query_bank'\]"):
        Debiased.load(pipeline)


def test_a_wrong_shape_is_refused(corpus, tmp_path):
    path = LanguageProjection().fit(corpus).save(tmp_path / "lp.safetensors")
    name = next(k for k in safe_open(str(path), framework="pt").keys() if k != "fitted_flag")
    rewrite(path, lambda t: {**t, name: torch.zeros(3, 3)})
    with pytest.raises(ValueError, match=f"tensor '{name}' expected torch.float32"):
        PostProcessor.load(path)


def test_transform_refuses_a_damaged_pipeline(pipeline, tmp_path, capsys):
    flip_a_tensor_byte(pipeline)
    data = multilingual_corpus(n_items=3, dim=6).save(tmp_path / "d.npz")
    assert main(["transform", str(pipeline), str(data), str(tmp_path / "o.npz")]) == 2
    assert "content hash mismatch" in capsys.readouterr().err


def test_the_header_records_every_tensor(pipeline):
    with safe_open(str(pipeline), framework="pt") as f:
        metadata = f.metadata()
        shapes = {k: list(f.get_tensor(k).shape) for k in f.keys()}
    header = json.loads(metadata["xcm_debias"])
    assert header["format"] == 2
    assert {k: v[1] for k, v in header["tensors"].items()} == shapes
    assert len(metadata["xcm_debias.sha256"]) == 64


def test_a_saved_pipeline_reloads_identically(pipeline, corpus):
    a = Debiased.load(pipeline).search(corpus.texts, corpus.images, 4)
    b = Debiased.load(pipeline).search(corpus.texts, corpus.images, 4)
    assert torch.equal(a.indices, b.indices)
