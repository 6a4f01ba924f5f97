"""docs/api.md is what docs/make_api.py generates from the docstrings now, and it covers the
public API (every ``__all__`` name of the public modules)."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REGENERATE = "python docs/make_api.py"


@pytest.fixture(scope="module")
def make_api():
    spec = importlib.util.spec_from_file_location("make_api", ROOT / "docs" / "make_api.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_api_page_equals_the_generated_one(make_api):
    committed = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    generated = make_api.render()
    if committed != generated:
        old, new = committed.splitlines(), generated.splitlines()
        first = next(
            (i for i, (a, b) in enumerate(zip(old, new, strict=False)) if a != b),
            min(len(old), len(new)),
        )
        pytest.fail(
            f"docs/api.md is stale (first difference at line {first + 1}); regenerate it with: "
            f"{REGENERATE}"
        )


@pytest.mark.parametrize(
    "module_name",
    [
        "xcm_debias",
        "xcm_debias.processors",
        "xcm_debias.scoring",
        "xcm_debias.metrics",
        "xcm_debias.encoders",
        "xcm_debias.worlds",
        "xcm_debias.datasets",
    ],
)
def test_every_public_name_has_an_entry(make_api, module_name):
    page = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    module = importlib.import_module(module_name)
    names = [n for n in module.__all__ if not n.startswith("__")]
    missing = [n for n in names if f'<a id="{make_api._anchor(module_name, n)}">' not in page]
    assert not missing, f"{module_name}: {missing} not in docs/api.md; run {REGENERATE}"


def test_signatures_and_docstrings_are_rendered(make_api):
    page = make_api.render()
    assert "### `parse_spec()`" in page
    assert "parse_spec(spec: str) -> dict[str, Any]" in page
    assert "LanguageProjection(\n    method: str = 'leace'," in page
    assert "method `fit(calibration: EmbeddingSet) -> Debiased`" in page
