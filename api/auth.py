"""Who is calling: every API route names the roles allowed to call it.

``Authorization: Bearer bf_<prefix>_<secret>`` (``breach keys create``). No key or a
wrong one: 401; a key whose role may not do this: 403. The caller's key name is the
actor of everything the call writes on the timeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, params
from starlette.concurrency import run_in_threadpool

from breachflow.models.apikey import Role, authenticate
from breachflow.models.runtime import database

READERS = frozenset({Role.ADMIN, Role.RESPONDER, Role.ONCALL, Role.COMPLIANCE})
RESPONDERS = frozenset({Role.ADMIN, Role.RESPONDER})
#: Who takes runbook steps (a gate's step only as its approval, flows/approve/runbook.py)
#: and who decides a suspected incident's triage: the same on the API and the pages.
STEP_TAKERS = frozenset({Role.ADMIN, Role.ONCALL, Role.RESPONDER})
TRIAGERS = frozenset({Role.ADMIN, Role.ONCALL, Role.RESPONDER})


#: A person who logged in through single sign-on is a key row of this name prefix
#: (api/pages/sso.py), and on the timeline as ``sso:NAME`` rather than as an API key.
SSO_PREFIX = "sso:"


@dataclass(frozen=True)
class Caller:
    name: str
    role: Role

    @property
    def actor(self) -> str:
        return self.name if self.name.startswith(SSO_PREFIX) else f"api-key:{self.name}"


def allow(roles: frozenset[Role]) -> params.Depends:
    """A dependency that admits a live key of one of ``roles``: a route takes the caller as
    ``who: Annotated[Caller, allow(roles)]`` (see ``Reader`` and ``Responder``)."""

    async def caller(request: Request) -> Caller:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise HTTPException(
                401,
                "an API key is required: Authorization: Bearer <key> (breach keys create)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        found = await run_in_threadpool(_lookup, token.strip())
        if found is None:
            raise HTTPException(
                401, "the API key is unknown or revoked", headers={"WWW-Authenticate": "Bearer"}
            )
        if found.role not in roles:
            allowed = ", ".join(sorted(roles))
            raise HTTPException(403, f"a {found.role} key may not do this (allowed: {allowed})")
        return found

    return Depends(caller)


#: The caller of a route any reader may call.
Reader = Annotated[Caller, allow(READERS)]
#: The caller of a route only responders may call.
Responder = Annotated[Caller, allow(RESPONDERS)]


def _lookup(token: str) -> Caller | None:
    with database().unit_of_work() as session:
        key = authenticate(session, token)
        return Caller(key.name, Role(key.role)) if key else None
