"""The CJK font Breachflow brings with it, for PDFs and for the public web pages.

The machine, and many a reader's, has no CJK font; the project depends on one
(``noto-cjk-sans-otc``): an OpenType collection whose faces keep their own family names.

It is never used whole. Its Simplified Chinese face has 65,535 glyphs, and WeasyPrint,
without HarfBuzz-subset (Debian's libharfbuzz-subset0, absent from a new machine), subsets
embedded fonts with fontTools keeping every glyph id: 5 s a page. Cut first to the
characters a document (or a batch of letters) prints, the face has a few hundred glyphs
and WeasyPrint's own pass costs milliseconds. Pages get the same cut as a WOFF2 web font.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import noto_cjk_sans_otc
from fontTools import subset

CJK_FONT = Path(noto_cjk_sans_otc.__file__).parent / "NotoSansCJK-Regular.ttc"
SIMPLIFIED_CHINESE_FACE = 2  # JP, KR, SC, TC, HK, then the monospaced faces
WEB_FONT_FAMILY = "Breachflow CJK"
#: CJK radicals and punctuation onwards (kana, ideographs, fullwidth forms, supplementary
#: ideographs): the characters a reader's machine may lack, which the web font carries.
CJK_START = 0x2E80


def web_font(text: str) -> bytes:
    """The Simplified Chinese face cut down to the characters of ``text``, as WOFF2.

    The whole collection is 20 MB; the few hundred characters of an announcement make a
    font of about 100 KB, so the public pages render in Chinese on any reader's machine.
    """
    return _cut(frozenset(text), "woff2")


def print_font(characters: Iterable[str]) -> bytes:
    """The Simplified Chinese face cut down to ``characters``, as OpenType for PDFs.

    Its family name stays "Noto Sans CJK SC", the name our templates ask for.
    """
    return _cut(frozenset("".join(characters)), None)


@lru_cache(maxsize=16)
def _cut(characters: frozenset[str], flavor: str | None) -> bytes:
    options = subset.Options()
    options.flavor = flavor
    options.font_number = SIMPLIFIED_CHINESE_FACE
    options.layout_features = ["*"]
    options.notdef_outline = True  # a character the font lacks shows as a box, not nothing
    font = subset.load_font(str(CJK_FONT), options)
    subsetter = subset.Subsetter(options)
    subsetter.populate(text="".join(sorted(characters)))
    subsetter.subset(font)
    out = io.BytesIO()
    subset.save_font(font, out, options)
    return out.getvalue()
