"""``/api/v1/incidents/{key}/runbook`` and ``/approvals``: on-call's checklist over HTTP.

Reading it is for everyone who reads incidents; marking steps done is for on-call,
responders and admins; an approval (a gated step: the notice before notification, the
closure sign-off) is for the role that owns its step and for admins, and continues the
response in the background.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from breachflow.api.auth import STEP_TAKERS, Caller, Reader, allow
from breachflow.flows.approve import runbook as runbooks
from breachflow.flows.deployments import start_response
from breachflow.models import commands
from breachflow.models.base import utcnow
from breachflow.models.runtime import database

router = APIRouter(prefix="/api/v1/incidents/{key}", tags=["runbook"])

StepTaker = Annotated[Caller, allow(STEP_TAKERS)]
#: An evidence file's name: a plain name, no path, not hidden.
SAFE_NAME = r"^[A-Za-z0-9][A-Za-z0-9._ -]*$"


class Note(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(default=None, max_length=5000)


@router.get("/runbook")
async def checklist(key: str, who: Reader) -> dict[str, Any]:
    def work() -> dict[str, Any]:
        now = utcnow()
        with database().unit_of_work() as session:
            incident = commands.get_incident(session, key)
            return runbooks.checklist_data(session, incident, now)

    return await run_in_threadpool(work)


@router.post("/runbook/{step}")
async def step_done(key: str, step: str, body: Note, who: StepTaker) -> dict[str, Any]:
    """Mark a step done (a step that needs evidence: ``…/evidence``)."""

    def work() -> dict[str, Any]:
        with database().unit_of_work() as session:
            incident = commands.get_incident(session, key, lock=True)
            row = runbooks.mark_done(session, incident, step, who.actor, note=body.note)
            return {"step": row.step, "done_at": row.done_at, "done_by": row.done_by}

    return await run_in_threadpool(work)


@router.post("/runbook/{step}/evidence")
async def step_done_with_evidence(
    key: str,
    step: str,
    request: Request,
    filename: Annotated[str, Query(min_length=1, max_length=200, pattern=SAFE_NAME)],
    who: StepTaker,
    note: Annotated[str | None, Query(max_length=5000)] = None,
) -> dict[str, Any]:
    """Mark a step done with its evidence: the file is the request body (up to 50 MiB),
    kept beside the record under ``filename`` and hashed on the timeline."""
    runbooks.refuse_gate(key, step)  # before the upload is read
    with tempfile.TemporaryDirectory() as folder:
        evidence = Path(folder) / filename
        with evidence.open("wb") as out:
            async for chunk in request.stream():
                out.write(chunk)

        def work() -> dict[str, Any]:
            with database().unit_of_work() as session:
                incident = commands.get_incident(session, key, lock=True)
                row = runbooks.mark_done(
                    session, incident, step, who.actor, note=note, evidence=evidence
                )
                return {
                    "step": row.step,
                    "done_at": row.done_at,
                    "done_by": row.done_by,
                    "evidence_sha256": row.evidence_sha256,
                }

        return await run_in_threadpool(work)


@router.post("/approvals/{gate}", status_code=202)
async def approve(key: str, gate: str, body: Note, who: Reader) -> Any:
    """Approve (``notice``, ``closure``) and continue the response in the background.
    Who may: the gate's roles (``runbooks.approve``), and not the notice's own author."""

    def work() -> dict[str, str]:
        with database().unit_of_work() as session:
            incident = commands.get_incident(session, key, lock=True)
            approval = runbooks.approve(
                session, incident, gate, who.actor, str(who.role), body.note
            )
            incident_key, given = incident.key, approval.done_at.isoformat()
        # One approval, one run: a retried request is a new approval, a retried start is not.
        run = start_response(incident_key, who.actor, f"{incident_key}:approved:{gate}:{given}")
        return {"incident": incident_key, "approved": gate, "status": "continuing", "run": run}

    return await run_in_threadpool(work)
