"""``/ui``: the compliance pages. Read-only, server-rendered, no script at all.

Anyone with an API key of a reading role logs in by pasting it; the browser then holds a
session cookie, never the key (:mod:`api.pages.session`). Nobody edits anything here: the
only writes are events on an incident's timeline, when someone opens one person's record
(:mod:`api.pages.person`) or downloads an export (:mod:`api.pages.exports`).

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
    session,
    timeline,
)

router = APIRouter(prefix="/ui", include_in_schema=False)
for part in (session, assets, board, incident, timeline, person, exports, packs):
    router.include_router(part.router)

__all__ = ["router"]
