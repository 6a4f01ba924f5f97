"""Atomic writes: a failed write leaves the previous file intact and no temporary file."""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pytest
import torch

import xcm_debias.formats as formats
from xcm_debias import EmbeddingSet
from xcm_debias.atomic import DiskFullError, atomic_path, write_text


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_the_new_content_replaces_the_old_only_when_complete(tmp_path):
    target = tmp_path / "a.txt"
    write_text(target, "old")
    with pytest.raises(RuntimeError, match="crash"), atomic_path(target) as tmp:
        tmp.write_text("half of the new")
        raise RuntimeError("crash")
    assert target.read_text() == "old" and files(tmp_path) == ["a.txt"]
    write_text(target, "new")
    assert target.read_text() == "new" and files(tmp_path) == ["a.txt"]


def test_a_full_disk_is_named_and_the_previous_file_kept(tmp_path):
    target = tmp_path / "a.txt"
    write_text(target, "old")
    with pytest.raises(DiskFullError, match=r"a.txt: no space left on the device"):
        with atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert target.read_text() == "old" and files(tmp_path) == ["a.txt"]


def test_a_folder_is_not_a_file_path(tmp_path):
    with pytest.raises(IsADirectoryError, match="expected a file path"), atomic_path(tmp_path):
        pass


def test_written_files_get_the_usual_permissions(tmp_path):
    write_text(tmp_path / "a.txt", "x")
    assert (tmp_path / "a.txt").stat().st_mode & 0o044  # readable by others, as open() makes


@pytest.mark.parametrize("suffix", [".npz", ".parquet"])
def test_embedding_set_save_on_a_full_disk_keeps_the_previous_file(tmp_path, monkeypatch, suffix):
    path = tmp_path / f"set{suffix}"
    old = EmbeddingSet(torch.ones(3, 2), modality="image").save(path)
    before = old.read_bytes()
    writer = "savez" if suffix == ".npz" else "write_table"
    module = formats.np if suffix == ".npz" else formats.pq
    real = getattr(module, writer)

    def full(target: object, *args: object, **kwargs: object) -> None:
        real(target, *args, **kwargs)  # the bytes go out, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(module, writer, full)
    with pytest.raises(DiskFullError, match="no space left"):
        EmbeddingSet(torch.zeros(50, 2) + 2, modality="text").save(path)
    assert path.read_bytes() == before and files(tmp_path) == [path.name]
    np.testing.assert_array_equal(EmbeddingSet.load(path).embeddings.numpy(), np.ones((3, 2)))
