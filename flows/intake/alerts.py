"""Alerts in: from a monitoring system to a suspected (or declared) incident, once.

Alerts of one fingerprint from one source form a group (``models/alert.py``). The first
firing alert of a group opens an incident: suspected, for a person to triage (``breach
confirm`` / ``breach dismiss``), or declared with the response started, when an alert rule
says so (``BREACH_ALERT_RULES_FILE``, see ``examples/alert-rules.yaml``). Every further
alert of the group is counted on it while its incident is open; a resolved alert is
recorded on the incident and closes nothing. The group row is created if missing and
then locked, so two requests of a storm cannot both open an incident.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from breachflow.models import commands
from breachflow.models.alert import AlertGroup, SeenSignature
from breachflow.models.base import utcnow
from breachflow.models.errors import BreachError, InvalidInput, ProviderUnavailable
from breachflow.models.incident import Incident, IncidentState, Severity
from breachflow.models.instants import Instant
from breachflow.models.runtime import database, settings
from breachflow.models.timeline import EventKind, record

#: A signed request is accepted this long either side of its timestamp, and only once.
REPLAY_WINDOW = timedelta(minutes=5)
#: How long one alert occurrence (an Alertmanager alert's fingerprint, status and start) is
#: remembered: its re-sends (a retried batch, Alertmanager's repeat_interval) count once.
OCCURRENCE_MEMORY = timedelta(days=7)
FINISHED = (IncidentState.CLOSED, IncidentState.DISMISSED)


class AlertRule(BaseModel):
    """When an alert's labels include all of ``match``: what to do with it."""

    model_config = ConfigDict(extra="forbid")

    match: dict[str, str] = Field(min_length=1)
    action: Literal["suspect", "declare"] = "suspect"
    severity: Severity | None = None
    data_categories: list[str] = []


