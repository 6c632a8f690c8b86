"""The CJK font Breachflow brings with it, for PDFs and for the public web pages.

The machine, and many a reader's, has no CJK font; the project depends on one
(``noto-cjk-sans-otc``): an OpenType collection whose faces keep their own family names.
"""

from __future__ import annotations

import io
from pathlib import Path

import noto_cjk_sans_otc
from fontTools import subset

CJK_FONT = Path(noto_cjk_sans_otc.__file__).parent / "NotoSansCJK-Regular.ttc"
SIMPLIFIED_CHINESE_FACE = 2  # JP, KR, SC, TC, HK, then the monospaced faces
WEB_FONT_FAMILY = "Breachflow CJK"


def web_font(text: str) -> bytes:
    """The Simplified Chinese face cut down to the characters of ``text``, as WOFF2.

    The whole collection is 20 MB; the few hundred characters of an announcement make a
    font of about 100 KB, so the public pages render in Chinese on any reader's machine.
    """
    options = subset.Options()
    options.flavor = "woff2"
    options.font_number = SIMPLIFIED_CHINESE_FACE
    options.layout_features = ["*"]
    font = subset.load_font(str(CJK_FONT), options)
    subsetter = subset.Subsetter(options)
    subsetter.populate(text=text)
    subsetter.subset(font)
    out = io.BytesIO()
    subset.save_font(font, out, options)
    return out.getvalue()
