"""The append-only, hash-chained record of everything that happened to an incident.

Each event's hash covers its content and the previous event's hash (SHA-256 over a canonical
JSON encoding), so editing, inserting or deleting any stored event breaks the chain from
that point on; the incident keeps the head hash and length, so a deleted tail shows too.
There is no update or delete path: the ORM refuses, and the database triggers installed by
the migration refuse as well.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, UniqueConstraint, event, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.base import Base, UTCDateTime, utcnow
from models.incident import Incident, IncidentState

GENESIS = "0" * 64


class EventKind(StrEnum):
    INCIDENT_DECLARED = "incident.declared"
    INCIDENT_SUSPECTED = "incident.suspected"
    INCIDENT_TRIAGED = "incident.triaged"
    ALERT_RECEIVED = "alert.received"
    ALERT_RESOLVED = "alert.resolved"
    PUBLIC_REPORT_ATTACHED = "public_report.attached"
    STATE_CHANGED = "incident.state_changed"
    NOTICE_SET = "notice.set"
    SUBJECTS_IMPORTED = "subjects.imported"
    RUN_STARTED = "run.started"
    RUN_FINISHED = "run.finished"
    RUN_FAILED = "run.failed"
    STEP_STARTED = "step.started"
    STEP_FINISHED = "step.finished"
    ASSESSMENT_RECORDED = "assessment.recorded"
    POPULATION_ASSESSED = "population.assessed"
    INCIDENT_UPDATED = "incident.updated"
    NOTICES_QUEUED = "notices.queued"
    NOTICE_BATCH_SENT = "notices.batch_sent"
    NOTICES_FINISHED = "notices.finished"
    ANNOUNCEMENT_DECIDED = "announcement.decided"
    ANNOUNCEMENT_PUBLISHED = "announcement.published"
    ANNOUNCEMENT_PUBLISH_FAILED = "announcement.publish_failed"
    REPORT_WRITTEN = "report.written"
    REPORT_HELD_LATE = "report.held_late"
    REPORT_DELAY_REASON = "report.delay_reason_given"
    REPORT_SUBMITTED = "report.submitted"
    REPORT_SUBMIT_FAILED = "report.submit_failed"
    REPORT_ACKNOWLEDGED = "report.acknowledged"
    DEADLINE_WARNING = "deadline.warning"
    STEP_DONE = "runbook.step_done"
    APPROVAL_GIVEN = "approval.given"
    AWAITING_APPROVAL = "approval.awaited"
    PURGE_SCHEDULED = "contacts.purge_scheduled"
    CONTACTS_PURGED = "contacts.purged"


class TimelineEvent(Base):
    __tablename__ = "timeline_events"
    __table_args__ = (UniqueConstraint("incident_id", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    def computed_hash(self) -> str:
        body = {
            "incident_id": self.incident_id,
            "seq": self.seq,
            "occurred_at": _canonical_time(self.occurred_at),
            "recorded_at": _canonical_time(self.recorded_at),
            "actor": self.actor,
            "kind": self.kind,
            "payload": self.payload,
            "prev_hash": self.prev_hash,
        }
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()


def _canonical_time(moment: datetime) -> str:
    """UTC, to the microsecond: what every backend gives back, whatever offset came in."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


@event.listens_for(TimelineEvent, "before_update")
@event.listens_for(TimelineEvent, "before_delete")
def _refuse_change(mapper: object, connection: object, target: TimelineEvent) -> None:
    raise PermissionError("timeline events are append-only")


def record(
    session: Session,
    incident: Incident,
    kind: EventKind,
    actor: str,
    payload: dict[str, Any] | None = None,
    occurred_at: datetime | None = None,
) -> TimelineEvent:
    """Append an event in the caller's transaction, so it commits with the change it records.

    The incident row is locked (``FOR UPDATE`` where the database has it) so concurrent
    writers append one after the other and the chain stays linear.
    """
    length, head = session.execute(
        select(Incident.timeline_length, Incident.timeline_head)
        .where(Incident.id == incident.id)
        .with_for_update()
    ).one()
    now = utcnow()
    entry = TimelineEvent(
        incident_id=incident.id,
        seq=length + 1,
        occurred_at=(occurred_at or now).astimezone(UTC),
        recorded_at=now,
        actor=actor,
        kind=str(kind),
        payload=json.loads(json.dumps(payload or {}, default=str)),
        prev_hash=head or GENESIS,
    )
    entry.hash = entry.computed_hash()
    session.add(entry)
    incident.timeline_head = entry.hash
    incident.timeline_length = entry.seq
    session.flush()
    return entry


def advance(
    session: Session, incident: Incident, target: IncidentState, actor: str, **details: Any
) -> None:
    """Change the incident's state and record it: the only way states should change."""
    previous = incident.transition(target)
    record(
        session,
        incident,
        EventKind.STATE_CHANGED,
        actor,
        {"from": str(previous), "to": str(target), **details},
    )


@dataclass(frozen=True)
class ChainCheck:
    ok: bool
    events: int
    head: str | None
    broken_at: int | None = None  # seq of the first event that does not verify
    reason: str | None = None


def verify_chain(session: Session, incident: Incident) -> ChainCheck:
    """Recompute every hash from the first event on and report the first break."""
    events = session.scalars(
        select(TimelineEvent)
        .where(TimelineEvent.incident_id == incident.id)
        .order_by(TimelineEvent.seq)
    )
    previous, count = GENESIS, 0
    for count, entry in enumerate(events, start=1):
        if entry.seq != count:
            return ChainCheck(False, count, None, count, f"event {count} is missing")
        if entry.prev_hash != previous:
            return ChainCheck(False, count, None, entry.seq, "does not link to the event before")
        if entry.computed_hash() != entry.hash:
            return ChainCheck(False, count, None, entry.seq, "content does not match its hash")
        previous = entry.hash
    if count != incident.timeline_length or (count and previous != incident.timeline_head):
        return ChainCheck(
            False,
            count,
            None,
            count + 1,
            f"incident records {incident.timeline_length} events; {count} found",
        )
    return ChainCheck(True, count, previous if count else None)
