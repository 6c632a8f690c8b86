"""The incident, its states, and the one table of transitions between them."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Boolean, Integer, String, Text
from sqlalchemy import false as sa_false
from sqlalchemy.orm import Mapped, mapped_column

from breachflow.models.base import Base, UTCDateTime, utcnow
from breachflow.models.errors import IllegalTransition


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class IncidentState(StrEnum):
    SUSPECTED = "suspected"  # opened by an alert, waiting for triage
    DECLARED = "declared"
    ASSESSED = "assessed"
    NOTIFYING = "notifying"
    NOTIFIED = "notified"
    #: Everyone notified and the reports written; open while an obligation is: a report to
    #: file, a report whose clock has not started, an announcement to keep up, a sign-off.
    REPORTING = "reporting"
    CLOSED = "closed"
    DISMISSED = "dismissed"  # triaged: not a breach


S = IncidentState
#: Every legal move of an incident. The flow's steps are idempotent because each one
#: checks where this table says the incident stands before doing anything.
TRANSITIONS: dict[IncidentState, frozenset[IncidentState]] = {
    S.SUSPECTED: frozenset({S.DECLARED, S.DISMISSED}),
    S.DECLARED: frozenset({S.ASSESSED}),
    S.ASSESSED: frozenset({S.NOTIFYING}),
    S.NOTIFYING: frozenset({S.NOTIFIED}),
    S.NOTIFIED: frozenset({S.REPORTING}),
    S.REPORTING: frozenset({S.CLOSED}),
    S.CLOSED: frozenset(),
    S.DISMISSED: frozenset(),
}
#: Position of each state along the response, to ask "has the incident got past X?". A
#: dismissed incident counts as past every step: there is nothing left to do for it.
ORDER = {state: index for index, state in enumerate(TRANSITIONS)}


class Incident(Base):
    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(32), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text)
    severity: Mapped[Severity] = mapped_column(String(16))
    state: Mapped[IncidentState] = mapped_column(String(32), default=IncidentState.DECLARED)
    data_categories: Mapped[list[str]] = mapped_column(JSON, default=list)
    detected_at: Mapped[datetime] = mapped_column(UTCDateTime())
    aware_at: Mapped[datetime] = mapped_column(UTCDateTime())
    contained_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The other clock anchors the law runs deadlines from (see rules/).
    discovered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    determined_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    assessed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    handling_ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: DORA's clock: when the incident was classified as major (Art 19, RTS 2025/301).
    classified_major_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: The CRA's clock for a vulnerability's final report: a corrective measure available.
    corrective_measure_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # What the rules test besides the people: None = not assessed yet.
    risk: Mapped[str | None] = mapped_column(String(8), nullable=True)
    encrypted_key_safe: Mapped[bool] = mapped_column(Boolean, default=False)
    improper_purpose: Mapped[bool] = mapped_column(Boolean, default=False)
    material: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    policy_deadline: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: The notification window: the earliest fixed deadline for telling individuals.
    notice_deadline: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: The order channels are tried in for each person, when this incident needs another
    #: than its policy's (``breach update --channels``); None means the policy's.
    channel_chain: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    declared_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: When the contact details of its people are due to be deleted, and when they were.
    purge_after: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: Hash and length of the timeline's last event: a deleted tail shows up as a mismatch.
    timeline_head: Mapped[str | None] = mapped_column(String(64), nullable=True)
    timeline_length: Mapped[int] = mapped_column(Integer, default=0)
    #: A tabletop exercise (``breach exercise``): what it would send people, the public or
    #: a regulator goes to a sandbox of its own; staff are told, marked EXERCISE.
    exercise: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sa_false())

    def transition(self, target: IncidentState) -> IncidentState:
        """Move to ``target`` or raise :class:`IllegalTransition`; returns the old state."""
        current = IncidentState(self.state)
        if target not in TRANSITIONS[current]:
            allowed = ", ".join(sorted(TRANSITIONS[current])) or "none: it is final"
            raise IllegalTransition(
                f"{self.key} is {current}; it cannot become {target} (allowed next: {allowed})"
            )
        self.state = target
        return current

    def has_reached(self, state: IncidentState) -> bool:
        return ORDER[IncidentState(self.state)] >= ORDER[state]

    def anchors(self) -> dict[str, datetime | None]:
        """The clock anchors by the names the rules use."""
        return {
            "detected": self.detected_at,
            "aware": self.aware_at,
            "discovered": self.discovered_at,
            "determined": self.determined_at,
            "assessed": self.assessed_at,
            "contained": self.contained_at,
            "handling_ended": self.handling_ended_at,
            "classified_major": self.classified_major_at,
            "corrective_measure": self.corrective_measure_at,
        }
