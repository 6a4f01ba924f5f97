from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from streaming_helpers import DIM, N_SHARDS, ROWS, CenterWithDelay, fitted, outputs, write_folder

from xcm_debias import EmbeddingSet
from xcm_debias.cli import main
from xcm_debias.streaming import transform_folder


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