class Alert(BaseModel):
    """One alert, whatever sent it: the generic intake's JSON body, or one alert of an
    Alertmanager notification."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=300)
    description: str | None = Field(default=None, max_length=5000)
    status: Literal["firing", "resolved"] = "firing"
    severity: Severity | None = None
    fingerprint: str | None = Field(default=None, min_length=1, max_length=128)
    labels: dict[str, str] = Field(default_factory=dict, max_length=64)
    #: When the problem began, by the sender's clock; a real instant or nothing.
    starts_at: Instant | None = None

    @field_validator("fingerprint")
    @classmethod
    def _not_ours(cls, value: str | None) -> str | None:
        if value == STORM:
            raise ValueError(f"{STORM} is the fingerprint of a source's storm group")
        return value

    def key(self) -> str:
        """The given fingerprint, or one made of the title and labels."""
        if self.fingerprint:
            return self.fingerprint
        canonical = json.dumps([self.title, sorted(self.labels.items())], ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Intake:
    fingerprint: str
    incident: str | None
    action: Literal["suspected", "declared", "counted", "resolved", "grouped"]
    received: int  # alerts of this group so far


class ReplayedAlert(BreachError):
    """This signed request was received before."""


def receive(
    source: str,
    alert: Alert,
    signature: str | None = None,
    remember_for: timedelta = 2 * REPLAY_WINDOW,
) -> Intake:
    """File one alert; returns what it did. Starts the response when a rule declares.

    ``signature``: the request's, or the alert occurrence's (``occurrence``), claimed in
    the same transaction and kept ``remember_for``, so a replay or a re-send is refused
    (``ReplayedAlert``) and a refused alert claims nothing.
    """
    fingerprint = alert.key()
    with database().unit_of_work() as session:
        if signature is not None:
            _claim(session, signature, remember_for)
        counted = _count_if_open(session, source, fingerprint) if alert.status == "firing" else None
        if counted is not None:
            return counted
        group = _locked_group(session, source, fingerprint, alert)
        group.received += 1
        group.last_seen = utcnow()
        incident = session.get(Incident, group.incident_id) if group.incident_id else None
        open_incident = incident if incident and incident.state not in FINISHED else None
        actor = f"alert:{source}"
        if alert.status == "resolved":
            group.status, group.resolved_at = "resolved", utcnow()
            if open_incident is not None:
                record(session, open_incident, EventKind.ALERT_RESOLVED, actor, _about(group))
            action = "resolved"
        elif open_incident is not None:
            if group.status == "resolved":  # firing again
                record(session, open_incident, EventKind.ALERT_RECEIVED, actor, _about(group))
            group.status = "firing"
            action = "counted"
            _counted_in_a_storm(session)
        elif (storm := _storm(session, source, actor)) is not None:
            open_incident = storm
            group.incident_id, group.status, group.title = storm.id, "firing", alert.title
            record(session, storm, EventKind.ALERT_RECEIVED, actor, _about(group))
            action = "grouped"
        else:
            rule = matching_rule(alert.labels)
            open_incident = _open(session, source, alert, rule, fingerprint, actor)
            group.incident_id, group.status = open_incident.id, "firing"
            group.title = alert.title
            record(session, open_incident, EventKind.ALERT_RECEIVED, actor, _about(group))
            action = "declared" if rule and rule.action == "declare" else "suspected"
        result = Intake(
            fingerprint,
            open_incident.key if open_incident else None,
            action,  # type: ignore[arg-type]
            group.received,
        )
    if result.action == "declared" and result.incident:
        _start_response(result.incident, source, fingerprint)
    return result


def _storm(session: Session, source: str, actor: str) -> Incident | None:
    """Past ``BREACH_ALERT_INCIDENTS_PER_HOUR`` incidents opened by ``source`` in the last
    hour, the incident its further new alerts are grouped on (suspected, opened once per
    storm), else None. A storm of distinct fingerprints, broken or hostile, once opened a
    thousand incidents in five seconds."""
    cap = settings().alert_incidents_per_hour
    if _is_postgresql(session):  # counted and opened by one request of a source at a time
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:s))"), {"s": source})
    opened = session.scalar(
        select(func.count()).where(
            Incident.declared_by == actor, Incident.created_at >= utcnow() - timedelta(hours=1)
        )
    )
    if (opened or 0) < cap:
        return None
    title = f"Alert storm from {source}: over {cap} incidents in an hour"
    group = _locked_group(session, source, STORM, Alert(title=title))
    group.received += 1
    group.last_seen = utcnow()
    incident = session.get(Incident, group.incident_id) if group.incident_id else None
    if incident is None or incident.state in FINISHED:
        described = Alert(title=title, description=STORM_DESCRIPTION.format(cap=cap))
        incident = _open(session, source, described, None, STORM, actor)
        group.incident_id, group.status, group.title = incident.id, "firing", title
        record(session, incident, EventKind.ALERT_STORM, actor, {"source": source, "cap": cap})
    return incident


#: The fingerprint of a source's storm group, which no sender's fingerprint can be.
STORM = "(storm)"
STORM_DESCRIPTION = (
    "This source opened more than {cap} incidents in an hour; the alerts with new"
    " fingerprints after that are grouped on this incident (each one on its timeline) for a"
    " person to triage. Check the source: a broken rule, a flood, or a stolen secret."
)


def _start_response(incident_key: str, source: str, fingerprint: str) -> None:
    """Start the declared incident's response. The alert is already recorded, so a start that
    cannot be made goes on the timeline for a person to act on, not back to the sender
    (whose retry would only be counted as a duplicate)."""
    from breachflow.flows.deployments import start_response

    try:
        start_response(incident_key, f"alert:{source}", f"{incident_key}:declared:{fingerprint}")
    except (InvalidInput, ProviderUnavailable) as exc:
        with database().unit_of_work() as session:
            record(
                session,
                commands.get_incident(session, incident_key),
                EventKind.RUN_FAILED,
                f"alert:{source}",
                {"reason": f"the response could not start: {exc}"},
            )


def _count_if_open(session: Session, source: str, fingerprint: str) -> Intake | None:
    """The storm's common case in one statement: a firing alert of a group whose incident
    is open is counted, and the group's row is locked only from here to the commit."""
    open_incidents = select(Incident.id).where(Incident.state.not_in(FINISHED))
    row = session.execute(
        update(AlertGroup)
        .where(
            AlertGroup.source == source,
            AlertGroup.fingerprint == fingerprint,
            AlertGroup.status == "firing",
            AlertGroup.incident_id.in_(open_incidents),
        )
        .values(received=AlertGroup.received + 1, last_seen=utcnow())
        .returning(AlertGroup.incident_id, AlertGroup.received)
    ).first()
    if row is None:
        return None
    _counted_in_a_storm(session)
    key = session.scalar(select(Incident.key).where(Incident.id == row.incident_id))
    return Intake(fingerprint, key, "counted", row.received)


