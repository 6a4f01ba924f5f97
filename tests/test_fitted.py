"""The fitted-module machinery shared by processors and score normalisers (``xcm_debias.fitted``)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file
from scoring_fixtures import multilingual_corpus

from xcm_debias.fitted import FORMAT_VERSION, FittedModule, NotFittedError
from xcm_debias.processors import LanguageProjection, PostProcessor
from xcm_debias.scoring import InvertedSoftmax, ScoreNormalizer


def test_each_family_keeps_its_own_registry() -> None:
    assert "LanguageProjection" in PostProcessor.registry
    assert "InvertedSoftmax" in ScoreNormalizer.registry
    assert "InvertedSoftmax" not in PostProcessor.registry
    assert "LanguageProjection" not in ScoreNormalizer.registry
    assert not hasattr(FittedModule, "registry")  # the families' bases are not registered
    assert "PostProcessor" not in PostProcessor.registry
    assert "ScoreNormalizer" not in ScoreNormalizer.registry
    with pytest.raises(ValueError, match="unknown processor class 'InvertedSoftmax'"):
        PostProcessor.from_config({"class": "InvertedSoftmax", "params": {}})
    with pytest.raises(ValueError, match="unknown score normaliser class 'LanguageProjection'"):
        ScoreNormalizer.from_config({"class": "LanguageProjection", "params": {}})


def test_not_fitted_errors_say_how_to_fit() -> None:
    with pytest.raises(NotFittedError, match=r"LanguageProjection: not fitted; call fit\(calib"):
        LanguageProjection().check_is_fitted()
    with pytest.raises(NotFittedError, match=r"InvertedSoftmax: not fitted; call fit\(query_bank"):
        InvertedSoftmax().check_is_fitted()


def test_a_format_1_file_written_by_hand_loads(tmp_path) -> None:
    # the on-disk layout of format 1, spelled out: buffers + {"format": 1, "config": ...}
    bank = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    header = {
        "format": 1,
        "config": {
            "class": "InvertedSoftmax",
            "params": {"beta": 2.0, "block_size": 4096},
            "fitted_meta": {"dim": 2, "offset_dim": 0},
        },
    }
    state = {"fitted_flag": torch.tensor(True), "query_bank": bank}
    save_file(state, str(tmp_path / "s.safetensors"), metadata={"xcm_debias": json.dumps(header)})
    scorer = ScoreNormalizer.load(tmp_path / "s.safetensors")
    assert isinstance(scorer, InvertedSoftmax) and scorer.beta == 2.0 and scorer.is_fitted
    assert torch.equal(scorer.query_bank, bank)


def test_a_newer_format_is_refused_and_a_foreign_file_named(tmp_path) -> None:
    corpus = multilingual_corpus(n_items=6, dim=4)
    path = LanguageProjection().fit(corpus).save(tmp_path / "p.safetensors")
    header = {"format": FORMAT_VERSION + 1, "config": LanguageProjection().to_config()}
    save_file(
        {"fitted_flag": torch.tensor(True)},
        str(path),
        metadata={"xcm_debias": json.dumps(header)},
    )
    with pytest.raises(ValueError, match=f"format <= {FORMAT_VERSION}, got {FORMAT_VERSION + 1}"):
        PostProcessor.load(path)
    save_file({"x": torch.zeros(1)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(ValueError, match="not an xcm_debias score normaliser file"):
        ScoreNormalizer.load(tmp_path / "plain.safetensors")
    with pytest.raises(FileNotFoundError, match="path: no such file"):
        PostProcessor.load(tmp_path / "missing.safetensors")
