"""The warnings the deadline watchdog has given: one row per deadline and level, so a
warning is given once however often the watchdog runs, and by however many of them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from breachflow.models.base import Base, UTCDateTime, utcnow


class DeadlineWarning(Base):
    __tablename__ = "deadline_warnings"
    __table_args__ = (UniqueConstraint("incident_id", "deadline", "level"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), index=True)
    #: Which deadline, e.g. ``eu-gdpr regulator initial``.
    deadline: Mapped[str] = mapped_column(String(200))
    #: ``50%``, ``75%``, ``90%`` of the window gone, or ``overdue``.
    level: Mapped[str] = mapped_column(String(16))
    warned_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: When the deadline was met (or its incident closed) and its page, if any, resolved.
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class StaffCursor(Base):
    """How far into an incident's timeline a staff channel (``slack``, ``teams``,
    ``webhook``) has been told: the stages and warnings after ``seq`` are still to post
    (the watchdog posts them, in order)."""

    __tablename__ = "staff_cursors"

    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), primary_key=True)
    target: Mapped[str] = mapped_column(String(16), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, default=0)
