"""The pages' stylesheet and their CJK web font.

Files, not inline styles, so the policy needs no ``'unsafe-inline'``. A font is cut to the
characters of one page someone was shown, so it is served to signed-in viewers only.
"""

from __future__ import annotations

from functools import lru_cache

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from breachflow.api.pages.render import CJK_RANGE, HEADERS, font_text
from breachflow.api.pages.session import viewer
from breachflow.rendering.environment import TEMPLATES
from breachflow.rendering.fonts import WEB_FONT_FAMILY, web_font

router = APIRouter()

CSS = TEMPLATES / "pages" / "pages.css"
#: A font belongs to the pages of whoever was shown them: kept by their browser, no proxy.
PRIVATE_CACHE = {"Cache-Control": "private, max-age=86400"}


@router.get("/static/pages.css")
async def stylesheet() -> Response:
    return Response(
        CSS.read_bytes(), media_type="text/css", headers=HEADERS | {"Cache-Control": "max-age=300"}
    )


@router.get("/fonts/{digest}.css")
async def font_face(request: Request, digest: str) -> Response:
    """The page's ``@font-face``: a file, so the policy needs no inline style."""
    if font_text(digest) is None or await viewer(request) is None:
        return Response(status_code=404, headers=HEADERS)
    css = (
        f'@font-face {{ font-family: "{WEB_FONT_FAMILY}"; font-display: swap;'
        f" unicode-range: {CJK_RANGE};"
        f' src: url("/ui/fonts/{digest}.woff2") format("woff2"); }}\n'
    )
    return Response(css, media_type="text/css", headers=HEADERS | PRIVATE_CACHE)


@router.get("/fonts/{digest}.woff2")
async def font_file(request: Request, digest: str) -> Response:
    """The CJK face cut to one page's characters (whose page it is: signed-in only)."""
    text = font_text(digest)
    if text is None or await viewer(request) is None:
        return Response(status_code=404, headers=HEADERS)
    data = await run_in_threadpool(_font, text)
    return Response(data, media_type="font/woff2", headers=HEADERS | PRIVATE_CACHE)


@lru_cache(maxsize=64)
def _font(text: str) -> bytes:
    """Cutting a font takes a while; a page reloaded, or its neighbours, reuse the cut."""
    return web_font(text)
