"""Who is looking: logging in with an API key, the session cookie, and the guard every page
goes through.

The browser holds a session cookie, never the key: ``<key prefix>.<expiry>.<HMAC>``, signed
with a key derived from the data key and bound to the API key's stored digest. Every
request looks the key up again, so revoking it (``breach keys revoke``) ends its sessions at
once, and a restart or a second ``breach serve`` accepts the same cookie. The cookie is
HttpOnly, SameSite=Strict and Secure when ``BREACH_PUBLIC_URL`` is https. A page that
changes something (an export, opening a person's record: both go on the timeline) is a POST
whose form carries the session's CSRF token (``action``), never a GET.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException

from breachflow.api.auth import READERS, Caller
from breachflow.api.forms import first, form_fields
from breachflow.api.pages.render import CSRF, HEADERS, HERE, render
from breachflow.api.pages.times import VIEWER_ZONE, viewer_zone
from breachflow.models.apikey import ApiKey, Role, authenticate, live_key
from breachflow.models.errors import BreachError, Forbidden, NotFound
from breachflow.models.runtime import database, settings, vault

router = APIRouter()

COOKIE = "breach_session"
ZONE_COOKIE = "breach_tz"  # the zone the viewer reads times in: a preference, not a secret
SESSION_SECONDS = 8 * 3600  # a working shift; log in again after


# --- the guard ------------------------------------------------------------------------


async def page(request: Request, build: Callable[[Caller], Response]) -> Response:
    """Every page: a session or the login page; our errors as a page, not JSON."""
    who = await viewer(request)
    if who is None:
        return to_login(request)
    VIEWER_ZONE.set(viewer_zone(request.cookies.get(ZONE_COOKIE)))
    HERE.set(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
    CSRF.set(await run_in_threadpool(csrf_token, request.cookies.get(COOKIE) or ""))
    try:
        return await run_in_threadpool(build, who)
    except BreachError as exc:
        status = 404 if isinstance(exc, NotFound) else 403 if isinstance(exc, Forbidden) else 422
        return render("error", status, viewer=who, message=str(exc))


async def action(
    request: Request, build: Callable[[Caller, dict[str, list[str]]], Response], most: int = 5
) -> Response:
    """A form that changes something: posted from our own page, with the session's CSRF
    token; then ``build`` with the form's fields, as any page."""
    form = await form_fields(request, most=most)
    return await _guarded(request, form, lambda who: build(who, form or {}))


async def upload(
    request: Request,
    build: Callable[[Caller, dict[str, list[str]], UploadFile | None], Response],
    most: int = 5,
) -> Response:
    """As :func:`action`, for a form that may carry one file (``multipart/form-data``,
    e.g. a runbook step's evidence; its size is bounded by :mod:`api.limits`)."""
    try:
        parsed = await request.form(max_files=1, max_fields=most)
    except (MultiPartException, ValueError, KeyError):
        return await _guarded(request, None, lambda who: Response())
    fields = {name: [v] for name, v in parsed.multi_items() if isinstance(v, str)}
    files = [v for _, v in parsed.multi_items() if isinstance(v, UploadFile) and v.filename]
    chosen = files[0] if files else None
    return await _guarded(request, fields, lambda who: build(who, fields, chosen))


async def _guarded(
    request: Request, form: dict[str, list[str]] | None, then: Callable[[Caller], Response]
) -> Response:
    """The form's token checked against the session's, from a page of this site."""
    cookie = request.cookies.get(COOKIE) or ""
    token = first(form or {}, "csrf", 100)
    expected = await run_in_threadpool(csrf_token, cookie)
    if form is None or not _same_origin(request) or not hmac.compare_digest(token, expected):
        who = await viewer(request)
        if who is None:
            return to_login(request)
        message = "This form did not come from this site's page: open the page and try again."
        return render("error", 403, viewer=who, message=message)
    return await page(request, then)


def csrf_token(cookie: str) -> str:
    """The session's form token: bound to its cookie, which a page on another site can
    neither read nor guess (HttpOnly), so it cannot post a form of ours."""
    message = b"csrf." + cookie.encode("utf-8", "replace")
    return hmac.new(session_secret(), message, hashlib.sha256).hexdigest()


async def viewer(request: Request) -> Caller | None:
    """Whose session the request carries, if any."""
    return await run_in_threadpool(_session_caller, request.cookies.get(COOKIE))


def to_login(request: Request) -> RedirectResponse:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/ui/login?next={quote(here, safe='')}", 303, headers=HEADERS)


# --- logging in and out -----------------------------------------------------------------


@router.get("/login")
async def login_page(next: str | None = None) -> Response:
    return render("login", next=safe_next(next), error=None)


@router.post("/login")
async def login(request: Request) -> Response:
    form = await form_fields(request, most=5)
    if form is None:
        return render("login", 400, next="/ui/", error="This is not the login form's post.")
    token = first(form, "key", 200)
    nexts = form.get("next")
    target = safe_next(nexts[0] if nexts else None)
    if not _same_origin(request):
        return render("login", 403, next=target, error="Log in from this site's own page.")
    cookie, error = await run_in_threadpool(_login_with, token)
    if cookie is None:
        return render("login", 401 if "unknown" in (error or "") else 403, next=target, error=error)
    return session_cookie_answer(RedirectResponse(target, 303, headers=HEADERS), cookie)


