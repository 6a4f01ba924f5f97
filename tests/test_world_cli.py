from __future__ import annotations

import json

import pytest

from xcm_debias.cli import main
from xcm_debias.worlds import load_tower


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XCM_DEBIAS_CACHE", str(tmp_path / "cache"))


def test_world_info_describes_tower_and_sizes(capsys):
    assert main(["world", "info", "--n-items", "50"]) == 0
    out = capsys.readouterr().out
    assert "low-resource sw, vi" in out
    assert "50 items, 10 calibration, 40 test" in out
    assert "ja (dots)" in out


def test_world_info_baseline_on_a_reduced_world(capsys):
    assert main(["world", "info", "--baseline", "--n-items", "12", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "baseline: ExactRetriever on the test split (90 captions, 80 images)" in out
    assert "English share of image→text top-1" in out
    rows = {
        line.split()[0]: line.split()
        for line in out.splitlines()
        if line[:3].strip() in ("en", "sw")
    }
    assert rows["en"][2] == "-"  # English has no culture


def test_world_train_writes_loadable_weights(tmp_path, capsys):
    out = tmp_path / "tower"
    argv = ["world", "train", "--out", str(out), "--n-images", "16", "--epochs", "1", "--quiet"]
    assert main(argv) == 0
    assert "wrote" in capsys.readouterr().out
    meta = json.loads((out / "tower.json").read_text())
    assert meta["config"]["n_images"] == 16 and meta["training"]["steps"] == 1
    assert load_tower(out).image_size == 32


def test_world_info_with_missing_weights_is_a_one_line_error(tmp_path, capsys):
    assert main(["world", "info", "--weights", str(tmp_path / "none")]) == 2
    assert "no tower weights" in capsys.readouterr().err
