"""The package and the command line's parser import no torch (what keeps ``--help`` fast:
benchmarks/cli_startup.py measures it); the public names still load on first use."""

from __future__ import annotations

import subprocess
import sys

import pytest

import xcm_debias


def python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    return result.stdout.strip()


def test_import_and_parser_and_argument_errors_do_not_import_torch():
    code = (
        "import sys, contextlib, io\n"
        "import xcm_debias\n"
        "from xcm_debias.cli import build_parser, main\n"
        "build_parser()\n"
        "with contextlib.redirect_stderr(io.StringIO()):\n"
        "    code = main(['report', '--culture-map', 'de=en'])\n"
        "print(code, 'torch' in sys.modules)\n"
    )
    assert python(code) == "2 False"


def test_public_names_and_subpackages_load_on_first_use():
    assert (
        python("import xcm_debias; print(xcm_debias.EmbeddingSet.__module__)") == "xcm_debias.data"
    )
    assert xcm_debias.processors.LanguageAlignment.__name__ == "LanguageAlignment"
    assert set(xcm_debias.__all__) <= set(dir(xcm_debias))
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        xcm_debias.nope  # noqa: B018
