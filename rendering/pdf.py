"""HTML to PDF with WeasyPrint, for letters and regulator reports alike.

Pages are rendered from operator-editable templates, so they may load our CJK font and
nothing else: no network, no local files (a stray ``<img src>`` must neither leak a
person's letter to a server nor pull a local file into a report).

WeasyPrint subsets the 20 MB CJK font into each PDF: with HarfBuzz-subset installed
(Debian: libharfbuzz-subset0) a page takes ~0.1 s, with its fontTools fallback ~2.5 s.
"""

from __future__ import annotations

from weasyprint import CSS, HTML, Document
from weasyprint.text.fonts import FontConfiguration
from weasyprint.urls import URLFetcher, URLFetcherResponse

from breachflow.rendering.fonts import CJK_FONT

#: The templates' "Noto Sans CJK SC" picks the Simplified Chinese face of our font. The
#: @font-face has a name of its own on purpose: it is given to every face of the
#: collection, and under "Noto Sans CJK SC" the Japanese face, which comes first, would win.
FONT_FACE = f'@font-face {{ font-family: "Breachflow CJK"; src: url("{CJK_FONT.as_uri()}"); }}'


class FontOnlyFetcher(URLFetcher):
    """Loads our font and refuses every other URL."""

    def fetch(self, url: str, headers: dict[str, str] | None = None) -> URLFetcherResponse:
        if url == CJK_FONT.as_uri():
            return URLFetcherResponse(url, CJK_FONT.read_bytes())
        raise ValueError("rendered pages do not load external resources")


class PdfRenderer:
    """WeasyPrint set up once: the font is registered once, not per page."""

    def __init__(self) -> None:
        self.fetcher = FontOnlyFetcher()
        self.fonts = FontConfiguration()
        self.font_face = CSS(string=FONT_FACE, font_config=self.fonts, url_fetcher=self.fetcher)

    def document(self, html: str, *extra_css: str) -> Document:
        stylesheets = [self.font_face, *(CSS(string=css) for css in extra_css)]
        return HTML(string=html, url_fetcher=self.fetcher).render(
            stylesheets=stylesheets, font_config=self.fonts
        )

    def pdf(self, html: str, *, title: str, author: str) -> bytes:
        document = self.document(html)
        document.metadata.title = title
        document.metadata.authors = [author]
        return document.write_pdf()
