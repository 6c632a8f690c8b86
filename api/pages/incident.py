"""``/ui/incidents/{key}``: one incident. Its anchor times, obligations, the notification
funnel, the announcement, the regulator reports, the runbook, and the export downloads;
no contact details (those are on :mod:`api.pages.person`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from breachflow.api.auth import Caller
from breachflow.api.pages.funnel import notification
from breachflow.api.pages.person import PERSONAL_DATA
from breachflow.api.pages.render import render
from breachflow.api.pages.session import page
from breachflow.api.pages.times import TONE, countdown, when
from breachflow.flows.announce.decision import announcement_status
from breachflow.flows.approve import runbook as runbooks
from breachflow.flows.close.obligations import open_obligations
from breachflow.flows.notify.forecast import forecast
from breachflow.flows.watchdog import DeadlineState, DeadlineStatus, deadline_statuses
from breachflow.models import commands
from breachflow.models.announcement import announcements, latest_decision
from breachflow.models.base import utcnow
from breachflow.models.incident import Incident
from breachflow.models.regulator_report import RegulatorReport, ReportState, reports
from breachflow.models.runtime import database, settings

router = APIRouter()

ANCHORS = [
    ("detected", "detected_at"),
    ("discovered", "discovered_at"),
    ("aware", "aware_at"),
    ("determined", "determined_at"),
    ("assessed", "assessed_at"),
    ("contained", "contained_at"),
    ("handling ended", "handling_ended_at"),
    ("classified as major", "classified_major_at"),
    ("corrective measure available", "corrective_measure_at"),
    ("closed", "closed_at"),
]


@router.get("/incidents/{key}")
async def incident_page(request: Request, key: str) -> Response:
    def build(who: Caller) -> HTMLResponse:
        now = utcnow()
        with database().unit_of_work() as session:
            incident = commands.get_incident(session, key)
            context: dict[str, Any] = {
                "incident": _summary(session, incident),
                "anchors": [(label, when(getattr(incident, a))) for label, a in ANCHORS],
                "obligations": [
                    _obligation(s, now) for s in deadline_statuses(session, incident, now)
                ],
                "notification": notification(session, incident),
                "forecast": forecast(session, incident, settings(), now).as_dict(),
                "announcement": _announcement(session, incident),
                "reports": [_report(r, now) for r in reports(session, incident.id)],
                "runbook": _runbook(session, incident, now),
                "open_before_closing": open_obligations(session, incident, now),
            }
        may_see = who.role in PERSONAL_DATA
        return render("incident", viewer=who, may_see_people=may_see, **context)

    return await page(request, build)


def _summary(session: Session, incident: Incident) -> dict[str, Any]:
    return {
        "key": incident.key,
        "title": incident.title,
        "exercise": incident.exercise,
        "description": incident.description,
        "state": str(incident.state),
        "severity": str(incident.severity),
        "risk": incident.risk or "not assessed",
        "data_categories": list(incident.data_categories),
        "declared_by": incident.declared_by,
        "people": commands.count_subjects(session, incident),
        "events": incident.timeline_length,
        "notice_deadline": when(incident.notice_deadline),
        "policy_deadline": when(incident.policy_deadline),
        "purged": when(incident.purged_at),
    }


#: What a reviewer should know about a rule that is not checked in the official text.
CONFIDENCE_TEXT = {
    "~": "from a secondary source: counsel to review",
    "U": "unverified default the operator may override: counsel to review",
}


def _obligation(status: DeadlineStatus, now: datetime) -> dict[str, Any]:
    o = status.obligation
    late = status.state is DeadlineState.MET_LATE
    return {
        "regime": o.regime,
        "audience": o.audience,
        "phase": o.phase,
        "title": o.title,
        "confidence": o.confidence,
        "confidence_text": CONFIDENCE_TEXT.get(o.confidence or "✓", ""),
        "recipient": status.recipient,
        "due": when(o.deadline, o.timezone),
        "rule": o.deadline_rule,
        "countdown": countdown(o.deadline, now) if o.deadline and status.open else None,
        "state": str(status.state),
        "tone": TONE[status.state],
        "met_at": when(status.met_at),
        "reason": (status.late_reason or "no reason recorded") if late else None,
    }


def _announcement(session: Session, incident: Incident) -> dict[str, Any]:
    decision = latest_decision(session, incident.id)
    return {
        "status": announcement_status(session, incident)["status"],
        "decision": None
        if decision is None
        else {
            "required": decision.required,
            "kind": str(decision.kind),
            "by": decision.decided_by,
            "at": when(decision.decided_at),
            "grounds": list(decision.grounds),
        },
        "versions": [
            {
                "version": v.version,
                "published": when(v.published_at),
                "ends": when(v.ends_at),
                "locales": ", ".join(v.locales),
                "reason": v.reason,
                "destinations": [
                    (name, d.get("status", "?"), d.get("location") or d.get("detail") or "")
                    for name, d in v.destinations.items()
                ],
            }
            for v in announcements(session, incident.id)
        ],
    }


def _report(report: RegulatorReport, now: datetime) -> dict[str, Any]:
    filed = report.state in (ReportState.SUBMITTED, ReportState.ACKNOWLEDGED)
    if report.deadline is None:
        verdict, tone = "", "open"
    elif filed:
        on_time = report.submitted_at is not None and report.submitted_at <= report.deadline
        verdict, tone = ("met", "met") if on_time else ("late", "late")
    else:
        overdue = now > report.deadline
        verdict = countdown(report.deadline, now)
        tone = "overdue" if overdue else "pending"
    return {
        "regime": report.regime,
        "phase": report.phase + (f" #{report.number}" if report.number > 1 else ""),
        "recipient": report.recipient,
        "due": when(report.deadline),
        "rule": report.deadline_rule,
        "verdict": verdict,
        "tone": tone,
        "state": str(report.state).replace("_", " "),
        "mode": str(report.mode),
        "submitted": when(report.submitted_at),
        "submitted_by": report.submitted_by,
        "reference": report.reference,
        "acknowledged": when(report.acknowledged_at),
        "delay_reason": report.delay_reason,
        # The pack as written, served by api/pages/packs.py: what the regulator gets.
        "files": [s for s in ("html", "pdf", "json") if report.files.get(s)],
        "id": report.id,
    }


def _runbook(session: Session, incident: Incident, now: datetime) -> dict[str, Any]:
    items = runbooks.checklist(session, incident)
    steps = [
        {
            "phase": item.phase,
            "title": item.step.title,
            "role": item.step.role,
            "due": when(item.due_at),
            "done_by": item.done_by,
            "done_at": when(item.done_at),
            "not_applicable": item.not_applicable,
            "overdue": item.overdue(now),
            "gates": item.step.gates,
        }
        for item in items
    ]
    return {
        "done": sum(1 for s in steps if s["done_by"]),
        "total": len(steps),
        "overdue": sum(1 for s in steps if s["overdue"]),
        "waiting_for": runbooks.waiting_for(session, incident, "notify"),
        "steps": steps,
    }
