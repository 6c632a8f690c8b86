"""``/api/v1/incidents``: what security teams do from the CLI, over HTTP.

Declare, read, list and update incidents (never delete: the record is the point), set
their notice texts, upload the affected people, start the response, and read what the
assessment, the ledger, the announcement and the reports say. Every write is on the
timeline with the calling key's name as the actor.
"""

from __future__ import annotations

import tempfile
import uuid
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool

from breachflow.api.auth import TRIAGERS, Caller, Reader, Responder, allow
from breachflow.flows.announce.decision import announcement_status
from breachflow.flows.approve.runbook import approvers
from breachflow.flows.assess.assessment import check_data_categories
from breachflow.flows.close.obligations import open_obligations
from breachflow.flows.close.step import close_early
from breachflow.flows.deployments import start_response
from breachflow.flows.notify.forecast import forecast
from breachflow.models import commands, ledger
from breachflow.models.assessment import latest_assessment
from breachflow.models.errors import InvalidInput
from breachflow.models.incident import Incident, IncidentState, Severity
from breachflow.models.instants import Instant
from breachflow.models.notice import parse_notice_texts
from breachflow.models.regulator_report import reports
from breachflow.models.runtime import check_timeline_anchors, database, settings, vault
from breachflow.models.timeline import TimelineEvent, verify_chain

router = APIRouter(prefix="/api/v1/incidents", tags=["incidents"])
Triager = Annotated[Caller, allow(TRIAGERS)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IncidentIn(Strict):
    title: str = Field(min_length=1, max_length=300)
    description: str = Field(min_length=1, max_length=20_000)
    severity: Severity
    detected_at: Instant
    aware_at: Instant
    data_categories: list[str] = Field(min_length=1, max_length=20)
    contained_at: Instant | None = None
    discovered_at: Instant | None = None
    determined_at: Instant | None = None
    risk: Literal["low", "medium", "high"] | None = None
    encrypted_key_safe: bool = False
    improper_purpose: bool = False


class IncidentPatch(Strict):
    """The facts the assessment depends on; ``breach assess`` (or the run) re-assesses."""

    risk: Literal["low", "medium", "high"] | None = None
    detected_at: Instant | None = None
    aware_at: Instant | None = None
    discovered_at: Instant | None = None
    determined_at: Instant | None = None
    contained_at: Instant | None = None
    handling_ended_at: Instant | None = None
    classified_major_at: Instant | None = None
    corrective_measure_at: Instant | None = None
    encrypted_key_safe: bool | None = None
    improper_purpose: bool | None = None
    material: bool | None = None


class IncidentOut(BaseModel):
    key: str
    title: str
    severity: str
    state: str
    data_categories: list[str]
    detected_at: datetime
    aware_at: datetime
    contained_at: datetime | None
    discovered_at: datetime | None
    determined_at: datetime | None
    handling_ended_at: datetime | None
    classified_major_at: datetime | None = None
    corrective_measure_at: datetime | None = None
    risk: str | None
    notice_deadline: datetime | None
    policy_deadline: datetime | None
    declared_by: str
    created_at: datetime
    closed_at: datetime | None
    #: While ``reporting``: what must still happen before it closes (reports to file, the
    #: announcement's period, the closure sign-off).
    open_before_closing: list[str] = []

    @classmethod
    def of(cls, incident: Incident) -> IncidentOut:
        return cls.model_validate(incident, from_attributes=True)


class IncidentPage(BaseModel):
    items: list[IncidentOut]
    total: int
    limit: int
    offset: int


Limit = Annotated[int, Query(ge=1, le=200)]
Offset = Annotated[int, Query(ge=0, le=2**31)]
#: Facts every incident has: they can be changed, never cleared.
REQUIRED_FACTS = frozenset({"detected_at", "aware_at", "encrypted_key_safe", "improper_purpose"})


@router.post("", status_code=201, response_model=IncidentOut)
async def declare(body: IncidentIn, response: Response, who: Responder) -> Any:
    def work() -> IncidentOut:
        with database().unit_of_work() as session:
            incident = commands.declare(
                session,
                **body.model_dump(exclude={"data_categories"}),
                data_categories=check_data_categories(body.data_categories),
                actor=who.actor,
            )
            return IncidentOut.of(incident)

    created = await run_in_threadpool(work)
    response.headers["Location"] = f"{router.prefix}/{created.key}"
    return created


@router.get("", response_model=IncidentPage)
async def list_incidents(
    who: Reader,
    state: IncidentState | None = None,
    severity: Severity | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Any:
    def work() -> IncidentPage:
        query = select(Incident)
        if state:
            query = query.where(Incident.state == state)
        if severity:
            query = query.where(Incident.severity == severity)
        with database().unit_of_work() as session:
            total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
            rows = session.scalars(query.order_by(Incident.id.desc()).limit(limit).offset(offset))
            items = [IncidentOut.of(i) for i in rows]
        return IncidentPage(items=items, total=total, limit=limit, offset=offset)

    return await run_in_threadpool(work)


@router.get("/{key}", response_model=IncidentOut)
async def read(key: str, who: Reader) -> Any:
    def work() -> IncidentOut:
        with database().unit_of_work() as session:
            incident = commands.get_incident(session, key)
            still_open = open_obligations(session, incident)
            return IncidentOut.of(incident).model_copy(update={"open_before_closing": still_open})

    return await run_in_threadpool(work)


class EarlyClose(Strict):
    reason: str = Field(min_length=10, max_length=5000)


class Triage(Strict):
    """A suspected incident (opened by an alert or a report from the public) decided."""

    decision: Literal["confirm", "dismiss"]
    reason: str = Field(min_length=1, max_length=5000)
    #: With ``confirm``: when we knew it was a breach, if before now.
    aware_at: Instant | None = None


@router.post("/{key}/close")
async def close(key: str, body: EarlyClose, who: Reader) -> dict[str, Any]:
    """Close with obligations still open: only with a reason, by whoever may sign off the
    closure (compliance, admin); the reason and what was open go on the timeline."""
    allowed = approvers("closure")
    if who.role not in allowed:
        raise HTTPException(
            403, f"a {who.role} key may not close incidents (allowed: {', '.join(sorted(allowed))})"
        )
    still_open = await run_in_threadpool(close_early, key, who.actor, body.reason)
    return {"incident": key.upper(), "state": "closed", "open_when_closed": still_open}


@router.post("/{key}/triage")
async def triage(key: str, body: Triage, who: Triager) -> dict[str, Any]:
    """Confirm (a breach: it is declared, and the clocks that run from awareness start) or
    dismiss (not a breach: it stays on the record) a suspected incident, with the reason."""
    if body.decision == "dismiss" and body.aware_at is not None:
        raise InvalidInput("aware_at goes with confirm")

    def work() -> dict[str, Any]:
        with database().unit_of_work() as session:
            incident = commands.get_incident(session, key, lock=True)
            commands.triage(session, incident, who.actor, body.decision, body.reason, body.aware_at)
            return {"incident": incident.key, "state": str(incident.state)}

    return await run_in_threadpool(work)


@router.patch("/{key}")
async def update(key: str, body: IncidentPatch, who: Responder) -> Any:
    changes = body.model_dump(exclude_unset=True)
    if not changes:
        raise InvalidInput("nothing to update: give at least one field")
    cleared = sorted(name for name in REQUIRED_FACTS if name in changes and changes[name] is None)
    if cleared:
        raise InvalidInput(f"{', '.join(cleared)} cannot be cleared, only changed")

    def work() -> dict[str, Any]:
        with database().unit_of_work() as session:
            incident = commands.get_incident(session, key, lock=True)
            changed = commands.update_incident(session, incident, who.actor, changes)
            return {"incident": IncidentOut.of(incident), "changed": changed}

    return await run_in_threadpool(work)


@router.put("/{key}/notice")
async def set_notice(key: str, body: dict[str, dict[str, Any]], who: Responder) -> dict[str, Any]:
    """The notice texts, per locale, as in ``examples/notice.yaml``."""
    texts = parse_notice_texts(body)

    def work() -> dict[str, Any]:
        with database().unit_of_work() as session:
            incident = commands.get_incident(session, key, lock=True)
            version = commands.set_notice(session, incident, texts, who.actor)
            return {"version": version.version, "locales": sorted(texts)}

    return await run_in_threadpool(work)


#: The body is streamed to a file, not parsed by FastAPI, so the schema says what it takes.
PEOPLE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            "application/x-ndjson": {"schema": {"type": "string"}},
        },
    }
}


