"""Single sign-on for people: log in to the pages with the organisation's OpenID Connect
provider (``BREACH_OIDC_ISSUER``), through authlib. API keys stay for machines.

The authorization code flow with PKCE and a nonce: authlib keeps the state in a short-lived
signed cookie (``breach_sso``, for the round trip only, ``SameSite=Lax`` so the provider's
redirect back carries it) and validates the ID token (signature from the provider's JWKS,
issuer, audience, expiry, nonce). The person's role comes from a claim
(``BREACH_OIDC_ROLES_CLAIM``, mapped by ``BREACH_OIDC_ROLE_MAP``); nobody gets a role the
provider did not give. Each person is an ``sso:NAME`` key row whose secret nobody ever
holds: the session is made from it as from any key, its role follows the provider at each
login, and ``breach keys revoke sso:NAME`` ends it. On the timeline they are ``sso:NAME``.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from authlib.integrations.starlette_client import OAuth, OAuthError
from authlib.integrations.starlette_client.apps import StarletteOAuth2App
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import escape
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.middleware.sessions import SessionMiddleware

from breachflow.api.auth import READERS, SSO_PREFIX
from breachflow.api.pages.render import HEADERS, render
from breachflow.api.pages.session import (
    login_cookie,
    safe_next,
    session_cookie_answer,
    session_secret,
)
from breachflow.models.apikey import ApiKey, Role, create_key
from breachflow.models.base import utcnow
from breachflow.models.runtime import database, settings, vault
from breachflow.models.settings import Settings

router = APIRouter()

STATE_COOKIE = "breach_sso"
#: When a person holds several roles, the one they act with.
PRECEDENCE = (Role.ADMIN, Role.RESPONDER, Role.ONCALL, Role.COMPLIANCE)


@cache
def provider() -> StarletteOAuth2App | None:
    """The configured provider, or None: single sign-on is off."""
    config = settings()
    if not (config.oidc_issuer and config.oidc_client_id):
        return None
    oauth = OAuth()
    secret = config.oidc_client_secret.get_secret_value() if config.oidc_client_secret else None
    oauth.register(
        "sso",
        client_id=config.oidc_client_id,
        client_secret=secret,
        server_metadata_url=config.oidc_issuer.rstrip("/") + "/.well-known/openid-configuration",
        client_kwargs={"scope": "openid profile email", "code_challenge_method": "S256"},
    )
    client: StarletteOAuth2App = oauth.create_client("sso")
    return client


def install(app: FastAPI) -> None:
    """The state cookie of the round trip to the provider, when single sign-on is on: signed
    with a key derived from the data key, for ``/ui/login`` only, 10 minutes."""
    if provider() is None:
        return
    app.add_middleware(
        SessionMiddleware,
        secret_key=vault().subkey("sso state").hex(),
        session_cookie=STATE_COOKIE,
        max_age=600,
        path="/ui/login",
        same_site="lax",
        https_only=settings().public_url.startswith("https://"),
    )


@router.get("/login/sso")
async def start(request: Request, next: str | None = None) -> Response:
    """To the provider's login, coming back to ``next``."""
    client = provider()
    if client is None:
        return render("login", 404, next="/ui/", error="Single sign-on is not configured here.")
    request.session["next"] = safe_next(next)
    callback = settings().public_url.rstrip("/") + "/ui/login/sso/callback"
    answer: Response = await client.authorize_redirect(request, callback)
    return answer


@router.get("/login/sso/callback")
async def callback(request: Request) -> Response:
    """Back from the provider: the ID token checked, the role found, the session made."""
    client = provider()
    target = safe_next(request.session.pop("next", None))
    if client is None:
        return render("login", 404, next=target, error="Single sign-on is not configured here.")
    try:
        token = await client.authorize_access_token(request)
    except OAuthError as exc:
        return render("login", 403, next=target, error=f"The sign-in was refused: {exc.error}.")
    claims: dict[str, Any] = dict(token.get("userinfo") or {})
    config = settings()
    name = str(claims.get(config.oidc_name_claim) or claims.get("sub") or "").strip()
    role = role_of(claims, config)
    cookie, error = await run_in_threadpool(_session_for, name, role)
    if cookie is None:
        return render("login", 403, next=target, error=error)
    # A page that moves on by itself: the provider's redirect was a cross-site navigation,
    # on which a SameSite=Strict cookie is not sent; the next one, from our page, is ours.
    shown = escape(target)  # safe_next keeps it a path of ours; escaped all the same
    page = HTMLResponse(
        f'<!doctype html><meta http-equiv="refresh" content="0;url={shown}">'
        f'<a href="{shown}">Continue</a>',
        headers=HEADERS,
    )
    return session_cookie_answer(page, cookie)


def role_of(claims: dict[str, Any], config: Settings) -> Role | None:
    """The role the provider's claim gives, through the map; None when it gives none."""
    found = claims.get(config.oidc_roles_claim)
    values = [found] if isinstance(found, str) else found if isinstance(found, list) else []
    roles = set()
    for value in map(str, values):
        mapped = config.oidc_role_map.get(value, value)
        if mapped in {str(r) for r in READERS}:
            roles.add(Role(mapped))
    return next((role for role in PRECEDENCE if role in roles), None)


def _session_for(name: str, role: Role | None) -> tuple[str | None, str | None]:
    """The person's ``sso:`` key (made, or its role brought up to date), and a session
    cookie made from it; or why not."""
    if not name or len(name) > 90:
        return None, "The provider did not say who you are (no usable name or subject)."
    key_name = f"{SSO_PREFIX}{name}"
    secret = session_secret()  # before the transaction: its first use opens one of its own
    with database().unit_of_work() as session:
        key = session.scalar(select(ApiKey).where(ApiKey.name == key_name))
        if role is None:
            if key is not None and key.revoked_at is None:
                key.sessions_ended_at = int(utcnow().timestamp() * 1000)  # and end theirs
            return None, "The provider gives you no Breachflow role: ask for one to be granted."
        if key is None:
            create_key(session, key_name, role, "sso")
            key = session.scalars(select(ApiKey).where(ApiKey.name == key_name)).one()
        elif key.revoked_at is not None:
            return None, f"{key_name} was revoked here: an admin must allow it again."
        key.role = role
        return login_cookie(key, secret), None
