"""HTML page: self-contained (no external src/href, no script), plots embedded as PNGs that
decode, the expected sections and numbers present. Parsed with the stdlib html.parser."""

from __future__ import annotations

import base64
import io
from html.parser import HTMLParser

import pytest
from PIL import Image
from report_fixtures import after_report, before_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.links: list[tuple[str, str, str]] = []  # (tag, attribute, value)
        self.images: list[str] = []
        self.headings: dict[str, list[str]] = {"h1": [], "h2": [], "h3": []}
        self.cells: list[tuple[str, str]] = []  # (class, text) of td
        self.styles: list[str] = []
        self._open: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attrs = dict(attrs)
        for name in ("src", "href", "srcset", "poster", "data", "action"):
            if name in attrs:
                self.links.append((tag, name, attrs[name] or ""))
        if tag == "img":
            self.images.append(attrs.get("src") or "")
        if tag in ("h1", "h2", "h3", "td", "style"):
            self._open.append((tag, attrs.get("class") or ""))
            self._text = ""

    def handle_data(self, data):
        if self._open:
            self._text += data

    def handle_endtag(self, tag):
        if self._open and self._open[-1][0] == tag:
            _, cls = self._open.pop()
            if tag == "td":
                self.cells.append((cls, self._text))
            elif tag == "style":
                self.styles.append(self._text)
            else:
                self.headings[tag].append(self._text)


def _parse(html: str) -> PageParser:
    parser = PageParser()
    parser.feed(html)
    parser.close()
    return parser


@pytest.fixture(scope="module")
def comparison_page(tmp_path_factory) -> tuple[str, PageParser]:
    path = tmp_path_factory.mktemp("html") / "report.html"
    html = before_report().compare(after_report()).to_html(path)
    assert path.read_text(encoding="utf-8") == html
    return html, _parse(html)


def test_page_has_no_external_resource_and_no_script(comparison_page):
    html, page = comparison_page
    for tag, attribute, value in page.links:
        assert value.startswith(("#", "data:image/png;base64,")), (tag, attribute, value)
    assert not {"script", "link", "iframe", "object", "embed"} & set(page.tags)
    assert all("url(" not in css and "@import" not in css for css in page.styles)
    assert "http://" not in html and "https://" not in html


def test_plots_are_embedded_pngs_that_decode(comparison_page):
    _, page = comparison_page
    assert len(page.images) == 4
    for src in page.images:
        data = base64.b64decode(src.removeprefix("data:image/png;base64,"), validate=True)
        assert data.startswith(PNG_SIGNATURE)
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == "PNG" and image.width > 300 and image.height > 200


def test_page_has_the_sections_and_numbers(comparison_page):
    _, page = comparison_page
    assert page.headings["h1"] == ["Bias report: before vs after"]
    assert page.headings["h2"] == [
        "Headline",
        "Retrieval",
        "Language prevalence (image→text)",
        "Cultural tugging (text→image)",
        "Consistency",
        "Hubness and geometry",
        "Metrics in one report only",
        "Configuration",
        "Headline metrics: definitions",
    ]
    assert "text→image, per query language" in page.headings["h3"]
    texts = [text for _, text in page.cells]
    assert "0.417" in texts and "0.083" in texts and "-0.333" in texts  # language TV
    assert ("better", "1.000 → 0.250 ✓") in page.cells  # own culture, de
    assert ("worse", "worse ✗") in page.cells
    assert ("own", "0.750*") in page.cells  # heat map, en -> en before


def test_single_report_page(tmp_path):
    report = before_report()
    html = report.to_html()
    page = _parse(html)
    assert page.headings["h1"] == ["Bias report"]
    assert len(page.images) == 4
    assert ("own", "1.000*") in page.cells
    assert all(value.startswith(("#", "data:image/png;base64,")) for _, _, value in page.links)


def test_a_figure_without_data_is_reported_not_drawn():
    report = before_report()
    report.metrics = {k: v for k, v in report.metrics.items() if "culture_share" not in k}
    html = report.to_html()
    assert len(_parse(html).images) == 3
    assert "Figure culture_heatmap: not drawn: the report has no t2i/culture_share@1" in html
