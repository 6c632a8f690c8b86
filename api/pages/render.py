"""Rendering a page: its template, the security headers every ``/ui`` answer carries, and
the link to the CJK web font cut to the characters the page shows."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from contextvars import ContextVar
from typing import Any

from fastapi.responses import HTMLResponse

from breachflow.api.pages.times import VIEWER_ZONE
from breachflow.models.runtime import settings
from breachflow.rendering.environment import environment
from breachflow.rendering.fonts import CJK_START

#: No script anywhere; styles and fonts only from here; no framing, no referrer.
POLICY = (
    "default-src 'none'; style-src 'self'; font-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": POLICY,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
CJK_RANGE = "U+2E80-FFFF, U+20000-3FFFF"

#: The page being answered (path and query), for forms that come back to it.
HERE: ContextVar[str] = ContextVar("here", default="/ui/")
#: The session's token every form that changes something carries (``session.action``).
CSRF: ContextVar[str] = ContextVar("csrf", default="")

_font_texts: OrderedDict[str, str] = OrderedDict()  # digest → the characters of a page
_font_lock = threading.Lock()


def render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A page with its security headers. Chinese renders on machines without a CJK font:
    the page links the project's font, cut to the characters it shows."""
    template = environment().get_template(f"pages/{name}.html.j2")
    context.setdefault("viewer", None)
    context.setdefault("viewer_zone", VIEWER_ZONE.get())
    context.setdefault("here", HERE.get())
    context.setdefault("csrf", CSRF.get())
    context.setdefault("sso", bool(settings().oidc_issuer and settings().oidc_client_id))
    html = template.render(font=None, **context)
    text = _cjk(html)
    if text:
        html = template.render(font=f"/ui/fonts/{_remember_font(text)}.css", **context)
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def font_text(digest: str) -> str | None:
    """The characters a recently rendered page linked the font for, by its digest."""
    return _font_texts.get(digest)


def _cjk(html: str) -> str:
    """The characters of a page our CJK web font must carry."""
    return "".join(sorted({c for c in html if ord(c) >= CJK_START}))


def _remember_font(text: str) -> str:
    digest = hashlib.sha256(text.encode()).hexdigest()[:32]
    with _font_lock:
        _font_texts[digest] = text
        _font_texts.move_to_end(digest)
        while len(_font_texts) > 512:
            _font_texts.popitem(last=False)
    return digest
