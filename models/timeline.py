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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy import JSON, ForeignKey, Integer, String, UniqueConstraint, event, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from breachflow.models.base import Base, UTCDateTime, utcnow
from breachflow.models.db import STAGED
from breachflow.models.incident import Incident, IncidentState

GENESIS = "0" * 64


class EventKind(StrEnum):
    INCIDENT_DECLARED = "incident.declared"
    INCIDENT_SUSPECTED = "incident.suspected"
    INCIDENT_TRIAGED = "incident.triaged"
    ALERT_RECEIVED = "alert.received"
    ALERT_RESOLVED = "alert.resolved"
    #: An alert source's secret was rotated or revoked (on the incidents it opened).
    ALERT_SOURCE_CHANGED = "alert_source.changed"
    #: A source opened more incidents in an hour than allowed: the rest are grouped here.
    ALERT_STORM = "alert.storm"
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
    SHARDS_SUBMITTED = "notices.shards_submitted"
    SHARDS_ABANDONED = "notices.shards_abandoned"
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
    #: A person's record, contact details included, shown to a named key (compliance pages).
    CONTACTS_VIEWED = "contacts.viewed"
    EXPORT_WRITTEN = "export.written"
    #: The ledger's counts moved since the timeline last gave them (provider reports).
    NOTIFICATIONS_REPORTED = "notifications.reported"
    #: The forecast of when everyone is told changed its verdict against the deadline.
    FORECAST_CHANGED = "notifications.forecast_changed"
    #: Notify waits: letters are with the mailing vendor, who has not said they were mailed.
    AWAITING_VENDOR = "letters.awaiting_returns"
    #: A mailing vendor's return file was imported: counts of what it moved, no contacts.
    LETTER_RETURNS_IMPORTED = "letters.returns_imported"
    #: A tabletop exercise (flows/intake/exercise.py): started from a scenario, its clock
    #: moved on (the anchors moved back), ended with its scored report.
    EXERCISE_STARTED = "exercise.started"
    EXERCISE_FAST_FORWARDED = "exercise.fast_forwarded"
    EXERCISE_ENDED = "exercise.ended"


#: What an event's hash covers, besides the hash itself. An exported event carries exactly
#: these fields and ``hash``, so anyone can recompute it with :func:`event_hash`.
HASHED_FIELDS = (
    "incident_id",
    "seq",
    "occurred_at",
    "recorded_at",
    "actor",
    "kind",
    "payload",
    "prev_hash",
)


def event_hash(fields: Mapping[str, Any]) -> str:
    """SHA-256 over the canonical JSON of an event's :data:`HASHED_FIELDS` (times already
    in :func:`canonical_time` form).

    The one definition of the encoding: the database check and the offline check of an
    exported bundle both call it, so the two can never disagree about what a hash means.
    """
    body = {name: fields[name] for name in HASHED_FIELDS}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


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

    def hashed_fields(self) -> dict[str, Any]:
        """The event as its hash sees it: times in canonical form."""
        return {
            "incident_id": self.incident_id,
            "seq": self.seq,
            "occurred_at": canonical_time(self.occurred_at),
            "recorded_at": canonical_time(self.recorded_at),
            "actor": self.actor,
            "kind": self.kind,
            "payload": self.payload,
            "prev_hash": self.prev_hash,
        }

    def computed_hash(self) -> str:
        return event_hash(self.hashed_fields())

    def exported(self) -> dict[str, Any]:
        """The event as an export carries it: what was hashed, and the hash stored."""
        return {**self.hashed_fields(), "hash": self.hash}


def brief(payload: dict[str, Any], limit: int) -> str:
    """An event's details as ``key=value, …`` on one line, cut at ``limit`` characters, for
    tables (the terminal, the PDF export); the JSON forms carry the whole payload."""
    text = ", ".join(
        f"{name}={value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)}"
        for name, value in payload.items()
    )
    return text if len(text) <= limit else text[: limit - 1] + "…"


