"""Runbooks for on-call: the steps of a response, who owns each, by when, and the gates.

Runbooks are data: ``runbooks/<id>.md``, Markdown with YAML front matter. The default one
(``breach-response.md``) lists the phase runbooks in order; each phase runbook has steps
with an owner role, a due time after one of the incident's clock anchors, instructions,
whether evidence must be attached, and optionally the flow step it gates. A gated flow
step does not start until its step is done by a named person: by default, notification
waits for the approval of the notice texts (``breach approve INC notice``), and an
approval holds for the notice version it saw.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from breachflow import shipped
from breachflow.models.announcement import AnnouncementDecision, latest_decision
from breachflow.models.base import utcnow
from breachflow.models.commands import latest_notice
from breachflow.models.errors import Forbidden, InvalidInput
from breachflow.models.incident import Incident, IncidentState
from breachflow.models.runbook import StepDone
from breachflow.models.runtime import settings
from breachflow.models.timeline import EventKind, TimelineEvent, record

RUNBOOKS = shipped("runbooks")
DEFAULT = "breach-response"
Anchor = Literal["detected_at", "aware_at", "contained_at", "handling_ended_at"]
Role = Literal["admin", "responder", "oncall", "compliance"]
#: What `breach approve INC <gate>` names, and the flow step each holds back: the notice
#: before anyone is told, the closure sign-off before the incident is closed.
GATES = {"notice": "notify", "closure": "close"}


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    title: str
    role: Role
    due: timedelta
    evidence: bool = False
    gates: Literal["notify", "close"] | None = None
    #: Timeline events by which the system itself does this step (an import, the
    #: assessment): the first one ticks it, named as what did it.
    done_when: list[EventKind] = []
    #: Only for some incidents: ``suspected`` (opened by an alert or a report from the
    #: public, so triaged), ``announcement-required``.
    applies_when: Literal["suspected", "announcement-required"] | None = None
    instructions: str = ""


class Runbook(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    title: str
    phase: str | None = None
    anchor: Anchor = "aware_at"
    phases: list[str] = []  # the default runbook: its phase runbooks, in order
    steps: list[Step] = []


@dataclass(frozen=True)
class ChecklistItem:
    phase: str
    step: Step
    due_at: datetime | None  # None while the anchor is not known (e.g. not contained yet)
    done: StepDone | None
    by_event: TimelineEvent | None = None  # the system did it: the event that did
    not_applicable: str | None = None  # why this step is not for this incident

    @property
    def done_at(self) -> datetime | None:
        if self.done:
            return self.done.done_at
        return self.by_event.occurred_at if self.by_event else None

    @property
    def done_by(self) -> str | None:
        if self.done:
            return self.done.done_by
        if self.by_event:
            return f"{self.by_event.actor} ({self.by_event.kind}, event #{self.by_event.seq})"
        return None

    def overdue(self, now: datetime) -> bool:
        return (
            self.done_at is None
            and self.not_applicable is None
            and self.due_at is not None
            and now > self.due_at
        )


@cache
def load(name: str = DEFAULT) -> Runbook:
    path = RUNBOOKS / f"{name}.md"
    try:
        text = path.read_text(encoding="utf-8")
        _, front, _ = text.split("---\n", 2)
        return Runbook.model_validate(yaml.safe_load(front))
    except (OSError, ValueError, yaml.YAMLError, ValidationError) as exc:
        raise InvalidInput(f"runbook {path.name}: {exc}") from None


def phases() -> list[Runbook]:
    """The default runbook's phases, in order (itself too, if it has steps of its own)."""
    default = load()
    books = [load(name) for name in default.phases]
    return ([default] if default.steps else []) + books


def all_steps() -> dict[str, tuple[Runbook, Step]]:
    steps: dict[str, tuple[Runbook, Step]] = {}
    for book in phases():
        for step in book.steps:
            if step.id in steps:
                raise InvalidInput(f"runbook step {step.id} appears twice")
            steps[step.id] = (book, step)
    return steps


