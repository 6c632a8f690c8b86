"""Tabletop exercises: a simulated incident run with the real configuration.

The runbooks, the gates, the watchdog, paging and the on-call contacts are the real ones,
so the team rehearses what it will really do. What the incident would send people, the
public or a regulator goes to a sandbox of its own (``Settings.outside_world``: the outbox
and site under ``home/exercises/KEY``); every staff message says EXERCISE. Its clock can be
moved on (the anchors move back, as if hours had passed, and the deadlines with them), and
it ends with a scored report: time to triage, to approval, to the first notice, and each
deadline met or missed. Each of these is on the incident's timeline.

A scenario is a YAML file (``examples/exercises/``): what happened, who is affected (a
number of generated people on reserved example domains), how it opens (an alert to
triage, or declared), and the notice texts.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import func, select

from breachflow import shipped
from breachflow.flows.assess.assessment import assess
from breachflow.flows.assess.subjects import import_subjects
from breachflow.flows.watchdog import DeadlineState, deadline_statuses
from breachflow.models import commands
from breachflow.models.base import utcnow
from breachflow.models.errors import InvalidInput
from breachflow.models.incident import Incident, Severity
from breachflow.models.notice import parse_notice_texts
from breachflow.models.notification import Notification
from breachflow.models.runtime import database, settings, vault
from breachflow.models.timeline import EventKind, TimelineEvent, record

#: The anchors a fast-forward moves back: the clocks that run from them move on.
ANCHORS = (
    "detected_at", "discovered_at", "aware_at", "determined_at", "contained_at",
    "handling_ended_at", "classified_major_at", "corrective_measure_at",
)  # fmt: skip


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(min_length=1, max_length=5000)
    severity: Severity
    data_categories: list[str] = Field(min_length=1, max_length=20)
    #: ``alert``: it opens suspected, for on-call to triage; ``declared``: as a person would.
    opened_by: Literal["alert", "declared"] = "alert"
    detected_hours_ago: float = Field(1.0, ge=0, le=24 * 90)
    people: int = Field(200, ge=1, le=100_000)
    seed: int = 2026
    #: The notice texts, beside the scenario file (default: the example notice).
    notice: str | None = None


def load(path: Path) -> tuple[Scenario, dict[str, Any]]:
    """The scenario and its notice texts (YAML), or ``InvalidInput`` saying what is wrong."""
    try:
        scenario = Scenario.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except OSError as exc:
        raise InvalidInput(f"cannot read the scenario {path}: {exc.strerror}") from None
    except (yaml.YAMLError, ValidationError) as exc:
        raise InvalidInput(f"{path} is not a scenario: {exc}") from None

    notice = (
        path.parent / scenario.notice if scenario.notice else shipped("examples") / "notice.yaml"
    )
    try:
        texts = yaml.safe_load(notice.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidInput(f"cannot read the scenario's notice {notice}: {exc}") from None
    return scenario, texts


def start(scenario: Scenario, texts: dict[str, Any], people_csv: Path, actor: str) -> str:
    """Open the exercise's incident (suspected or declared), with its notice texts and its
    generated people; returns its key."""
    now = utcnow()
    detected = now - timedelta(hours=scenario.detected_hours_ago)
    keys = vault()  # before the transaction: it checks the key in one of its own
    config = settings()
    with database().unit_of_work() as session:
        incident = commands.declare(
            session,
            title=f"EXERCISE: {scenario.name}",
            description=scenario.description,
            severity=scenario.severity,
            detected_at=detected,
            aware_at=now if scenario.opened_by == "declared" else detected,
            data_categories=scenario.data_categories,
            actor=actor,
            suspected=scenario.opened_by == "alert",
            exercise=True,
        )
        record(
            session,
            incident,
            EventKind.EXERCISE_STARTED,
            actor,
            {"scenario": scenario.name, "people": scenario.people, "opened_by": scenario.opened_by},
        )
        commands.set_notice(session, incident, parse_notice_texts(texts), actor)
        import_subjects(
            session,
            incident,
            people_csv,
            actor=actor,
            vault=keys,
            default_locale=config.default_locale,
            rejects_dir=config.home / "exercises" / incident.key / "rejects",
        )
        return incident.key


def fast_forward(key: str, hours: float, actor: str) -> dict[str, Any]:
    """Move the exercise's clock on by ``hours``: its anchors move back, the assessment is
    made again, so deadlines come closer and the watchdog sees them fall due."""
    if not 0 < hours <= 24 * 90:
        raise InvalidInput("fast-forward by more than 0 and at most 2,160 hours (90 days)")
    with database().unit_of_work() as session:
        incident = _exercise(session, key)
        shift = timedelta(hours=hours)
        changes = {
            name: getattr(incident, name) - shift
            for name in ANCHORS
            if getattr(incident, name) is not None
        }
        commands.update_incident(session, incident, actor, changes)
        record(session, incident, EventKind.EXERCISE_FAST_FORWARDED, actor, {"hours": hours})
        if incident.assessed_at is not None:
            assess(session, incident, actor, settings())
        return {"incident": incident.key, "hours": hours, "moved": sorted(changes)}


def end(key: str, actor: str) -> Path:
    """The scored report (JSON and Markdown under home/exercises/KEY/), on the timeline
    with its SHA-256; returns the Markdown's path."""
    config = settings()
    folder = config.home / "exercises" / key.upper()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    with database().unit_of_work() as session:
        incident = _exercise(session, key, lock=True)
        score = _score(session, incident)
        body = json.dumps(score, indent=1, default=str, ensure_ascii=False).encode()
        (folder / "report.json").write_bytes(body)
        markdown = folder / "report.md"
        markdown.write_text(_markdown(score), encoding="utf-8")
        record(
            session,
            incident,
            EventKind.EXERCISE_ENDED,
            actor,
            {
                "report": str(markdown),
                "sha256": hashlib.sha256(body).hexdigest(),
                **score["summary"],
            },
        )
    return markdown


