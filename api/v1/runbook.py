"""``/api/v1/incidents/{key}/runbook`` and ``/approvals``: on-call's checklist over HTTP.

Reading it is for everyone who reads incidents; marking steps done is for on-call,
responders and admins; an approval (the gate before notification) is for on-call and
admins, and continues the response in the background.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from api.auth import READERS, Caller, allow
from flows import runbook as runbooks
from flows.runs import start_in_background
from flows.runtime import database
from models import commands
from models.apikey import Role
from models.base import utcnow

router = APIRouter(prefix="/api/v1/incidents/{key}", tags=["runbook"])

STEP_TAKERS = frozenset({Role.ADMIN, Role.ONCALL, Role.RESPONDER})
APPROVERS = frozenset({Role.ADMIN, Role.ONCALL})


class Note(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(default=None, max_length=5000)


@router.get("/runbook")
async def checklist(key: str, who: Caller = allow(READERS)) -> dict[str, Any]:
    def work() -> dict[str, Any]:
        now = utcnow()
        with database().unit_of_work() as session:
            incident = commands.get_incident(session, key)
            items = runbooks.checklist(session, incident)
            return {
                "waiting_for": runbooks.waiting_for(session, incident, "notify"),
                "steps": [
                    {
                        "phase": item.phase,
                        "id": item.step.id,
                        "title": item.step.title,
                        "role": item.step.role,
                        "due_at": item.due_at,
                        "overdue": item.overdue(now),
                        "evidence_required": item.step.evidence,
                        "gates": item.step.gates,
                        "instructions": item.step.instructions,
                        "done_at": item.done.done_at if item.done else None,
                        "done_by": item.done.done_by if item.done else None,
                        "note": item.done.note if item.done else None,
                    }
                    for item in items
                ],
            }

    return await run_in_threadpool(work)


@router.post("/runbook/{step}")
async def step_done(
    key: str, step: str, body: Note, who: Caller = allow(STEP_TAKERS)
) -> dict[str, Any]:
    """Mark a step done (steps that need evidence are marked with the CLI: --evidence)."""

    def work() -> dict[str, Any]:
        with database().unit_of_work() as session:
            incident = commands.get_incident(session, key, lock=True)
            row = runbooks.mark_done(session, incident, step, who.actor, note=body.note)
            return {"step": row.step, "done_at": row.done_at, "done_by": row.done_by}

    return await run_in_threadpool(work)


@router.post("/approvals/{gate}", status_code=202)
async def approve(key: str, gate: str, body: Note, who: Caller = allow(APPROVERS)) -> Any:
    """Approve (``notice``) and continue the response in the background."""

    def work() -> str:
        with database().unit_of_work() as session:
            incident = commands.get_incident(session, key, lock=True)
            runbooks.approve(session, incident, gate, who.actor, body.note)
            return incident.key

    incident_key = await run_in_threadpool(work)
    start_in_background(incident_key, who.actor)
    return {"incident": incident_key, "approved": gate, "status": "continuing"}