def checklist(session: Session, incident: Incident) -> list[ChecklistItem]:
    done = {
        row.step: row
        for row in session.scalars(select(StepDone).where(StepDone.incident_id == incident.id))
    }
    steps = all_steps().values()
    kinds = {kind for _, step in steps for kind in step.done_when} | {EventKind.INCIDENT_SUSPECTED}
    first: dict[str, TimelineEvent] = {}
    for event in session.scalars(
        select(TimelineEvent)
        .where(TimelineEvent.incident_id == incident.id, TimelineEvent.kind.in_(kinds))
        .order_by(TimelineEvent.seq)
    ):
        first.setdefault(event.kind, event)
    suspected = EventKind.INCIDENT_SUSPECTED in first
    decision = latest_decision(session, incident.id)
    items = []
    for book, step in steps:
        anchor = getattr(incident, book.anchor)
        by_system = [first[kind] for kind in step.done_when if kind in first]
        items.append(
            ChecklistItem(
                phase=book.phase or book.id,
                step=step,
                due_at=anchor + step.due if anchor else None,
                done=done.get(step.id),
                by_event=min(by_system, key=lambda e: e.seq) if by_system else None,
                not_applicable=_not_applicable(step, suspected, decision),
            )
        )
    return items


def _not_applicable(
    step: Step, suspected: bool, decision: AnnouncementDecision | None
) -> str | None:
    """Why ``step`` is not for this incident, or None while it is (or may yet be)."""
    if step.applies_when == "suspected" and not suspected:
        return "declared by a person: no alert or report to triage"
    needed = decision is None or decision.required
    if step.applies_when == "announcement-required" and not needed:
        return "the announcement was decided not to be needed"
    return None


def mark_done(
    session: Session,
    incident: Incident,
    step_id: str,
    actor: str,
    *,
    note: str | None = None,
    evidence: Path | None = None,
) -> StepDone:
    """Record a step as done, with its evidence copied beside the record and hashed.

    A gated step is not done this way on any path: it is an approval (``approve``), with
    the gate's roles and four eyes.
    """
    step = _step(incident, step_id)
    refuse_gate(incident.key, step_id)
    return _done(session, incident, step, actor, note=note, evidence=evidence)


def refuse_gate(incident_key: str, step_id: str) -> None:
    """A gated step is given by its approval only, never marked done as a step."""
    gate = approval_of(step_id)
    if gate is not None:
        raise Forbidden(
            f"step {step_id} is an approval: `breach approve {incident_key} {gate}`"
            f" (API: POST /api/v1/incidents/{incident_key}/approvals/{gate})"
        )


def _step(incident: Incident, step_id: str) -> Step:
    steps = all_steps()
    if step_id not in steps:
        raise InvalidInput(
            f"no runbook step {step_id!r}; `breach runbook {incident.key}` lists them"
        )
    return steps[step_id][1]


def _done(
    session: Session,
    incident: Incident,
    step: Step,
    actor: str,
    *,
    note: str | None = None,
    evidence: Path | None = None,
) -> StepDone:
    step_id = step.id
    if step.evidence and evidence is None:
        raise InvalidInput(f"step {step_id} needs evidence: --evidence FILE")
    row = session.scalar(
        select(StepDone).where(StepDone.incident_id == incident.id, StepDone.step == step_id)
    )
    if row is not None and step.gates is None:
        raise InvalidInput(
            f"step {step_id} was done by {row.done_by} at {row.done_at:%Y-%m-%d %H:%M}"
        )
    kept, digest = _keep(incident, step_id, evidence) if evidence else (None, None)
    notice = latest_notice(session, incident) if step.gates == "notify" else None
    if step.gates == "notify" and notice is None:
        raise InvalidInput(
            f"{incident.key} has no notice texts to approve: breach notice set first"
        )
    if row is None:
        row = StepDone(incident_id=incident.id, step=step_id, done_by=actor)
        session.add(row)
    row.done_by, row.done_at, row.note = actor, utcnow(), note
    row.evidence_file, row.evidence_sha256 = kept, digest
    row.notice_version = notice.version if notice else None
    record(
        session,
        incident,
        EventKind.APPROVAL_GIVEN if step.gates else EventKind.STEP_DONE,
        actor,
        {
            "step": step_id,
            "title": step.title,
            "note": note,
            "evidence_sha256": digest,
            "notice_version": row.notice_version,
        },
    )
    session.flush()
    return row


