"""``/ui/triage``: the suspected incidents that alerts and reports from the public opened,
for on-call to confirm (a breach: it is declared, and the clocks that run from awareness
start) or dismiss (not a breach: it stays on the record), each with the reason.

The same decision as ``breach confirm`` / ``breach dismiss`` and ``POST …/triage``, for the
same roles (:data:`TRIAGERS`); a POST with the session's form token, recorded on the
timeline under the viewer's key name.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from breachflow.api.auth import TRIAGERS, Caller
from breachflow.api.forms import first
from breachflow.api.pages.render import HEADERS, render
from breachflow.api.pages.session import action, page
from breachflow.api.pages.times import VIEWER_ZONE, when
from breachflow.models import commands
from breachflow.models.alert import AlertGroup
from breachflow.models.errors import Forbidden, InvalidInput
from breachflow.models.incident import Incident
from breachflow.models.runtime import database

router = APIRouter()


@router.get("/triage")
async def triage_page(request: Request) -> Response:
    def build(who: Caller) -> HTMLResponse:
        with database().unit_of_work() as session:
            rows = commands.suspected(session)
            suspected = [_suspected(incident, group) for incident, group in rows]
        return render("triage", viewer=who, suspected=suspected, may_decide=who.role in TRIAGERS)

    return await page(request, build)


def _suspected(incident: Incident, group: AlertGroup | None) -> dict[str, Any]:
    return {
        "key": incident.key,
        "title": incident.title,
        "severity": str(incident.severity),
        "declared_by": incident.declared_by,
        "opened": when(incident.created_at),
        "source": group.source if group else None,
        "alerts": group.received if group else None,
        "status": group.status if group else None,
        "first": when(group.first_seen) if group else None,
        "last": when(group.last_seen) if group else None,
    }


@router.post("/incidents/{key}/triage")
async def decide(request: Request, key: str) -> Response:
    """``decision`` (confirm | dismiss), ``reason``, and with confirm an optional
    ``aware_at`` (the form's local time, in the viewer's zone)."""

    def build(who: Caller, form: dict[str, list[str]]) -> Response:
        if who.role not in TRIAGERS:
            allowed = ", ".join(sorted(TRIAGERS))
            raise Forbidden(f"a {who.role} key may not triage incidents (allowed: {allowed})")
        decision = first(form, "decision", 20)
        aware_at = _local_time(first(form, "aware_at", 40).strip())
        with database().unit_of_work() as session:
            incident = commands.get_incident(session, key, lock=True)
            reason = first(form, "reason", 5000)
            commands.triage(session, incident, who.actor, decision, reason, aware_at)
            target = f"/ui/incidents/{incident.key}" if decision == "confirm" else "/ui/triage"
        return RedirectResponse(target, 303, headers=HEADERS)

    return await action(request, build)


def _local_time(text: str) -> datetime | None:
    """A ``datetime-local`` field (no zone): in the viewer's zone, else UTC."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{text!r} is not a date and time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(VIEWER_ZONE.get() or "UTC"))
    return moment
