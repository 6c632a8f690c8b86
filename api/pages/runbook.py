"""``/ui/incidents/{key}/runbook``: on-call follows the runbook in the browser.

Every step with its instructions (rendered from the runbook's Markdown), owner, due time
in the viewer's zone and where it stands. Whoever may take steps (:data:`STEP_TAKERS`, as
on the API) marks one done with a note and, where the step asks, an evidence file; a gate's
step (the notice approval before anyone is notified, the closure sign-off) is given only as
its approval, by the gate's roles, and the person who last set the notice texts cannot
approve them (four eyes). Each is a POST with the session's form token, recorded on the
timeline under the viewer's key name, exactly as the CLI and the API record theirs.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import UploadFile

from breachflow.api.auth import STEP_TAKERS, Caller
from breachflow.api.forms import first
from breachflow.api.pages.render import HEADERS, render
from breachflow.api.pages.session import action, page, upload
from breachflow.api.pages.times import when
from breachflow.flows.approve import runbook as runbooks
from breachflow.flows.deployments import start_response
from breachflow.models import commands
from breachflow.models.base import utcnow
from breachflow.models.errors import Forbidden
from breachflow.models.runtime import database
from breachflow.rendering.markdown import instructions_html

router = APIRouter()

#: The approval each gate's step is given as: ``notify`` → ``notice``.
APPROVAL_OF_GATE = {step_gate: gate for gate, step_gate in runbooks.GATES.items()}
NOTE_LIMIT = 5000


@router.get("/incidents/{key}/runbook")
async def runbook_page(request: Request, key: str) -> Response:
    def build(who: Caller) -> HTMLResponse:
        now = utcnow()
        with database().unit_of_work() as session:
            incident = commands.get_incident(session, key)
            items = runbooks.checklist(session, incident)
            waiting = runbooks.waiting_for(session, incident, "notify")
            steps = [_step(item, who, now) for item in items]
            title = {
                "key": incident.key,
                "title": incident.title,
                "state": str(incident.state),
                "exercise": incident.exercise,
            }
        phases: dict[str, list[dict[str, Any]]] = {}
        for step in steps:
            phases.setdefault(step["phase"], []).append(step)
        done = sum(1 for s in steps if s["status"] == "done")
        return render(
            "runbook",
            viewer=who,
            incident=title,
            phases=phases,
            waiting_for=waiting,
            done=done,
            total=len(steps),
            may_take=who.role in STEP_TAKERS,
        )

    return await page(request, build)


def _step(item: runbooks.ChecklistItem, who: Caller, now: datetime) -> dict[str, Any]:
    if item.done_at:
        status = "done"
    elif item.not_applicable:
        status = "not applicable"
    else:
        status = "overdue" if item.overdue(now) else "open"
    gate = APPROVAL_OF_GATE.get(item.step.gates or "")
    return {
        "id": item.step.id,
        "phase": item.phase,
        "title": item.step.title,
        "role": item.step.role,
        "due": when(item.due_at),
        "status": status,
        "done_at": when(item.done_at),
        "done_by": item.done_by,
        "note": item.done.note if item.done else None,
        "not_applicable": item.not_applicable,
        "evidence": item.step.evidence,
        "instructions": instructions_html(item.step.instructions),
        "gate": gate,
        "may_approve": bool(gate) and who.role in runbooks.approvers(gate or "notice"),
        "open": status in ("open", "overdue"),
    }


@router.post("/incidents/{key}/runbook/{step_id}/evidence")
async def mark_step_done(request: Request, key: str, step_id: str) -> Response:
    """A step done, with a note and (optionally) the evidence file, by the viewer."""

    def build(who: Caller, form: dict[str, list[str]], file: UploadFile | None) -> Response:
        if who.role not in STEP_TAKERS:
            allowed = ", ".join(sorted(STEP_TAKERS))
            raise Forbidden(f"a {who.role} key may not take runbook steps (allowed: {allowed})")
        note = first(form, "note", NOTE_LIMIT).strip() or None
        with tempfile.TemporaryDirectory() as folder:
            evidence = _saved(file, Path(folder)) if file else None
            with database().unit_of_work() as session:
                incident = commands.get_incident(session, key, lock=True)
                runbooks.mark_done(
                    session, incident, step_id, who.actor, note=note, evidence=evidence
                )
        return _back_to(key, step_id)

    return await upload(request, build)


@router.post("/incidents/{key}/approvals/{gate}")
async def approve(request: Request, key: str, gate: str) -> Response:
    """The gate's approval by the viewer (their role and four eyes are checked by
    ``runbooks.approve``), then the response continues in the background, as on the API."""

    def build(who: Caller, form: dict[str, list[str]]) -> Response:
        note = first(form, "note", NOTE_LIMIT).strip() or None
        with database().unit_of_work() as session:
            incident = commands.get_incident(session, key, lock=True)
            given = runbooks.approve(session, incident, gate, who.actor, str(who.role), note)
            incident_key, step_id, at = incident.key, given.step, given.done_at.isoformat()
        start_response(incident_key, who.actor, f"{incident_key}:approved:{gate}:{at}")
        return _back_to(incident_key, step_id)

    return await action(request, build)


def _saved(file: UploadFile, folder: Path) -> Path:
    """The upload, under its name made plain (the API's rule: letters, digits, ``._ -``,
    not hidden); ``mark_done`` keeps a copy and records its SHA-256."""
    name = re.sub(r"[^A-Za-z0-9._ -]", "_", Path(file.filename or "").name).lstrip("._ -")
    target = folder / (name[:200] or "evidence")
    with target.open("wb") as out:
        shutil.copyfileobj(file.file, out)
    return target


def _back_to(key: str, step_id: str) -> Response:
    """After a POST, the page again (a reload does not post twice), at the step."""
    return RedirectResponse(f"/ui/incidents/{key}/runbook#{step_id}", 303, headers=HEADERS)
