"""``/ui/incidents/{key}/timeline``: every event in order, filtered by kind and actor, a
page of :data:`TIMELINE_PAGE` at a time, and whether the hash chain verifies."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.auth import Caller
from api.pages.render import render
from api.pages.session import page
from api.pages.times import when
from flows.runtime import database
from models import commands
from models.errors import InvalidInput
from models.incident import Incident
from models.timeline import TimelineEvent, verify_chain

router = APIRouter()

TIMELINE_PAGE = 500
MAX_OFFSET = 2**31


@router.get("/incidents/{key}/timeline")
async def timeline_page(
    request: Request,
    key: str,
    kind: str | None = None,
    actor: str | None = None,
    offset: str = "0",  # parsed by the page: a bad one gets an error page, not JSON
) -> Response:
    def build(who: Caller) -> HTMLResponse:
        start = _offset(offset)
        with database().unit_of_work() as session:
            incident = commands.get_incident(session, key)
            check = verify_chain(session, incident)
            where = [TimelineEvent.incident_id == incident.id]
            where += [TimelineEvent.kind == kind] if kind else []
            where += [TimelineEvent.actor == actor] if actor else []
            total = session.scalar(select(func.count()).where(*where)) or 0
            events = session.scalars(
                select(TimelineEvent)
                .where(*where)
                .order_by(TimelineEvent.seq)
                .limit(TIMELINE_PAGE)
                .offset(start)
            ).all()
            context = {
                "incident": {"key": incident.key, "title": incident.title},
                "chain": {
                    "ok": check.ok,
                    "events": check.events,
                    "broken_at": check.broken_at,
                    "reason": check.reason,
                },
                "events": [_event(e) for e in events],
                "kinds": _distinct(session, TimelineEvent.kind, incident),
                "actors": _distinct(session, TimelineEvent.actor, incident),
            }
        pages = _pages(total, start, {"kind": kind or "", "actor": actor or ""})
        return render(
            "timeline",
            viewer=who,
            kind=kind or "",
            actor=actor or "",
            total=total,
            offset=start,
            pages=pages,
            **context,
        )

    return await page(request, build)


def _offset(text: str) -> int:
    """``?offset=``: how many events to skip, a whole number from 0."""
    if not (text.isascii() and text.isdigit() and len(text) <= 10) or int(text) > MAX_OFFSET:
        raise InvalidInput(
            f"offset must be a whole number of events to skip, from 0 to {MAX_OFFSET:,}"
        )
    return int(text)


def _distinct(session: Session, column: Any, incident: Incident) -> list[str]:
    return sorted(
        session.scalars(select(column).where(TimelineEvent.incident_id == incident.id).distinct())
    )


def _event(event: TimelineEvent) -> dict[str, Any]:
    payload = json.dumps(event.payload, ensure_ascii=False, sort_keys=True, indent=1)
    brief = ", ".join(
        f"{name}={value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)}"
        for name, value in event.payload.items()
    )
    return {
        "seq": event.seq,
        "kind": event.kind,
        "actor": event.actor,
        "occurred": when(event.occurred_at, seconds=True),
        "recorded": when(event.recorded_at, seconds=True),
        "brief": brief if len(brief) <= 240 else brief[:239] + "…",
        "payload": payload if len(brief) > 240 else None,
    }


def _pages(total: int, offset: int, filters: dict[str, str]) -> dict[str, str | None]:
    """Links to the previous and next page of events, keeping the filters."""
    query = "&".join(f"{k}={quote(v, safe='')}" for k, v in filters.items() if v)

    def link(start: int) -> str:
        return "?" + "&".join(p for p in (query, f"offset={start}" if start else "") if p)

    earlier = link(max(offset - TIMELINE_PAGE, 0)) if offset else None
    later = link(offset + TIMELINE_PAGE) if offset + TIMELINE_PAGE < total else None
    return {"earlier": earlier, "later": later}
