"""The delivery ledger: one row per incident, person, channel and notice version.

States: ``queued → sending → sent`` (``delivered`` once providers report it), or
``failed_temporary`` with ``retry_at``, or ``failed_permanent``; a letter in a mailing
vendor's hand-over is ``handed_over`` (with its ``mail_on`` day) until the vendor's return
file says it was mailed (``sent``) or came back (``failed_permanent``). A row in ``sending`` carries
a lease; an expired lease, or one held by a process that no longer exists on this host, puts
the row back in play. The row's ``idempotency_key`` is the message's stable identity: a
resend after a crash carries the same SMTP ``Message-ID``.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    cast,
    func,
    literal,
    text,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import InstrumentedAttribute, Mapped, mapped_column, relationship
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from breachflow.models.base import Base, UTCDateTime, utcnow
from breachflow.models.subject import Subject


class NotificationState(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED_TEMPORARY = "failed_temporary"
    FAILED_PERMANENT = "failed_permanent"
    #: A letter in a mailing vendor's hand-over, not yet said to be mailed: in progress, not
    #: for a dispatcher (outside ``PENDING_SQL``); the vendor's return file moves it on.
    HANDED_OVER = "handed_over"


#: Rows a dispatcher may still have to send (``ix_notifications_pending`` holds them).
PENDING_SQL = "state IN ('queued', 'sending', 'failed_temporary')"

#: States from which nothing more will happen without a person's decision.
FINAL_STATES = frozenset(
    {NotificationState.SENT, NotificationState.DELIVERED, NotificationState.FAILED_PERMANENT}
)
REACHED_STATES = frozenset({NotificationState.SENT, NotificationState.DELIVERED})


def idempotency_key(incident_key: str, subject_id: int, channel: str, version: int) -> str:
    """Same inputs, same key, on any machine: what makes a resend recognisable.

    :func:`idempotency_key_sql` computes the same key inside the database, so queueing
    millions of people is one ``INSERT ... SELECT``.
    """
    name = f"breachflow:{incident_key}/{subject_id}/{channel}/v{version}"
    return hashlib.sha256(name.encode()).hexdigest()[:KEY_LENGTH]


KEY_LENGTH = 32


class Sha256Hex(FunctionElement[str]):
    """``sha256(text)`` as lowercase hex, in SQL: PostgreSQL has it built in; SQLite gets
    it as a function registered on each connection (``models.db``)."""

    type = String()
    name = "breach_sha256_hex"
    inherit_cache = True


@compiles(Sha256Hex)
def _sha256_hex_registered(element: Sha256Hex, compiler: SQLCompiler, **kw: Any) -> str:
    return f"breach_sha256_hex({compiler.process(element.clauses, **kw)})"


@compiles(Sha256Hex, "postgresql")
def _sha256_hex_postgresql(element: Sha256Hex, compiler: SQLCompiler, **kw: Any) -> str:
    return f"encode(sha256(convert_to({compiler.process(element.clauses, **kw)}, 'UTF8')), 'hex')"


def sha256_hex(text: str | bytes) -> str:
    """The SQLite side of :class:`Sha256Hex`."""
    return hashlib.sha256(text if isinstance(text, bytes) else text.encode()).hexdigest()


def idempotency_key_sql(
    incident_key: str,
    subject_id: ColumnElement[Any] | InstrumentedAttribute[Any],
    channel: ColumnElement[Any],
    version: int,
) -> ColumnElement[str]:
    """:func:`idempotency_key` as a SQL expression of a person's id and channel columns."""
    name = (
        literal(f"breachflow:{incident_key}/")
        + cast(subject_id, String)
        + "/"
        + channel
        + literal(f"/v{version}")
    )
    return func.substr(Sha256Hex(name), 1, KEY_LENGTH)


class Notification(Base):
    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("incident_id", "subject_id", "channel", "notice_version"),
        # Counts and dispatch look up one channel's rows of one incident by state.
        Index("ix_notifications_claim", "incident_id", "channel", "state"),
        # Claims walk one channel's rows still to send, oldest first: an index of those
        # alone, so a claim costs the same at 0 % or 99 % of millions sent.
        Index(
            "ix_notifications_pending",
            "incident_id",
            "channel",
            "id",
            postgresql_where=text(PENDING_SQL),
            sqlite_where=text(PENDING_SQL),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"))
    subject_id: Mapped[int] = mapped_column(ForeignKey("subjects.id"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    notice_version: Mapped[int] = mapped_column(Integer)
    state: Mapped[NotificationState] = mapped_column(String(24), default=NotificationState.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    provider_message_id: Mapped[str | None] = mapped_column(
        String(200),
        nullable=True,
        index=True,  # status callbacks find their row by it
    )
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    lease_owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: When the provider accepted it; for a letter handed to a mailing vendor, the day the
    #: vendor's return file says it was mailed.
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: A letter handed to a mailing vendor: the day it is to be posted (its wave).
    mail_on: Mapped[date | None] = mapped_column(Date(), nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    subject: Mapped[Subject] = relationship(lazy="joined")


class DeliveryReport(Base):
    """A provider's status report (webhook), kept as received; ``applied`` once it has
    been applied to its ledger row (it may arrive before the send's result is recorded)."""

    __tablename__ = "delivery_reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    provider_message_id: Mapped[str] = mapped_column(String(200), index=True)
    status: Mapped[str] = mapped_column(String(24))
    detail: Mapped[str | None] = mapped_column(String(500), nullable=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    applied: Mapped[bool] = mapped_column(Boolean, default=False)
