"""Reports to regulators: one row per report filed, per regime and phase, with its state.

A report's life: ``held_late`` (past its deadline, waiting for the reasons for delay),
``awaiting_submission`` (the pack is written; a person files it on the regulator's portal,
or the email submission is still to go), ``submitted`` (sent by email, or recorded by the
person who filed it, with the regulator's reference), ``acknowledged``. ``waiting`` is a
report whose deadline cannot be computed yet (its clock anchor, e.g. the end of handling,
is not known).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from breachflow.models.base import Base, UTCDateTime, utcnow


class ReportState(StrEnum):
    WAITING = "waiting"
    HELD_LATE = "held_late"
    AWAITING_SUBMISSION = "awaiting_submission"
    SUBMITTED = "submitted"
    ACKNOWLEDGED = "acknowledged"


class SubmissionMode(StrEnum):
    EMAIL = "email"  # to the regulator's address, with the PDF attached
    MANUAL = "manual"  # a person files the pack on the regulator's portal


class RegulatorReport(Base):
    __tablename__ = "regulator_reports"
    __table_args__ = (UniqueConstraint("incident_id", "regime", "recipient", "phase", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), index=True)
    regime: Mapped[str] = mapped_column(String(64))
    recipient: Mapped[str] = mapped_column(String(300))
    phase: Mapped[str] = mapped_column(String(16))
    number: Mapped[int] = mapped_column(Integer, default=1)
    deadline: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    deadline_rule: Mapped[str] = mapped_column(Text)
    mode: Mapped[SubmissionMode] = mapped_column(String(16))
    state: Mapped[ReportState] = mapped_column(String(24))
    #: ``{"html": path, "pdf": path, "json": path}`` and their SHA-256 under ``sha256``.
    files: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    delay_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    submitted_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    reference: Mapped[str | None] = mapped_column(String(300), nullable=True)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    @property
    def label(self) -> str:
        suffix = f" #{self.number}" if self.number > 1 else ""
        return f"{self.regime} {self.phase}{suffix} to {self.recipient}"


def reports(session: Session, incident_id: int) -> list[RegulatorReport]:
    """Every report of the incident, in the order they were created."""
    return list(
        session.scalars(
            select(RegulatorReport)
            .where(RegulatorReport.incident_id == incident_id)
            .order_by(RegulatorReport.id)
        )
    )
