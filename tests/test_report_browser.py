"""report.html in a real browser: headless Chromium renders it to a screenshot of the asked
size, logging no console message (the page has no script; any message is a fault). Skipped
when no Chromium is installed (``apt-get install chromium`` on Debian)."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from report_fixtures import after_report, before_report
from test_report_selection import FakeSelection

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")
WIDTH, HEIGHT = 1280, 2000


def _browser() -> str:
    found = next((path for path in map(shutil.which, BROWSERS) if path), None)
    if found is None:
        pytest.skip(f"no headless browser installed (looked for {', '.join(BROWSERS)})")
    return found


def screenshot(browser: str, page: Path, out: Path) -> list[str]:
    """Render ``page`` to ``out`` (PNG); returns the browser's console messages."""
    result = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
            f"--user-data-dir={out.parent / 'profile'}",
            f"--window-size={WIDTH},{HEIGHT}",
            f"--screenshot={out}",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.is_file(), result.stderr[-2000:]
    return [line for line in result.stderr.splitlines() if ":CONSOLE" in line]


def test_report_page_renders_without_console_messages(tmp_path):
    browser = _browser()
    after = dataclasses.replace(after_report(), provenance={"selection": FakeSelection().to_dict()})
    page = tmp_path / "report.html"
    before_report().compare(after).to_html(page)
    shot = tmp_path / "report.png"
    assert screenshot(browser, page, shot) == []
    with Image.open(shot) as image:
        assert image.size == (WIDTH, HEIGHT)
        pixels = np.asarray(image.convert("L"), dtype=float)
    # drawn, not blank: dark text and mid-grey rules on the white page
    assert (pixels < 100).mean() > 0.005 and pixels.std() > 20


def test_the_console_check_sees_a_script_error(tmp_path):
    browser = _browser()
    page = tmp_path / "bad.html"
    page.write_text("<!DOCTYPE html><p>x</p><script>console.error('boom')</script>")
    messages = screenshot(browser, page, tmp_path / "bad.png")
    assert len(messages) == 1 and '"boom"' in messages[0]
