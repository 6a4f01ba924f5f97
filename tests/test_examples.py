"""Every script in examples/ runs as a new user would run it, offline, and does what it says.

Each example runs in a subprocess (``sys.executable examples/<name>.py --out TMP``) with
``XCM_DEBIAS_CACHE`` pointing at one temporary folder shared by this module (the embedded world
is built once per test session) and ``HF_HUB_OFFLINE=1`` (no download is ever attempted). The
tests check the exit code, the files each example promises, and numbers it prints or writes.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    cache = tmp_path_factory.mktemp("xcm_debias_cache")
    return {
        **os.environ,
        "XCM_DEBIAS_CACHE": str(cache),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",  # the suite shares 2 cores; one thread per example
        "MKL_NUM_THREADS": "1",
        "PYTHONWARNINGS": "ignore",
    }


def run_example(name: str, out: Path, env: dict[str, str], *args: str) -> str:
    """Run ``examples/<name>.py --out OUT ARGS`` from ``out``'s parent; returns its stdout."""
    script = EXAMPLES / f"{name}.py"
    done = subprocess.run(
        [sys.executable, str(script), "--out", str(out), *args],
        cwd=out.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"{name} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def before_after(stdout: str, key: str) -> tuple[float, float]:
    """The ``key  BEFORE -> AFTER`` line an example prints."""
    match = re.search(rf"^\s*{re.escape(key)}\s+(-?[\d.]+)\s+->\s+(-?[\d.]+)\s*$", stdout, re.M)
    assert match, f"no '{key} before -> after' line in:\n{stdout}"
    return float(match.group(1)), float(match.group(2))


def test_every_example_has_a_test():
    tested = {
        "quickstart_world",
        "bring_your_own_embeddings",
        "clip_retrieval_to_faiss",
        "multilingual_open_clip",
        "hubness_only",
        "toy_image_folder",
    }
    assert {p.stem for p in EXAMPLES.glob("*.py")} == tested


def test_quickstart_world(tmp_path, env):
    out = tmp_path / "quickstart"
    stdout = run_example("quickstart_world", out, env)
    assert "Bias report: before vs after" in stdout
    html = (out / "report.html").read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") or "<html" in html[:200]
    comparison = json.loads((out / "comparison.json").read_text(encoding="utf-8"))
    assert comparison["format"] == "xcm_debias.Comparison"
    for key in ("t2i/recall@1", "i2t/language_tv@1", "t2i/own_culture_excess@1"):
        printed = before_after(stdout, key)
        stored = (comparison["before"]["metrics"][key], comparison["after"]["metrics"][key])
        np.testing.assert_allclose(printed, stored, atol=5e-4)
    # the world's cultural tugging is strong before (docs/world.md: 0.78-0.80 on the full world)
    # and the recommended pipeline removes most of it
    excess_before, excess_after = before_after(stdout, "t2i/own_culture_excess@1")
    assert excess_before > 0.5
    assert abs(excess_after) < 0.5 * excess_before


def test_bring_your_own_embeddings(tmp_path, env):
    out = tmp_path / "byo"
    stdout = run_example("bring_your_own_embeddings", out, env)
    for name in ("corpus.npz", "corpus.parquet", "report.html", "pipeline.safetensors"):
        assert (out / name).stat().st_size > 0, name
    assert "reloaded rankings identical: True" in stdout
    # the saved pipeline is loadable by a fresh process (no pickle, config in the header)
    from xcm_debias import Debiased, EmbeddingSet

    corpus = EmbeddingSet.load(out / "corpus.npz")
    assert corpus.languages() == ["de", "en", "es", "fr", "it", "ja", "ru", "sw", "vi"]
    assert len(corpus.images) == 8 * 60 and len(corpus.texts) == 9 * 60
    pipeline = Debiased.load(out / "pipeline.safetensors")
    assert pipeline.is_fitted and set(pipeline.scorers_) == {"t2i", "i2t"}
    excess_before, excess_after = before_after(stdout, "t2i/own_culture_excess@1")
    assert excess_after < excess_before


def test_clip_retrieval_to_faiss_and_the_transform_command(tmp_path, env):
    out = tmp_path / "faiss"
    stdout = run_example("clip_retrieval_to_faiss", out, env)
    assert "rankings identical: True" in stdout
    for name in (
        "pipeline.safetensors",
        "processors.safetensors",
        "gallery.hnsw.faiss",
        "gallery.hnsw.faiss.fingerprint",
        "embeddings/metadata/metadata_0.parquet",
        "debiased_embeddings/img_emb/img_emb_0.npy",
        "debiased_embeddings/text_emb/text_emb_0.npy",
        "debiased_embeddings/metadata/metadata_0.parquet",
    ):
        assert (out / name).is_file(), name
    source = np.load(out / "embeddings/text_emb/text_emb_0.npy")
    debiased = np.load(out / "debiased_embeddings/text_emb/text_emb_0.npy")
    assert source.shape == debiased.shape == (480, 512)
    assert not np.allclose(source, debiased)  # the language eraser changed the captions

    # the command line the example prints writes the same shards
    line = re.search(r"^same from the shell: (.+)$", stdout, re.M)
    assert line, stdout
    argv = shlex.split(line.group(1))
    assert argv[:2] == ["xcm-debias", "transform"]
    again = tmp_path / "cli_shards"
    done = subprocess.run(
        [sys.executable, "-m", "xcm_debias", "transform", argv[2], argv[3], str(again), "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    np.testing.assert_array_equal(np.load(again / "text_emb/text_emb_0.npy"), debiased)


def test_multilingual_open_clip_offline_says_what_to_download(tmp_path, env):
    stdout = run_example("multilingual_open_clip", tmp_path / "clip", env)
    assert "xlm-roberta-base-ViT-B-32 (laion5b_s13b_b90k) is not available here" in stdout
    assert "--pretrained /path/to/open_clip_pytorch_model.bin" in stdout
    assert not (tmp_path / "clip" / "report.html").exists()


def test_multilingual_open_clip_tiny_runs_the_whole_path(tmp_path, env):
    out = tmp_path / "tiny"
    stdout = run_example("multilingual_open_clip", out, env, "--tiny", "--n-items", "12")
    assert (out / "report.html").stat().st_size > 0
    from xcm_debias import EmbeddingSet

    corpus = EmbeddingSet.load(out / "corpus.npz")
    assert corpus.dim == 32
    assert len(corpus.images) == 12 * 4 and len(corpus.texts) == 12 * 5
    np.testing.assert_allclose(np.linalg.norm(corpus.embeddings.numpy(), axis=1), 1.0, atol=1e-5)
    recall_before, _ = before_after(stdout, "t2i/recall@1")
    assert 0.0 <= recall_before <= 1.0


def test_hubness_only_on_a_synthetic_hubby_gallery(tmp_path, env):
    out = tmp_path / "hubness"
    run_example("hubness_only", out, env)
    summary = json.loads((out / "hubness.json").read_text(encoding="utf-8"))
    skew = summary["t2i/hubness_skew@10"]
    # the leaning images are hubs well above the random null; both normalisers cut the skew
    assert skew["exact"] > 3 * summary["t2i/hubness_skew_null@10"]["exact"]
    assert skew["csls"] < 0.75 * skew["exact"]
    assert skew["dbnorm"] < 0.75 * skew["exact"]
    recall = summary["t2i/recall@1"]
    assert recall["csls"] >= recall["exact"] - 0.02
    assert (out / "report.html").stat().st_size > 0


def test_toy_image_folder_writes_what_xcm_debias_encode_reads(tmp_path, env):
    import csv

    from PIL import Image

    out = tmp_path / "toy"
    stdout = run_example("toy_image_folder", out, env)
    assert "wrote 27 images" in stdout and "81 captions" in stdout
    images = sorted((out / "images").glob("*.png"))
    assert len(images) == 27
    with Image.open(images[0]) as first:
        assert first.size == (48, 48)
    with (out / "captions.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 81
    assert {r["language"] for r in rows} == {"en", "de", "fr"}
    assert {r["item"] for r in rows} == {p.stem for p in images}  # image file stem = item
    assert all(r["item"].endswith(r["culture"]) for r in rows)
    config = json.loads((out / "tiny_clip.json").read_text(encoding="utf-8"))
    assert config["embed_dim"] == 32 and set(config) == {"embed_dim", "vision_cfg", "text_cfg"}