def session_cookie_answer(answer: Response, cookie: str) -> Response:
    """``answer`` with the session cookie set: HttpOnly, SameSite=Strict, Secure on https."""
    answer.set_cookie(
        COOKIE,
        cookie,
        max_age=SESSION_SECONDS,
        path="/ui",
        httponly=True,
        samesite="strict",
        secure=settings().public_url.startswith("https://"),
    )
    return answer


@router.post("/timezone")
async def choose_timezone(request: Request) -> Response:
    """Read the pages' times in a zone of one's own (UTC stays beside them); empty: UTC."""
    form = await form_fields(request, most=5) or {}  # not our form: back to UTC
    zone = first(form, "zone", 64).strip()
    nexts = form.get("next")
    answer = RedirectResponse(safe_next(nexts[0] if nexts else None), 303, headers=HEADERS)
    if not _same_origin(request):
        return answer
    chosen = viewer_zone(zone)
    if chosen:
        answer.set_cookie(ZONE_COOKIE, chosen, max_age=365 * 86400, path="/ui", samesite="strict")
    else:
        answer.delete_cookie(ZONE_COOKIE, path="/ui", samesite="strict")
    return answer


@router.post("/logout")
async def logout(request: Request) -> Response:
    """Ends the session on the server too: a copy of the cookie no longer opens a page."""
    answer = RedirectResponse("/ui/login", 303, headers=HEADERS)
    if _same_origin(request):
        await run_in_threadpool(_end_sessions, request.cookies.get(COOKIE))
        answer.delete_cookie(COOKIE, path="/ui", httponly=True, samesite="strict")
    return answer


def safe_next(target: str | None) -> str:
    """Only back to one of our pages: never an open redirect."""
    if target and target.startswith("/ui/") and "//" not in target and "\\" not in target:
        return target
    return "/ui/"


def _same_origin(request: Request) -> bool:
    """A form posted from another site is refused (a login forced on someone else).

    Browsers say where a request comes from in ``Sec-Fetch-Site``; ``Origin`` is ``null``
    under our no-referrer policy, so it only counts for clients without fetch metadata.
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return True
    return origin.split("://", 1)[-1] == request.headers.get("host")


# --- the cookie -----------------------------------------------------------------------


def _login_with(token: str) -> tuple[str | None, str | None]:
    """(cookie value, None) for a key that may read, else (None, what is wrong)."""
    secret = session_secret()
    with database().unit_of_work() as session:
        key = authenticate(session, token.strip())
        if key is None:
            return None, "That key is unknown or revoked."
        if Role(key.role) not in READERS:
            return None, f"A {key.role} key cannot open these pages."
        return login_cookie(key, secret), None


def login_cookie(key: ApiKey, secret: bytes) -> str:
    """A new session's cookie for ``key`` (an API key, or a person's ``sso:`` key), signed
    with ``secret`` (:func:`session_secret`)."""
    expires = _now_ms() + SESSION_SECONDS * 1000  # milliseconds: see _issued
    return f"{key.prefix}.{expires}.{_mac(secret, key.prefix, expires, key.secret_sha256)}"


def _session_caller(cookie: str | None) -> Caller | None:
    """The live key a cookie was made from, if it is genuine, not expired and not logged
    out."""
    secret = session_secret()
    with database().unit_of_work() as session:
        key = _session_key_of(session, cookie, secret)
        return Caller(key.name, Role(key.role)) if key is not None else None


def _end_sessions(cookie: str | None) -> None:
    """Logging out: this session, and any of the key's issued before it, end here."""
    secret = session_secret()
    with database().unit_of_work() as session:
        key = _session_key_of(session, cookie, secret)
        if key is not None:
            issued = _issued(cookie or "")
            key.sessions_ended_at = max(key.sessions_ended_at or 0, issued)


def _session_key_of(session: Session, cookie: str | None, secret: bytes) -> ApiKey | None:
    """The key behind a genuine, unexpired session cookie not logged out, else None."""
    prefix, _, rest = (cookie or "").partition(".")
    expires, _, mac = rest.partition(".")
    # Unix milliseconds: ASCII digits, 15 at most (int() of 5,000 digits raises).
    well_formed = expires.isascii() and expires.isdigit() and len(expires) <= 15
    if not (prefix and well_formed and mac) or int(expires) < _now_ms():
        return None
    key = live_key(session, prefix)
    if key is None or Role(key.role) not in READERS:
        return None
    if not hmac.compare_digest(mac, _mac(secret, prefix, int(expires), key.secret_sha256)):
        return None
    if key.sessions_ended_at is not None and _issued(cookie or "") <= key.sessions_ended_at:
        return None  # logged out
    return key


def _issued(cookie: str) -> int:
    """When a (well-formed) session cookie was issued, in Unix milliseconds: its expiry less
    the session's life. Milliseconds, so that logging in again right after logging out
    makes a session issued after the one that ended."""
    return int(cookie.split(".")[1]) - SESSION_SECONDS * 1000


def _now_ms() -> int:
    return int(time.time() * 1000)


def session_secret() -> bytes:
    """Derived from the data key, so every server sharing the database accepts a session.
    Taken before a transaction opens: the first use checks the key in one of its own."""
    return vault().subkey("ui sessions")


def _mac(secret: bytes, prefix: str, expires: int, digest: str) -> str:
    message = f"{prefix}.{expires}.{digest}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()
