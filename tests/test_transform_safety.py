"""`xcm-debias transform` never loses a file and never resumes from output it cannot verify."""

from __future__ import annotations

import errno
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from streaming_helpers import DIM, ROWS, fitted, outputs, write_folder

import xcm_debias.streaming as streaming
from xcm_debias import EmbeddingSet
from xcm_debias.cli import main
from xcm_debias.streaming import MANIFEST


def transform(*args: str) -> int:
    return main(["transform", *map(str, args), "--quiet"])


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (hidden temporary files included) by relative path."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture
def done(tmp_path) -> tuple[Path, Path, Path]:
    """An input folder, a pipeline, and a finished output folder of that pipeline."""
    src, pipeline = write_folder(tmp_path / "in"), fitted(0.0, tmp_path / "p.safetensors")
    assert transform(pipeline, src, tmp_path / "out") == 0
    return src, pipeline, tmp_path / "out"


@pytest.mark.parametrize("fault", ["fallocate", "write"])
def test_a_full_disk_fails_clearly_and_keeps_the_previous_output(
    done, tmp_path, capsys, monkeypatch, fault
):
    src, _, out = done
    before = snapshot(out)
    other = fitted(0.0, tmp_path / "other.safetensors", scale=2.0)
    calls = []

    def no_space(*args: object) -> None:
        calls.append(args)
        if len(calls) == 2:  # the second shard fails mid-way
            raise OSError(errno.ENOSPC, "No space left on device")

    if fault == "fallocate":
        monkeypatch.setattr(streaming.os, "posix_fallocate", no_space)
    else:
        real = streaming._write_block
        monkeypatch.setattr(streaming, "_write_block", lambda f, b: (no_space(), real(f, b)))
    capsys.readouterr()
    assert transform(other, src, out, "--force") == 2
    err = capsys.readouterr().err
    assert "no space left on the device" in err and "img_emb_1.npy" in err
    after = snapshot(out)
    assert not [name for name in after if name.endswith(".tmp")], "a temporary file was left"
    # the first shard was redone with the other pipeline; the one that failed is untouched
    assert after["img_emb/img_emb_1.npy"] == before["img_emb/img_emb_1.npy"]
    assert after.keys() == before.keys()


def test_a_rerun_with_another_pipeline_is_refused_without_force(done, tmp_path, capsys):
    src, _, out = done
    before = snapshot(out)
    other = fitted(0.0, tmp_path / "other.safetensors", scale=2.0)
    capsys.readouterr()
    assert transform(other, src, out) == 2
    assert "holds shards of another pipeline" in capsys.readouterr().err
    assert snapshot(out) == before
    assert transform(other, src, out, "--force") == 0
    expected = fitted_transform(other, src / "img_emb" / "img_emb_0.npy")
    np.testing.assert_allclose(np.load(out / "img_emb" / "img_emb_0.npy"), expected, atol=1e-6)


def fitted_transform(pipeline: Path, shard: Path) -> np.ndarray:
    from streaming_helpers import CenterWithDelay

    data = EmbeddingSet(torch.from_numpy(np.load(shard)), modality="image")
    return CenterWithDelay.load(pipeline).transform(data).embeddings.numpy()


def test_a_changed_input_shard_is_redone(done, capsys):
    src, pipeline, out = done
    shard = src / "text_emb" / "text_emb_2.npy"
    np.save(shard, np.load(shard) + 1.0)
    capsys.readouterr()
    assert transform(pipeline, src, out) == 0
    np.testing.assert_allclose(
        np.load(out / "text_emb" / "text_emb_2.npy"), fitted_transform(pipeline, shard), atol=1e-6
    )


@pytest.mark.parametrize("damage", ["truncate", "empty"])
def test_a_truncated_or_empty_output_shard_is_redone(done, damage, capsys):
    src, pipeline, out = done
    reference = outputs(out)
    target = out / "img_emb" / "img_emb_3.npy"
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"")
    assert main(["transform", str(pipeline), str(src), str(out)]) == 0
    captured = capsys.readouterr()
    assert "redoing img_emb/img_emb_3.npy: output damaged" in captured.err
    assert "7 already done and verified, skipped" in captured.out
    for name, array in outputs(out).items():
        np.testing.assert_array_equal(array, reference[name])


def test_output_without_a_manifest_is_not_trusted(done, capsys):
    src, pipeline, out = done
    (out / MANIFEST).unlink()
    capsys.readouterr()
    assert transform(pipeline, src, out) == 2
    assert "no xcm_debias_manifest.json" in capsys.readouterr().err


