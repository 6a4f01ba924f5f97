from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from streaming_helpers import CenterWithDelay

from xcm_debias import EmbeddingSet
from xcm_debias.cli import main
from xcm_debias.streaming import transform_folder

N_SHARDS, ROWS, DIM = 4, 40, 6


def write_folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for name in ("img_emb", "text_emb", "metadata"):
        (root / name).mkdir(parents=True)
    for s in range(N_SHARDS):
        np.save(
            root / "img_emb" / f"img_emb_{s}.npy", rng.normal(size=(ROWS, DIM)).astype(np.float32)
        )
        np.save(
            root / "text_emb" / f"text_emb_{s}.npy", rng.normal(size=(ROWS, DIM)).astype(np.float32)
        )
        table = pa.table({"item": [f"{s}:{i}" for i in range(ROWS)], "language": ["de"] * ROWS})
        pq.write_table(table, root / "metadata" / f"metadata_{s}.parquet")
    return root


def fitted(delay: float, path: Path) -> Path:
    calib = EmbeddingSet(torch.ones(3, DIM) * torch.arange(1, 4)[:, None], modality="text")
    return CenterWithDelay(delay=delay).fit(calib).save(path)


def outputs(root: Path) -> dict[str, np.ndarray]:
    return {str(p.relative_to(root)): np.load(p) for p in sorted(root.rglob("*.npy"))}


def test_streamed_output_equals_the_in_memory_transform(tmp_path):
    src = write_folder(tmp_path / "in")
    pipeline = fitted(0.0, tmp_path / "p.safetensors")
    transform_folder(pipeline, src, tmp_path / "out", batch_size=7, progress=False)
    got = EmbeddingSet.load(tmp_path / "out")
    expected = CenterWithDelay.load(pipeline).transform(EmbeddingSet.load(src))
    assert torch.allclose(got.embeddings, expected.embeddings, atol=1e-6)
    assert (got.item == expected.item).all()


def test_killed_run_resumes_to_identical_output(tmp_path):
    src = write_folder(tmp_path / "in")
    pipeline = fitted(0.05, tmp_path / "slow.safetensors")
    clean = tmp_path / "clean"
    assert (
        main(
            [
                "transform",
                str(fitted(0.0, tmp_path / "fast.safetensors")),
                str(src),
                str(clean),
                "--quiet",
            ]
        )
        == 0
    )

    out = tmp_path / "out"
    helpers = str(Path(__file__).parent)
    code = (
        f"import sys; sys.path.insert(0, {helpers!r}); import streaming_helpers; "
        "from xcm_debias.cli import main; "
        f"sys.exit(main(['transform', {str(pipeline)!r}, {str(src)!r}, {str(out)!r}, "
        "'--batch-size', '4', '--quiet']))"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.time() + 60
    while time.time() < deadline and not list(out.rglob("*_1.npy")):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = sorted(out.rglob("*.npy"))
    assert 0 < len(finished) < 2 * N_SHARDS, "the kill must land mid-run"
    for path in finished:  # whatever exists is complete: a partial write never has the final name
        assert np.load(path).shape == (ROWS, DIM)

    sys.path.insert(0, helpers)
    assert main(["transform", str(pipeline), str(src), str(out), "--quiet"]) == 0
    resumed, reference = outputs(out), outputs(clean)
    assert resumed.keys() == reference.keys()
    for name in reference:
        np.testing.assert_array_equal(resumed[name], reference[name])
    assert not list(out.rglob("*.partial")), "the rerun must finish the shard the kill interrupted"


def test_errors_are_one_line(tmp_path, capsys):
    pipeline = fitted(0.0, tmp_path / "p.safetensors")
    assert main(["transform", str(pipeline), str(tmp_path / "missing"), str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "expected a folder of .npy shards" in err[0]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="pass modality="):
        transform_folder(pipeline, tmp_path / "empty", tmp_path / "o", progress=False)
