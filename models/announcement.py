"""Public announcements: the decision to make one, and each published version.

The decision is recorded with its grounds and who took it (the flow from the rules and the
ledger, or a named operator forcing or waiving it); the latest decision is the one in
force. Each version of an announcement is a row of its own, so an update never hides
what was published before.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from breachflow.models.base import Base, UTCDateTime, utcnow


class DecisionKind(StrEnum):
    AUTOMATIC = "automatic"  # the flow, from the rules' conditions and the ledger
    FORCED = "forced"  # a named operator: e.g. individual notice judged difficult
    WAIVED = "waived"  # a named operator: no announcement, with the reason


class AnnouncementDecision(Base):
    __tablename__ = "announcement_decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), index=True)
    kind: Mapped[DecisionKind] = mapped_column(String(16))
    required: Mapped[bool] = mapped_column(Boolean)
    #: Why: the conditions met (automatic) or the operator's reason (forced, waived).
    grounds: Mapped[list[str]] = mapped_column(JSON)
    #: What the decision looked at: people, unreachable, pending, conditions considered.
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: How long it must stay published: the longest minimum of the applicable rules.
    min_days: Mapped[int] = mapped_column(Integer)
    decided_by: Mapped[str] = mapped_column(String(200))
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Announcement(Base):
    """One published version. ``destinations`` holds each publisher's outcome:
    ``{name: {"status": "published" | "failed", "location": ..., "detail": ...}}``."""

    __tablename__ = "announcements"
    __table_args__ = (UniqueConstraint("incident_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    notice_version: Mapped[int] = mapped_column(Integer)
    locales: Mapped[list[str]] = mapped_column(JSON)
    reason: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    published_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    destinations: Mapped[dict[str, dict[str, str]]] = mapped_column(JSON, default=dict)
    created_by: Mapped[str] = mapped_column(String(200))

    def published_everywhere(self) -> bool:
        return bool(self.destinations) and all(
            d.get("status") == "published" for d in self.destinations.values()
        )


def latest_decision(session: Session, incident_id: int) -> AnnouncementDecision | None:
    return session.scalar(
        select(AnnouncementDecision)
        .where(AnnouncementDecision.incident_id == incident_id)
        .order_by(AnnouncementDecision.id.desc())
        .limit(1)
    )


def announcements(session: Session, incident_id: int) -> list[Announcement]:
    """Every version, oldest first."""
    return list(
        session.scalars(
            select(Announcement)
            .where(Announcement.incident_id == incident_id)
            .order_by(Announcement.version)
        )
    )
