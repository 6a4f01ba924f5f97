"""The CLI workflow of docs/getting_started.md runs as written (on the toy folder and a tiny
random-weight open_clip model), and the chain spec and TOML shown there are the recommended
pipeline."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from xcm_debias import Debiased, EmbeddingSet
from xcm_debias.cli import main
from xcm_debias.config_spec import load_config_file, parse_spec
from xcm_debias.configs import get_config

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "getting_started.md"


def block_after(text: str, marker: str, language: str) -> str:
    match = re.search(rf"{re.escape(marker)}.*?```{language}\n(.*?)```", text, re.S)
    assert match, f"no ```{language} block after {marker!r} in {PAGE.name}"
    return match.group(1)


def test_the_cli_workflow_runs_as_written(tmp_path, monkeypatch, capsys):
    lines = block_after(PAGE.read_text(encoding="utf-8"), "<!-- cli-workflow -->", "bash")
    commands = [shlex.split(line) for line in lines.strip().splitlines()]
    assert [c[:2] for c in commands] == [
        ["python", "examples/toy_image_folder.py"],
        ["xcm-debias", "encode"],
        ["xcm-debias", "fit"],
        ["xcm-debias", "report"],
        ["xcm-debias", "transform"],
    ]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for argv in commands:
        if argv[0] == "python":  # the example as a new user runs it, from the repository root
            done = subprocess.run(
                [sys.executable, str(ROOT / argv[1]), *argv[2:]], capture_output=True, text=True
            )
            assert done.returncode == 0, done.stderr
        else:  # the console script's entry point, in-process
            assert main(argv[1:]) == 0, capsys.readouterr().err

    toy = tmp_path / "toy"
    corpus = EmbeddingSet.load(toy / "corpus.npz")
    assert (len(corpus.images), len(corpus.texts), corpus.dim) == (27, 81, 32)
    assert corpus.texts.languages() == ["de", "en", "fr"]
    test = EmbeddingSet.load(toy / "test.npz")
    assert test.id.tolist() == corpus.split_items(test_size=0.5, seed=0)[1].id.tolist()
    pipeline = Debiased.load(toy / "pipeline.safetensors")
    assert [type(s).__name__ for s in pipeline.scorers_["i2t"]] == [
        "InvertedSoftmax",
        "GroupBalance",
    ]
    for name in ("report.html", "report.json", "comparison.json", "report.md"):
        assert (toy / "report" / name).stat().st_size > 0, name
    transformed = EmbeddingSet.load(toy / "test_debiased.npz")
    expected = pipeline.processors.transform(test)
    np.testing.assert_allclose(
        transformed.embeddings.numpy(), expected.embeddings.numpy(), atol=1e-6
    )


def test_the_spec_and_toml_shown_are_the_world_tuned_pipeline(tmp_path):
    text = PAGE.read_text(encoding="utf-8")
    spec = block_after(text, "**Chain specs.**", "text").strip()
    assert parse_spec(spec) == get_config("world_tuned")
    toml = tmp_path / "pipeline.toml"
    toml.write_text(block_after(text, "as a TOML file", "toml"), encoding="utf-8")
    assert load_config_file(toml) == get_config("world_tuned")
    # and the recommended pipeline's spec, quoted in the text, is the registered one
    assert parse_spec("guard=0.01; cross_fit=5") == get_config("recommended")
    assert "`guard=0.01; cross_fit=5`" in text


@pytest.mark.parametrize("command", ["encode", "fit", "report", "transform"])
def test_the_command_list_shows_every_workflow_command(command):
    listed = block_after(PAGE.read_text(encoding="utf-8"), "## 3. The command line", "bash")
    assert f"xcm-debias {command} " in listed