def test_the_manifest_records_pipeline_inputs_and_shapes(done):
    src, pipeline, out = done
    manifest = json.loads((out / MANIFEST).read_text())
    record = manifest["shards"]["text_emb/text_emb_0.npy"]
    assert record["shape"] == [ROWS, DIM] and record["dtype"] == "float32"
    assert record["input"] == streaming.file_digest(src / "text_emb" / "text_emb_0.npy")
    assert record["output"] == streaming.file_digest(out / "text_emb" / "text_emb_0.npy")
    assert len(manifest["pipeline"]) == 64


def test_float16_shards_stay_float16(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    x = np.random.default_rng(0).normal(size=(9, DIM)).astype(np.float16)
    np.save(src / "a.npy", x)
    pipeline = fitted(0.0, tmp_path / "p.safetensors")
    assert transform(pipeline, src, tmp_path / "out", "--modality", "image") == 0
    y = np.load(tmp_path / "out" / "a.npy")
    assert y.dtype == np.float16
    expected = fitted_transform(pipeline, src / "a.npy").astype(np.float16)
    np.testing.assert_array_equal(y, expected)


def bad_input(tmp_path: Path, array: np.ndarray | bytes) -> Path:
    src = tmp_path / "in"
    src.mkdir(exist_ok=True)
    if isinstance(array, bytes):
        (src / "a.npy").write_bytes(array)
    else:
        np.save(src / "a.npy", array)
    return src


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((0, DIM), np.float32), r"a.npy: expected a non-empty \[N, D\] shard"),
        (np.ones((5, DIM + 1), np.float32), f"a.npy: data: expected embeddings of dimension {DIM}"),
        (b"not numpy at all", "a.npy: not a readable .npy file"),
    ],
)
def test_bad_shards_are_named_in_one_line(tmp_path, capsys, array, message):
    src = bad_input(tmp_path, array)
    pipeline = fitted(0.0, tmp_path / "p.safetensors")
    assert transform(pipeline, src, tmp_path / "out", "--modality", "text") == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert re.search(message, err), err
    assert "allow_pickle" not in err
    assert not list((tmp_path / "out").rglob("*.tmp"))


def test_a_nan_is_reported_with_its_shard_and_row(tmp_path, capsys):
    x = np.ones((30, DIM), np.float32)
    x[21, 2] = np.nan
    src = bad_input(tmp_path, x)
    pipeline = fitted(0.0, tmp_path / "p.safetensors")
    code = transform(pipeline, src, tmp_path / "out", "--modality", "text", "--batch-size", "4")
    assert code == 2
    err = capsys.readouterr().err
    assert "a.npy: expected finite values, got NaN or inf in row 21" in err


def test_an_existing_file_as_output_folder_is_refused(tmp_path, capsys):
    src = write_folder(tmp_path / "in")
    (tmp_path / "out").write_text("mine")
    assert transform(fitted(0.0, tmp_path / "p.safetensors"), src, tmp_path / "out") == 2
    assert "expected a folder, got the existing file" in capsys.readouterr().err
    assert (tmp_path / "out").read_text() == "mine"


def test_a_text_file_named_npz_gets_no_pickle_advice(tmp_path, capsys):
    (tmp_path / "t.npz").write_text("hello")
    pipeline = fitted(0.0, tmp_path / "p.safetensors")
    assert transform(pipeline, tmp_path / "t.npz", tmp_path / "o.npz") == 2
    err = capsys.readouterr().err
    assert "t.npz: not a readable .npz file" in err
    assert "allow_pickle" not in err


def set_file(tmp_path: Path, dtype: type = np.float32) -> Path:
    x = np.random.default_rng(1).normal(size=(6, DIM)).astype(dtype)
    return EmbeddingSet(torch.from_numpy(x), modality="text").save(tmp_path / "t.npz")


def test_single_file_output_is_never_the_input_and_never_silently_replaced(tmp_path, capsys):
    data, pipeline = set_file(tmp_path), fitted(0.0, tmp_path / "p.safetensors")
    original = data.read_bytes()
    assert transform(pipeline, data, data) == 2
    assert "OUTPUT: expected a path other than INPUT" in capsys.readouterr().err
    assert data.read_bytes() == original
    (tmp_path / "o.npz").write_bytes(b"previous")
    assert transform(pipeline, data, tmp_path / "o.npz") == 2
    assert "already exists; pass --force" in capsys.readouterr().err
    assert (tmp_path / "o.npz").read_bytes() == b"previous"
    assert transform(pipeline, data, tmp_path / "o.npz", "--force") == 0
    assert EmbeddingSet.load(tmp_path / "o.npz").embeddings.shape == (6, DIM)


def test_single_file_keeps_float16(tmp_path):
    data = set_file(tmp_path, np.float16)
    assert transform(fitted(0.0, tmp_path / "p.safetensors"), data, tmp_path / "o.npz") == 0
    assert EmbeddingSet.load(tmp_path / "o.npz").embeddings.dtype == torch.float16
