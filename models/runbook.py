"""Runbook progress: which step of an incident's runbook is done, by whom, with what.

The steps themselves are data (``runbooks/``); this is what people did with them. A step
that gates a flow step (the notice approval gates notification) also records the notice
version it approved: new texts need a new approval.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from breachflow.models.base import Base, UTCDateTime, utcnow


class StepDone(Base):
    __tablename__ = "runbook_steps_done"
    __table_args__ = (UniqueConstraint("incident_id", "step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), index=True)
    step: Mapped[str] = mapped_column(String(100))
    done_by: Mapped[str] = mapped_column(String(200))
    done_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    evidence_file: Mapped[str | None] = mapped_column(String(500), nullable=True)
    evidence_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    notice_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