def _counted_in_a_storm(session: Session) -> None:
    """One more alert of an open incident only adds to a count: its commit need not wait
    for the disk (PostgreSQL's asynchronous commit; a crash may lose the last few counts,
    never an incident). In a storm every request of the group takes the group's row lock
    in turn, so this is what sets the storm's pace."""
    if _is_postgresql(session):
        session.execute(text("SET LOCAL synchronous_commit TO OFF"))


def occurrence(source: str, alert: Alert, event: str = "") -> str:
    """What makes one alert occurrence: its source, fingerprint, status and start, and the
    sender's own id of the event where it has one (a CloudEvent's source and id). A sender
    that re-sends it (a retry, a reminder) sends the same occurrence."""
    start = alert.starts_at.isoformat() if alert.starts_at else ""
    fields = ("occurrence", source, alert.key(), alert.status, start)
    parts = "\0".join((*fields, event) if event else fields)  # as before events had ids
    return hashlib.sha256(parts.encode()).hexdigest()


def _claim(session: Session, signature: str, remember_for: timedelta) -> None:
    now = utcnow()
    postgresql = _is_postgresql(session)
    insert = postgresql_insert if postgresql else sqlite_insert
    _sweep(session, now, postgresql=postgresql)
    claimed = session.scalar(
        insert(SeenSignature)
        .values(signature=signature, expires_at=now + remember_for)
        .on_conflict_do_nothing(index_elements=["signature"])
        .returning(SeenSignature.signature)
    )
    if claimed is None:
        raise ReplayedAlert("this signed alert was received before")


def _is_postgresql(session: Session) -> bool:
    """Upserts and asynchronous commits are spelled per backend."""
    return session.get_bind().dialect.name == "postgresql"


def _sweep(session: Session, now: datetime, *, postgresql: bool) -> None:
    """Forget expired signatures, a few at a time; rows another request is already
    deleting are skipped, so concurrent alerts never queue behind each other here."""
    expired = select(SeenSignature.signature).where(SeenSignature.expires_at < now).limit(100)
    if postgresql:
        expired = expired.with_for_update(skip_locked=True)
    session.execute(delete(SeenSignature).where(SeenSignature.signature.in_(expired)))


def _locked_group(session: Session, source: str, fingerprint: str, alert: Alert) -> AlertGroup:
    """The group, created if missing, locked until the transaction ends."""
    insert = postgresql_insert if _is_postgresql(session) else sqlite_insert
    session.execute(
        insert(AlertGroup)
        .values(
            source=source,
            fingerprint=fingerprint,
            title=alert.title,
            labels=alert.labels,
            received=0,
            status="firing",
            first_seen=utcnow(),
            last_seen=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["source", "fingerprint"])
    )
    return session.scalars(
        select(AlertGroup)
        .where(AlertGroup.source == source, AlertGroup.fingerprint == fingerprint)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()


def _open(
    session: Session,
    source: str,
    alert: Alert,
    rule: AlertRule | None,
    fingerprint: str,
    actor: str,
) -> Incident:
    now = utcnow()
    detected = min(alert.starts_at, now) if alert.starts_at else now
    return commands.declare(
        session,
        title=alert.title,
        description=alert.description or f"Opened by an alert from {source} ({fingerprint}).",
        severity=(rule.severity if rule and rule.severity else None)
        or alert.severity
        or Severity.MEDIUM,
        detected_at=detected,
        aware_at=now,
        data_categories=rule.data_categories if rule else [],
        actor=actor,
        suspected=not (rule and rule.action == "declare"),
    )


def _about(group: AlertGroup) -> dict[str, object]:
    return {
        "source": group.source,
        "fingerprint": group.fingerprint,
        "title": group.title,
        "labels": group.labels,
        "status": group.status,
        "received": group.received,
    }


def matching_rule(labels: dict[str, str]) -> AlertRule | None:
    """The first rule whose labels all match, or None (the alert opens a suspected one)."""
    return next(
        (rule for rule in alert_rules() if all(labels.get(k) == v for k, v in rule.match.items())),
        None,
    )


def alert_rules() -> list[AlertRule]:
    path = settings().alert_rules_file
    return _load_rules(path) if path else []


@cache
def _load_rules(path: Path) -> list[AlertRule]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or []
        return [AlertRule.model_validate(item) for item in raw]
    except (OSError, yaml.YAMLError, ValidationError, TypeError) as exc:
        raise InvalidInput(f"alert rules {path}: {exc}") from None
