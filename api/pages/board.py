"""``/ui/``: the board. The open incidents (or the closed ones, or all), newest first, a
page of :data:`BOARD_PAGE` at a time, each with its nearest deadline not met yet."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import ColumnElement, and_, func, not_, or_, select, true
from sqlalchemy.orm import Session

from breachflow.api.auth import Caller
from breachflow.api.pages.paging import day_range, links, offset_from, search_from
from breachflow.api.pages.render import render
from breachflow.api.pages.session import page
from breachflow.api.pages.times import TONE, countdown, when
from breachflow.flows.notify.forecast import Verdict, forecast
from breachflow.flows.watchdog import (
    DeadlineState,
    DeadlineStatus,
    deadline_statuses,
    unfiled_report,
)
from breachflow.models import commands
from breachflow.models.base import utcnow
from breachflow.models.errors import InvalidInput
from breachflow.models.incident import Incident, IncidentState
from breachflow.models.runtime import database, settings

router = APIRouter()


BOARD_PAGE = 50
ENDED = (IncidentState.CLOSED, IncidentState.DISMISSED)


def _open() -> ColumnElement[bool]:
    """Still being handled, or closed with a regulator report still to file."""
    return or_(Incident.state.not_in(ENDED), unfiled_report())


#: What the board shows: ``open`` (the default), the rest (``closed``), or ``all``.
SHOWN = {"open": _open, "closed": lambda: not_(_open()), "all": lambda: true()}


@router.get("/")
async def board(
    request: Request,
    show: str = "open",
    q: str = "",
    since: str = "",
    until: str = "",
    offset: str = "0",
) -> Response:
    """``q`` finds words in an incident's key or title; ``since`` and ``until`` keep the
    incidents detected on those days."""

    def build(who: Caller) -> HTMLResponse:
        if show not in SHOWN:
            raise InvalidInput(f"show must be one of {', '.join(SHOWN)}")
        start, now = offset_from(offset, "incidents"), utcnow()
        words, (after, before) = search_from(q), day_range(since, until)
        where = and_(
            SHOWN[show](),
            or_(
                func.lower(Incident.title).contains(words.lower(), autoescape=True),
                func.lower(Incident.key).contains(words.lower(), autoescape=True),
            )
            if words
            else true(),
            Incident.detected_at >= after if after else true(),
            Incident.detected_at < before if before else true(),
        )
        with database().unit_of_work() as session:
            total = session.scalar(select(func.count()).select_from(Incident).where(where)) or 0
            incidents = session.scalars(
                select(Incident)
                .where(where)
                .order_by(Incident.id.desc())
                .limit(BOARD_PAGE)
                .offset(start)
            ).all()
            rows = [_board_row(session, incident, now) for incident in incidents]
        kept = {"show": show if show != "open" else "", "q": words, "since": since, "until": until}
        return render(
            "board",
            viewer=who,
            rows=rows,
            now=when(now),
            show=show,
            q=words,
            since=since,
            until=until,
            total=total,
            offset=start,
            pages=links(total, start, BOARD_PAGE, kept),
        )

    return await page(request, build)


def _board_row(session: Session, incident: Incident, now: datetime) -> dict[str, Any]:
    return {
        "key": incident.key,
        "title": incident.title,
        "state": str(incident.state),
        "severity": str(incident.severity),
        "people": commands.count_subjects(session, incident),
        "nearest": _nearest(deadline_statuses(session, incident, now), incident, now),
        "forecast": _forecast(session, incident, now),
    }


def _forecast(session: Session, incident: Incident, now: datetime) -> dict[str, str] | None:
    """Whether everyone will have been sent their notice in time, while notices are out."""
    if incident.state == IncidentState.CLOSED:
        return None
    ahead = forecast(session, incident, settings(), now)
    if ahead.verdict in (Verdict.NOT_STARTED, Verdict.DONE):
        return None
    return {"text": ahead.text(), "tone": "overdue" if ahead.verdict is Verdict.LATE else "met"}


def _nearest(statuses: list[DeadlineStatus], incident: Incident, now: datetime) -> dict[str, Any]:
    """The deadline that matters most: the earliest not met; else how they were met."""
    waiting = sorted(
        (s for s in statuses if s.open and s.obligation.deadline),
        key=lambda s: s.obligation.deadline,  # type: ignore[arg-type, return-value]
    )
    if waiting:
        first = waiting[0]
        due = first.obligation.deadline
        assert due is not None
        return {
            "tone": TONE[first.state],
            "label": str(first.state),
            "countdown": countdown(due, now),
            "due": when(due),
            "name": first.name
            + (f", {first.recipient}" if first.obligation.audience == "regulator" else ""),
            "more": len(waiting) - 1,
        }
    if incident.assessed_at is None or not statuses:
        return {"tone": "muted", "label": "not assessed yet"}
    late = [s for s in statuses if s.state is DeadlineState.MET_LATE]
    if late:
        return {"tone": "late", "label": f"{len(late)} met late"}
    if any(s.state is DeadlineState.MET for s in statuses):
        return {"tone": "met", "label": "all met"}
    return {"tone": "open", "label": "no fixed deadline"}
