"""``/ui/incidents/{key}/timeline``: every event in order, filtered by kind and actor, a
page of :data:`TIMELINE_PAGE` at a time, and whether the hash chain verifies."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import ColumnElement, Text, cast, func, or_, select
from sqlalchemy.orm import Session

from breachflow.api.auth import Caller
from breachflow.api.pages.paging import day_range, links, offset_from, search_from
from breachflow.api.pages.render import render
from breachflow.api.pages.session import page
from breachflow.api.pages.times import when
from breachflow.models import commands
from breachflow.models.incident import Incident
from breachflow.models.runtime import check_timeline_anchors, database
from breachflow.models.timeline import TimelineEvent, verify_chain

router = APIRouter()

TIMELINE_PAGE = 500


@router.get("/incidents/{key}/timeline")
async def timeline_page(
    request: Request,
    key: str,
    kind: str | None = None,
    actor: str | None = None,
    q: str = "",
    since: str = "",
    until: str = "",
    offset: str = "0",  # parsed by the page: a bad one gets an error page, not JSON
) -> Response:
    def build(who: Caller) -> HTMLResponse:
        start = offset_from(offset, "events")
        words, (after, before) = search_from(q), day_range(since, until)
        with database().unit_of_work() as session:
            incident = commands.get_incident(session, key)
            check = verify_chain(session, incident)
            anchor = check_timeline_anchors(session, incident).summary(check.events)
            signed = anchor["signed_at"]
            if isinstance(signed, str):
                anchor["signed_at"] = when(datetime.fromisoformat(signed), seconds=True)
            where = [TimelineEvent.incident_id == incident.id]
            where += [TimelineEvent.kind == kind] if kind else []
            where += [TimelineEvent.actor == actor] if actor else []
            where += [TimelineEvent.recorded_at >= after] if after else []
            where += [TimelineEvent.recorded_at < before] if before else []
            where += [_mentions(words)] if words else []
            total = session.scalar(select(func.count()).where(*where)) or 0
            events = session.scalars(
                select(TimelineEvent)
                .where(*where)
                .order_by(TimelineEvent.seq)
                .limit(TIMELINE_PAGE)
                .offset(start)
            ).all()
            context: dict[str, Any] = {
                "incident": {
                    "key": incident.key,
                    "title": incident.title,
                    "exercise": incident.exercise,
                },
                "chain": {
                    "ok": check.ok,
                    "events": check.events,
                    "broken_at": check.broken_at,
                    "reason": check.reason,
                },
                "anchor": anchor,
                "events": [_event(e) for e in events],
                "kinds": _distinct(session, TimelineEvent.kind, incident),
                "actors": _distinct(session, TimelineEvent.actor, incident),
            }
        filters = {"kind": kind or "", "actor": actor or "", "q": words}
        filters |= {"since": since, "until": until}
        pages = links(total, start, TIMELINE_PAGE, filters)
        return render(
            "timeline",
            viewer=who,
            kind=kind or "",
            actor=actor or "",
            q=words,
            since=since,
            until=until,
            total=total,
            offset=start,
            pages=pages,
            **context,
        )

    return await page(request, build)


def _mentions(words: str) -> ColumnElement[bool]:
    """Events whose kind, actor or details contain ``words``, any case."""
    needle = words.lower()
    return or_(
        *(
            func.lower(column).contains(needle, autoescape=True)
            for column in (
                TimelineEvent.kind,
                TimelineEvent.actor,
                cast(TimelineEvent.payload, Text),
            )
        )
    )


def _distinct(session: Session, column: Any, incident: Incident) -> list[str]:
    return sorted(
        session.scalars(select(column).where(TimelineEvent.incident_id == incident.id).distinct())
    )


def _event(event: TimelineEvent) -> dict[str, Any]:
    """An event as the page tells it: a sentence (export/_events.html.j2, as in the PDF),
    its details as a list to open, and the payload exactly as hashed."""
    return {
        "seq": event.seq,
        "kind": event.kind,
        "actor": event.actor,
        "occurred": when(event.occurred_at, seconds=True),
        "recorded": when(event.recorded_at, seconds=True),
        "payload": event.payload,
        "json": json.dumps(event.payload, ensure_ascii=False, sort_keys=True, indent=1),
    }
