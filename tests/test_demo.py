from __future__ import annotations

import json

import pytest

from xcm_debias.cli import main


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XCM_DEBIAS_CACHE", str(tmp_path / "cache"))
    return tmp_path


def test_demo_runs_end_to_end_on_a_reduced_world(fresh_cache, capsys):
    out = fresh_cache / "demo"
    # 8 calibration items: the fixed recipe shows the effect; the self-calibrating default keeps
    # the plain retriever at this size (see test_demo_recommended_does_no_harm_on_a_tiny_world)
    assert main(["demo", "--n-items", "40", "--config", "world_tuned", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Bias report: before vs after" in printed and "own_culture_excess@1" in printed
    for name in ("report.html", "report.json", "report.md"):
        assert (out / name).stat().st_size > 0
    assert len(list((out / "plots").glob("*.png"))) >= 4
    data = json.loads((out / "report.json").read_text())
    before, after = data["before"]["metrics"], data["after"]["metrics"]
    # the world shows the tugging before, and the world-tuned chain reduces it
    assert before["t2i/own_culture_excess@1"] > 0.5
    assert abs(after["t2i/own_culture_excess@1"]) < before["t2i/own_culture_excess@1"] / 2
    assert (fresh_cache / "cache" / "worlds").is_dir(), "the built world is cached"


def test_demo_recommended_does_no_harm_on_a_tiny_world(fresh_cache, capsys):
    out = fresh_cache / "demo_recommended"
    assert main(["demo", "--n-items", "40", "--out", str(out)]) == 0
    data = json.loads((out / "report.json").read_text())
    before, after = data["before"]["metrics"], data["after"]["metrics"]
    for key in ("t2i/recall@1", "i2t/recall@1", "i2t/language_tv@1", "t2i/own_culture_excess@1"):
        assert after[key] == pytest.approx(before[key]), key


def test_demo_rejects_an_unknown_config_in_one_line(fresh_cache, capsys):
    assert (
        main(["demo", "--n-items", "20", "--config", "nope", "--out", str(fresh_cache / "d")]) == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope" in err[0]
