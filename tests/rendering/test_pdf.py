"""PDFs with the CJK font cut to what they print: every character shown, the font cut once
per batch, and small enough that WeasyPrint's own subsetting (fontTools, where Debian's
HarfBuzz-subset is missing) costs milliseconds instead of seconds a page."""

from __future__ import annotations

import io

from fontTools.ttLib import TTFont
from pypdf import PdfReader

from breachflow.rendering.pdf import PdfRenderer

PAGE = (
    "<html><body style=\"font-family: 'Noto Sans CJK SC', sans-serif\">"
    "<p>尊敬的{name}：我们发现了一起涉及您个人信息的安全事件。</p><p>Dear {name}</p></body></html>"
)


def _embedded_font_bytes(pdf: bytes) -> int:
    total = 0
    for page in PdfReader(io.BytesIO(pdf)).pages:
        for font in page["/Resources"]["/Font"].values():
            descriptor = font.get_object()
            for descendant in descriptor.get("/DescendantFonts", [descriptor]):
                fd = descendant.get_object().get("/FontDescriptor")
                if fd is None:
                    continue
                for key in ("/FontFile", "/FontFile2", "/FontFile3"):
                    if key in fd.get_object():
                        total += len(fd.get_object()[key].get_object().get_data())
    return total


def test_a_page_shows_every_character_and_embeds_a_small_font() -> None:
    pdf = PdfRenderer().pdf(PAGE.format(name="王小明"), title="t", author="a")
    text = PdfReader(io.BytesIO(pdf)).pages[0].extract_text()
    assert "尊敬的王小明" in text and "安全事件" in text and "Dear 王小明" in text
    # the whole Simplified Chinese face is 65,535 glyphs and megabytes; a page needs ~40
    assert 0 < _embedded_font_bytes(pdf) < 60_000


def test_a_batch_cuts_the_font_once_and_a_late_character_still_prints() -> None:
    pages = [PAGE.format(name=name) for name in ("王小明", "李华", "陈静")]
    renderer = PdfRenderer(*pages)
    cut = renderer.fonts
    for page in pages:
        renderer.pdf(page, title="t", author="a")
    assert renderer.fonts is cut  # every page of the batch was covered up front

    late = PAGE.format(name="龘靐")  # rare characters no page of the batch had
    pdf = renderer.pdf(late, title="t", author="a")
    assert renderer.fonts is not cut
    cmap = TTFont(io.BytesIO(renderer.fetcher.font)).getBestCmap()
    assert ord("龘") in cmap and ord("靐") in cmap  # drawn with our font, not a fallback box
    assert "尊敬的龘靐" in PdfReader(io.BytesIO(pdf)).pages[0].extract_text()
