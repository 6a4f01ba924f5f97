"""``xcm-debias fit`` never overwrites its input, and replaces an existing output only with
``--force``."""

from __future__ import annotations

from pathlib import Path

import pytest
from synthetic_processors import make_world

from xcm_debias import EmbeddingSet
from xcm_debias.cli import main


@pytest.fixture
def corpus(tmp_path) -> Path:
    return make_world(n_items=24, dim=8, tug=0.5, seed=0).save(tmp_path / "c.npz")


def fit(*args: object) -> int:
    return main(["fit", *map(str, args)])


def test_the_held_out_half_never_replaces_the_corpus(corpus, tmp_path, capsys):
    before = corpus.read_bytes()
    code = fit(corpus, "identity", "--test-size", "0.5", "--test-out", corpus,
               "--out", tmp_path / "p.safetensors")  # fmt: skip
    assert code == 2
    assert "--test-out: expected a path other than CALIBRATION" in capsys.readouterr().err
    assert corpus.read_bytes() == before
    assert not (tmp_path / "p.safetensors").exists()


def test_existing_outputs_need_force(corpus, tmp_path, capsys):
    out, test = tmp_path / "p.safetensors", tmp_path / "t.npz"
    args = (corpus, "identity", "--out", out, "--test-size", "0.5", "--test-out", test)
    assert fit(*args) == 0
    first = out.read_bytes(), test.read_bytes()
    capsys.readouterr()
    assert fit(*args) == 2
    err = capsys.readouterr().err
    assert "--test-out: " in err and "already exists; pass --force" in err
    assert (out.read_bytes(), test.read_bytes()) == first
    assert fit(*args, "--seed", "1", "--force") == 0
    assert test.read_bytes() != first[1]
    assert len(EmbeddingSet.load(test)) > 0