def _exercise(session: Any, key: str, *, lock: bool = False) -> Incident:
    incident = commands.get_incident(session, key, lock=lock)
    if not incident.exercise:
        raise InvalidInput(f"{incident.key} is not an exercise: its clock is the real one")
    return incident


def _score(session: Any, incident: Incident) -> dict[str, Any]:
    events = session.scalars(
        select(TimelineEvent)
        .where(TimelineEvent.incident_id == incident.id)
        .order_by(TimelineEvent.seq)
    ).all()

    def first(kind: EventKind, **payload: object) -> datetime | None:
        for event in events:
            if event.kind == kind and all(event.payload.get(k) == v for k, v in payload.items()):
                return event.recorded_at
        return None

    started = first(EventKind.EXERCISE_STARTED) or incident.created_at
    triaged = first(EventKind.INCIDENT_TRIAGED) or (
        started if incident.state != "suspected" else None
    )
    approved = first(EventKind.APPROVAL_GIVEN, step="notification-approve-notice")
    first_notice = session.scalar(
        select(func.min(Notification.sent_at)).where(Notification.incident_id == incident.id)
    )
    forwarded = sum(
        float(e.payload.get("hours", 0))
        for e in events
        if e.kind == EventKind.EXERCISE_FAST_FORWARDED
    )
    deadlines = [
        {
            "deadline": status.name,
            "due_at": status.obligation.deadline,
            "status": str(status.state),
            "met_at": status.met_at,
        }
        for status in deadline_statuses(session, incident)
    ]
    missed = [
        d for d in deadlines if d["status"] in (DeadlineState.OVERDUE, DeadlineState.MET_LATE)
    ]
    met = [d for d in deadlines if d["status"] == DeadlineState.MET]

    def after(moment: datetime | None) -> float | None:
        return round((moment - started).total_seconds() / 60, 1) if moment else None

    return {
        "incident": incident.key,
        "title": incident.title,
        "started_at": started,
        "ended_at": utcnow(),
        "fast_forwarded_hours": forwarded,
        "summary": {
            "minutes_to_triage": after(triaged),
            "minutes_to_approval": after(approved),
            "minutes_to_first_notice": after(first_notice),
            "deadlines_met": len(met),
            "deadlines_missed": len(missed),
            "deadlines_open": len(deadlines) - len(met) - len(missed),
        },
        "deadlines": deadlines,
    }


def _markdown(score: dict[str, Any]) -> str:
    s = score["summary"]

    def shown(minutes: float | None) -> str:
        return f"{minutes:g} min" if minutes is not None else "not reached"

    lines = [
        f"# EXERCISE report: {score['title']}",
        "",
        f"{score['incident']}, started {score['started_at']:%Y-%m-%d %H:%M} UTC, ended"
        f" {score['ended_at']:%Y-%m-%d %H:%M} UTC; the clock was moved on by"
        f" {score['fast_forwarded_hours']:g} h. Times are from the start, in real minutes.",
        "",
        "| measure | result |",
        "| --- | --- |",
        f"| time to triage | {shown(s['minutes_to_triage'])} |",
        f"| time to the notice approval | {shown(s['minutes_to_approval'])} |",
        f"| time to the first notice (sandbox) | {shown(s['minutes_to_first_notice'])} |",
        "| deadlines met / missed / still open | "
        f"{s['deadlines_met']} / {s['deadlines_missed']} / {s['deadlines_open']} |",
        "",
        "| deadline | due | would have been |",
        "| --- | --- | --- |",
    ]
    for d in score["deadlines"]:
        due = f"{d['due_at']:%Y-%m-%d %H:%M} UTC" if d["due_at"] else "no fixed deadline"
        lines.append(f"| {d['deadline']} | {due} | {d['status']} |")
    return "\n".join(lines) + "\n"