@router.post("/{key}/subjects", openapi_extra=PEOPLE_BODY)
async def import_subjects(key: str, request: Request, who: Responder) -> Any:
    """The affected people as a CSV or JSON Lines body (``Content-Type: text/csv`` or
    ``application/x-ndjson``); malformed rows are rejected with their line and reason."""
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    suffix = {"text/csv": ".csv", "application/x-ndjson": ".jsonl"}.get(kind)
    if suffix is None:
        raise InvalidInput("send the people as text/csv or application/x-ndjson")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"upload{suffix}"
        with path.open("wb") as out:
            async for chunk in request.stream():
                out.write(chunk)
        return await run_in_threadpool(_import, key, path, who)


def _import(key: str, path: Path, who: Caller) -> dict[str, Any]:
    from breachflow.flows.assess.subjects import import_subjects

    config = settings()
    keys = vault()  # before the transaction: it checks the key in one of its own
    with database().unit_of_work() as session:
        incident = commands.get_incident(session, key, lock=True)
        report = import_subjects(
            session,
            incident,
            path,
            actor=who.actor,
            vault=keys,
            default_locale=config.default_locale,
            rejects_dir=config.home / "rejects",
        )
    return {
        "rows": report.rows,
        "new": report.new,
        "merged": report.merged,
        "rejected": report.rejected_count,
        "rejected_rows": [{"line": line, "reason": reason} for line, reason in report.rejected],
        "warnings": [{"line": line, "reason": reason} for line, reason in report.warnings],
    }


