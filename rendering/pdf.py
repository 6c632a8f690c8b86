"""HTML to PDF with WeasyPrint, for letters, regulator reports and exports alike.

Pages are rendered from operator-editable templates, so they may load our CJK font and
nothing else: no network, no local files (a stray ``<img src>`` must neither leak a
person's letter to a server nor pull a local file into a report).

A renderer carries the CJK font cut to the characters it has been asked to print
(``fonts.print_font``): give it a whole batch's pages up front (``cover``) and the font is
cut once per batch; a page with a character not yet covered re-cuts it (0.2-0.4 s).
Measured without HarfBuzz-subset: a Chinese letter 5 s with the whole font, 0.1 s cut.

WeasyPrint's warnings (that it subsets with fontTools, not HarfBuzz) are about a set-up
this module already handles; they go to the library log, not the user's terminal
(``models.runtime.route_library_logs``).
"""

from __future__ import annotations

import hashlib

from weasyprint import CSS, HTML, Document
from weasyprint.text.fonts import FontConfiguration
from weasyprint.urls import URLFetcher, URLFetcherResponse

from breachflow.models.runtime import route_library_logs
from breachflow.rendering.fonts import print_font

route_library_logs()

#: The templates ask for "Noto Sans CJK SC", the cut face's own name. The @font-face gives
#: it a second name of its own, under which nothing else on the machine can be found.
FONT_FAMILY = "Breachflow CJK"
_FONT_URL = "https://fonts.breachflow.invalid/cjk-{digest}.otf"


class FontOnlyFetcher(URLFetcher):
    """Loads our font and refuses every other URL."""

    def __init__(self, url: str, font: bytes) -> None:
        super().__init__()
        self.url = url
        self.font = font

    def fetch(self, url: str, headers: dict[str, str] | None = None) -> URLFetcherResponse:
        if url == self.url:
            return URLFetcherResponse(url, self.font)
        raise ValueError("rendered pages do not load external resources")


class PdfRenderer:
    """WeasyPrint set up once for many pages: the font is cut and registered once."""

    def __init__(self, *covering: str) -> None:
        self._cut(frozenset().union(*covering))

    def cover(self, *texts: str) -> None:
        """Make the font hold every character of ``texts``; re-cut only for a new one."""
        wanted = self.characters.union(*texts)
        if wanted != self.characters:
            self._cut(wanted)

    def _cut(self, characters: frozenset[str]) -> None:
        self.characters = characters
        font = print_font(characters)
        url = _FONT_URL.format(digest=hashlib.sha256(font).hexdigest()[:16])
        self.fetcher = FontOnlyFetcher(url, font)
        self.fonts = FontConfiguration()
        self.font_face = CSS(
            string=f'@font-face {{ font-family: "{FONT_FAMILY}"; src: url("{url}"); }}',
            font_config=self.fonts,
            url_fetcher=self.fetcher,
        )

    def document(self, html: str, *extra_css: str) -> Document:
        self.cover(html, *extra_css)
        stylesheets = [self.font_face, *(CSS(string=css) for css in extra_css)]
        return HTML(string=html, url_fetcher=self.fetcher).render(
            stylesheets=stylesheets, font_config=self.fonts
        )

    def pdf(self, html: str, *, title: str, author: str) -> bytes:
        document = self.document(html)
        document.metadata.title = title
        document.metadata.authors = [author]
        return document.write_pdf()
