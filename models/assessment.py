"""Each assessment of an incident, kept whole: the rules it used, the facts, the answer.

Deadlines must not move because a rule file changed after the fact: an assessed incident
keeps the obligations computed with the rules in force then (their full text is stored,
with a fingerprint), until someone re-assesses it, which adds a new row and an event.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from breachflow.models.base import Base, UTCDateTime, utcnow


class Assessment(Base):
    __tablename__ = "assessments"
    __table_args__ = (UniqueConstraint("incident_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"))
    number: Mapped[int] = mapped_column(Integer)
    assessed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    assessed_by: Mapped[str] = mapped_column(String(200))
    ruleset_fingerprint: Mapped[str] = mapped_column(String(64))
    #: Deferred: about 0.5 MB for 93 regimes, read only by the few paths that need a rule
    #: file as it was (a pack's in_language words, the announcement's conditions).
    rules: Mapped[list[dict[str, Any]]] = mapped_column(JSON, deferred=True)
    policy: Mapped[dict[str, Any]] = mapped_column(JSON)
    facts: Mapped[dict[str, Any]] = mapped_column(JSON)
    obligations: Mapped[list[dict[str, Any]]] = mapped_column(JSON)


def latest_assessment(session: Session, incident_id: int) -> Assessment | None:
    return session.scalar(
        select(Assessment)
        .where(Assessment.incident_id == incident_id)
        .order_by(Assessment.number.desc())
        .limit(1)
    )