def canonical_time(moment: datetime) -> str:
    """UTC, to the microsecond: what every backend gives back, whatever offset came in."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


@event.listens_for(TimelineEvent, "before_update")
@event.listens_for(TimelineEvent, "before_delete")
def _refuse_change(mapper: object, connection: object, target: TimelineEvent) -> None:
    raise PermissionError("timeline events are append-only")


#: Events that end a stage: once committed, the timeline is checkpointed (models/anchor.py).
STAGES = frozenset(
    {EventKind.INCIDENT_DECLARED, EventKind.INCIDENT_SUSPECTED, EventKind.STATE_CHANGED}
)


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
    if kind in STAGES:
        stage = str((payload or {}).get("to", "declared"))
        session.info.setdefault(STAGED, {})[incident.id] = stage
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


class ChainedEvent(Protocol):
    """What a chain check needs of an event: a stored row or one read from an export."""

    @property
    def seq(self) -> int: ...
    @property
    def prev_hash(self) -> str: ...
    @property
    def hash(self) -> str: ...
    def computed_hash(self) -> str: ...


@dataclass(frozen=True)
class DetachedEvent:
    """An event read back from an export (no database): its hashed fields and its hash."""

    fields: Mapping[str, Any]
    hash: str

    @property
    def seq(self) -> int:
        return int(self.fields["seq"])

    @property
    def prev_hash(self) -> str:
        return str(self.fields["prev_hash"])

    def computed_hash(self) -> str:
        return event_hash(self.fields)

    @classmethod
    def from_export(cls, data: object) -> DetachedEvent:
        """Check the shape first, so a mangled export is reported, not a ``KeyError``."""
        if not isinstance(data, dict):
            raise ValueError("is not a JSON object")
        missing = [name for name in (*HASHED_FIELDS, "hash") if name not in data]
        if missing:
            raise ValueError(f"lacks {', '.join(missing)}")
        if type(data["seq"]) is not int:
            raise ValueError("has a seq that is not a whole number")
        if not all(isinstance(data[name], str) for name in ("prev_hash", "hash")):
            raise ValueError("has a hash that is not text")
        return cls({name: data[name] for name in HASHED_FIELDS}, data["hash"])


def check_chain(
    events: Iterable[ChainedEvent],
    length: int,
    head: str | None,
    *,
    recorded_by: str = "incident",
) -> ChainCheck:
    """Recompute every hash from the first event on and report the first break.

    ``length`` and ``head`` are what ``recorded_by`` (the incident row, an export's
    manifest) says the chain ends with, so a deleted tail shows too.
    """
    previous, count = GENESIS, 0
    for count, entry in enumerate(events, start=1):
        if entry.seq != count:
            return ChainCheck(False, count, None, count, f"event {count} is missing")
        if entry.prev_hash != previous:
            return ChainCheck(False, count, None, entry.seq, "does not link to the event before")
        if entry.computed_hash() != entry.hash:
            return ChainCheck(False, count, None, entry.seq, "content does not match its hash")
        previous = entry.hash
    if count != length:
        return ChainCheck(
            False, count, None, count + 1, f"{recorded_by} records {length} events; {count} found"
        )
    if count and previous != head:
        return ChainCheck(
            False,
            count,
            None,
            count,
            f"{recorded_by} records head {head}; the chain ends at {previous}",
        )
    return ChainCheck(True, count, previous if count else None)


def events_of(
    session: Session, incident: Incident, up_to: int | None = None
) -> Iterable[TimelineEvent]:
    """The incident's events in order (up to event ``up_to``, when given)."""
    query = select(TimelineEvent).where(TimelineEvent.incident_id == incident.id)
    if up_to is not None:
        query = query.where(TimelineEvent.seq <= up_to)
    return session.scalars(query.order_by(TimelineEvent.seq))


def verify_chain(session: Session, incident: Incident) -> ChainCheck:
    """Recompute the incident's stored chain against the length and head on its row."""
    return check_chain(
        events_of(session, incident), incident.timeline_length, incident.timeline_head
    )