def approve(
    session: Session, incident: Incident, gate: str, actor: str, role: str, note: str | None
) -> StepDone:
    """A named person's approval for ``gate`` (``notice``, ``closure``): the step it
    completes. Only the gate's roles give it, on every path (the CLI acts as an admin:
    it holds the database and the data key). With four eyes (the default), the person
    who set the notice texts being approved cannot approve them: someone else does."""
    allowed = approvers(gate)
    if role not in allowed:
        raise Forbidden(f"a {role} may not approve {gate} (allowed: {', '.join(sorted(allowed))})")
    step = gate_step(GATES[gate])
    if step is None:
        raise InvalidInput(f"no runbook step gates {GATES[gate]}: nothing to approve")
    if step.gates == "notify" and settings().four_eyes:
        notice = latest_notice(session, incident)
        if notice is not None and notice.created_by == actor:
            raise Forbidden(
                f"{actor} set notice version {notice.version} and cannot also approve it"
                " (four eyes): another on-call or admin approves it, or turn four eyes off"
                " with BREACH_FOUR_EYES=false"
            )
    return _done(session, incident, step, actor, note=note)


def approvers(gate: str) -> frozenset[str]:
    """Who may give the approval ``gate``: the role that owns its step, and admins."""
    if gate not in GATES:
        raise InvalidInput(f"nothing to approve called {gate!r}; gates: {', '.join(GATES)}")
    step = gate_step(GATES[gate])
    return frozenset({"admin", step.role}) if step else frozenset({"admin"})


def approval_of(step_id: str) -> str | None:
    """The approval (``notice``, ``closure``) that gives step ``step_id``, if it is a gate."""
    found = all_steps().get(step_id)
    gates = found[1].gates if found else None
    return next((name for name, target in GATES.items() if target == gates), None)


def gate_step(flow_step: str) -> Step | None:
    return next((s for _, s in all_steps().values() if s.gates == flow_step), None)


def waiting_for(session: Session, incident: Incident, flow_step: str) -> str | None:
    """What ``flow_step`` waits for, or None when it may go: the gate is off in the
    settings, or its step is done (for the notice, done for the current notice texts)."""
    if flow_step not in settings().approval_gates:
        return None
    if flow_step == "notify" and incident.has_reached(IncidentState.NOTIFYING):
        return None
    step = gate_step(flow_step)
    if step is None:
        return None
    row = session.scalar(
        select(StepDone).where(StepDone.incident_id == incident.id, StepDone.step == step.id)
    )
    if row is not None and flow_step != "notify":
        return None
    notice = latest_notice(session, incident)
    if row is not None and notice is not None and row.notice_version == notice.version:
        return None
    gate = next(name for name, target in GATES.items() if target == flow_step)
    again = " (the notice texts changed since the last approval)" if row else ""
    return (
        f"{step.title}: {'an' if step.role[0] in 'aeiou' else 'a'} {step.role} or admin"
        f" approves it{again} with"
        f" `breach approve {incident.key} {gate}`"
    )


def _keep(incident: Incident, step_id: str, evidence: Path) -> tuple[str, str]:
    if not evidence.is_file():
        raise InvalidInput(f"evidence file {evidence} does not exist")
    folder = settings().home / "evidence" / incident.key
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{step_id}-{evidence.name}"
    shutil.copyfile(evidence, target)
    return str(target), hashlib.sha256(target.read_bytes()).hexdigest()


def checklist_data(session: Session, incident: Incident, now: datetime) -> dict[str, Any]:
    """The checklist as data, the same for the API and ``breach runbook --json``: every step
    with its owner, due time, instructions and where it stands."""
    return {
        "incident": incident.key,
        "waiting_for": waiting_for(session, incident, "notify"),
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
                "done_at": item.done_at,
                "done_by": item.done_by,
                "done_by_event": item.by_event.seq if item.by_event else None,
                "not_applicable": item.not_applicable,
                "note": item.done.note if item.done else None,
            }
            for item in checklist(session, incident)
        ],
    }