@router.post("/{key}/runs", status_code=202)
async def run(
    key: str,
    who: Responder,
    idempotency_key: Annotated[
        str | None,
        Header(
            max_length=200,
            description="Repeat it on a retry: one run is started per key (with a Prefect server).",
        ),
    ] = None,
) -> dict[str, str]:
    """Start the response flow in the background; follow it on the timeline."""
    await _with_incident(key, _ready_to_run)
    incident_key = key.upper()
    started = await run_in_threadpool(
        start_response,
        incident_key,
        who.actor,
        f"{incident_key}:run:{idempotency_key or uuid.uuid4()}",
    )
    return {
        "incident": incident_key,
        "status": "started",
        "run": started,
        "timeline": f"{router.prefix}/{incident_key}/timeline",
    }


def _ready_to_run(incident: Incident) -> None:
    """Refuse now, with the fix, what the run would only fail on in the background."""
    if incident.state == IncidentState.CLOSED:
        raise InvalidInput(f"{incident.key} is closed: nothing to run")
    with database().unit_of_work() as session:
        if commands.latest_notice(session, incident) is None:
            raise InvalidInput(f"{incident.key} has no notice texts: PUT them to .../notice")
        if not commands.count_subjects(session, incident):
            raise InvalidInput(f"{incident.key} has no affected people: POST them to .../subjects")


@router.get("/{key}/obligations")
async def obligations(key: str, who: Reader) -> Any:
    def work(incident: Incident) -> Any:
        with database().unit_of_work() as session:
            assessment = latest_assessment(session, incident.id)
            if assessment is None:
                return {"assessment": None, "obligations": []}
            return {"assessment": assessment.number, "obligations": assessment.obligations}

    return await _with_incident(key, work)


@router.get("/{key}/notifications")
async def notifications(key: str, who: Reader) -> Any:
    def work(incident: Incident) -> Any:
        with database().unit_of_work() as session:
            people = ledger.people(session, incident)
            return {
                "affected": people.affected,
                "reached": people.reached,
                "unreachable": people.unreachable,
                "pending": people.pending,
                "by_channel": ledger.channel_counts(session, incident),
                "unreachable_reasons": ledger.unreachable_reasons(session, incident),
            }

    return await _with_incident(key, work)


@router.get("/{key}/forecast")
async def notification_forecast(key: str, who: Reader) -> dict[str, object]:
    """When everyone will have been sent their notice at the present rates, per channel,
    against the notice deadline: ``on track``, ``late``, ``unknown`` (a channel with work
    left has no rate yet), ``done`` or ``not started``."""

    def work() -> dict[str, object]:
        with database().unit_of_work() as session:
            incident = commands.get_incident(session, key)
            return forecast(session, incident, settings()).as_dict()

    return await run_in_threadpool(work)


@router.get("/{key}/announcement")
async def announcement(key: str, who: Reader) -> Any:
    def work(incident: Incident) -> Any:
        with database().unit_of_work() as session:
            return announcement_status(session, incident)

    return await _with_incident(key, work)


@router.get("/{key}/reports")
async def regulator_reports(key: str, who: Reader) -> Any:
    def work(incident: Incident) -> Any:
        with database().unit_of_work() as session:
            return [
                {
                    "regime": r.regime,
                    "recipient": r.recipient,
                    "phase": r.phase,
                    "number": r.number,
                    "deadline": r.deadline,
                    "deadline_rule": r.deadline_rule,
                    "state": r.state,
                    "mode": r.mode,
                    "late": r.late,
                    "submitted_at": r.submitted_at,
                    "reference": r.reference,
                    "acknowledged_at": r.acknowledged_at,
                }
                for r in reports(session, incident.id)
            ]

    return await _with_incident(key, work)


@router.get("/{key}/timeline")
async def timeline(key: str, who: Reader, limit: Limit = 100, offset: Offset = 0) -> Any:
    def work(incident: Incident) -> Any:
        with database().unit_of_work() as session:
            check = verify_chain(session, incident)
            anchor = check_timeline_anchors(session, incident).summary(check.events)
            events = session.scalars(
                select(TimelineEvent)
                .where(TimelineEvent.incident_id == incident.id)
                .order_by(TimelineEvent.seq)
                .limit(limit)
                .offset(offset)
            )
            items = [
                {
                    "seq": e.seq,
                    "occurred_at": e.occurred_at,
                    "recorded_at": e.recorded_at,
                    "actor": e.actor,
                    "kind": e.kind,
                    "payload": e.payload,
                    "hash": e.hash,
                }
                for e in events
            ]
        chain = {"verified": check.ok, "events": check.events, "broken_at": check.broken_at,
                 "anchor": anchor}  # fmt: skip
        return {"chain": chain, "items": items, "total": check.events, "limit": limit,
                "offset": offset}  # fmt: skip

    return await _with_incident(key, work)


async def _with_incident(key: str, work: Any) -> Any:
    def load() -> Any:
        with database().unit_of_work() as session:
            incident = commands.get_incident(session, key)
            session.expunge(incident)
        return work(incident)

    return await run_in_threadpool(load)
