"""``/ui``: the compliance and on-call pages. Server-rendered, no script at all.

Anyone with an API key of a reading role logs in by pasting it; the browser then holds a
session cookie, never the key (:mod:`api.pages.session`). What changes something is a POST
with the session's form token, for the same roles as the API, on the timeline under the
viewer's key name: on-call triages suspected incidents (:mod:`api.pages.triage`), takes
runbook steps and gives approvals (:mod:`api.pages.runbook`); anyone who reads opens one
person's record (:mod:`api.pages.person`, for the roles that may) or downloads an export
(:mod:`api.pages.exports`).

Each page is a module that reads top to bottom: its route, then what it shows. They share
the session guard (:mod:`~api.pages.session`), the rendering with its security headers
(:mod:`~api.pages.render`) and how times and deadlines are shown (:mod:`~api.pages.times`).
"""

from __future__ import annotations

from fastapi import APIRouter

from breachflow.api.pages import (
    assets,
    board,
    exports,
    incident,
    packs,
    person,
    runbook,
    session,
    sso,
    timeline,
    triage,
)

router = APIRouter(prefix="/ui", include_in_schema=False)
PARTS = (session, sso, assets, board, incident, timeline, person, exports, packs, runbook, triage)
for part in PARTS:
    router.include_router(part.router)

__all__ = ["router"]
