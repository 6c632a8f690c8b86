"""Alerts from monitoring: who may send them, what they opened, and signatures seen.

An alert source signs its requests with a secret of its own (HMAC-SHA256); we must read
the secret to check a signature, so it is kept encrypted with the data key, not hashed.
Alerts with the same fingerprint from the same source are one group: the first opens an
incident, the rest are counted on the group, so a storm makes one incident, not ten
thousand.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from breachflow.models.base import Base, UTCDateTime, utcnow


class AlertSource(Base):
    __tablename__ = "alert_sources"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    secret_enc: Mapped[bytes] = mapped_column(LargeBinary)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    #: After a rotation the secret before it signs until ``previous_valid_until``, so the
    #: sender can switch without losing an alert.
    previous_secret_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    previous_valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    rotated_by: Mapped[str | None] = mapped_column(String(200), nullable=True)


class AlertGroup(Base):
    """Every alert of one fingerprint from one source, and the incident it opened."""

    __tablename__ = "alert_groups"
    __table_args__ = (UniqueConstraint("source", "fingerprint"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(100))
    fingerprint: Mapped[str] = mapped_column(String(128))
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"), nullable=True)
    title: Mapped[str] = mapped_column(String(300))
    labels: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    received: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16))  # firing | resolved
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    summary: Mapped[str | None] = mapped_column(Text, nullable=True)


class SeenSignature(Base):
    """A signature accepted once; the same one again is a replay, refused until it expires
    (after which its timestamp is outside the window anyway)."""

    __tablename__ = "seen_signatures"

    signature: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
