"""The delivery ledger's contract: queue, claim with a lease, record results, count.

Every function works inside the caller's unit of work. Claiming uses
``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL so several workers can share an
incident; SQLite serializes writers with ``BEGIN IMMEDIATE`` (see ``models.db``).
"""

from __future__ import annotations

import os
import random
import socket
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.orm import Session

from models.base import utcnow
from models.delivery import DeliveryResult, DeliveryStatus
from models.incident import Incident
from models.notification import (
    FINAL_STATES,
    REACHED_STATES,
    Notification,
    NotificationState,
    idempotency_key,
)
from models.subject import Subject

State = NotificationState
HOST = socket.gethostname()


def worker_id() -> str:
    """``host/pid/nonce``: lets a restarted run on the same host see that a lease is orphaned."""
    return f"{HOST}/{os.getpid()}/{uuid.uuid4().hex[:8]}"


def _orphaned(owner: str) -> bool:
    host, _, rest = owner.partition("/")
    pid = rest.partition("/")[0]
    if host != HOST or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def queue(session: Session, incident: Incident, channel: str, version: int) -> tuple[int, int]:
    """Create the missing ledger rows for every subject; returns (queued, unreachable).

    A person without a usable address for the channel still gets a row, directly in
    ``failed_permanent`` with the reason: everyone affected appears in the ledger.
    """
    existing = select(Notification.subject_id).where(
        Notification.incident_id == incident.id,
        Notification.channel == channel,
        Notification.notice_version == version,
    )
    missing = session.execute(
        select(Subject.id, Subject.email_index, Subject.email_problem)
        .where(Subject.incident_id == incident.id, Subject.id.not_in(existing))
        .order_by(Subject.id)
    ).all()
    now = utcnow()
    rows = [
        {
            "incident_id": incident.id,
            "subject_id": subject_id,
            "channel": channel,
            "notice_version": version,
            "idempotency_key": idempotency_key(incident.key, subject_id, channel, version),
            "state": State.QUEUED if email else State.FAILED_PERMANENT,
            "last_error": None if email else f"no usable email address: {problem or 'none given'}",
            "attempts": 0,
            "queued_at": now,
            "updated_at": now,
        }
        for subject_id, email, problem in missing
    ]
    if rows:
        session.execute(insert(Notification), rows)
    unreachable = sum(1 for row in rows if row["state"] == State.FAILED_PERMANENT)
    return len(rows) - unreachable, unreachable


def claim(
    session: Session, incident: Incident, worker: str, limit: int, lease_seconds: float
) -> list[Notification]:
    """Lease up to ``limit`` rows that are due: queued, due for retry, or with a dead lease."""
    now = utcnow()
    leased_owners = session.scalars(
        select(Notification.lease_owner)
        .where(Notification.incident_id == incident.id, Notification.state == State.SENDING)
        .distinct()
    ).all()
    orphaned = [owner for owner in leased_owners if owner and _orphaned(owner)]
    due = or_(
        Notification.state == State.QUEUED,
        and_(Notification.state == State.FAILED_TEMPORARY, Notification.retry_at <= now),
        and_(
            Notification.state == State.SENDING,
            or_(Notification.lease_expires_at < now, Notification.lease_owner.in_(orphaned)),
        ),
    )
    ids = session.scalars(
        select(Notification.id)
        .where(Notification.incident_id == incident.id, due)
        .order_by(Notification.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    if not ids:
        return []
    session.execute(
        update(Notification)
        .where(Notification.id.in_(ids))
        .values(
            state=State.SENDING,
            lease_owner=worker,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            attempts=Notification.attempts + 1,
            retry_at=None,
            updated_at=now,
        )
    )
    return list(
        session.scalars(
            select(Notification).where(Notification.id.in_(ids)).order_by(Notification.id)
        )
    )


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    base_seconds: float
    max_seconds: float

    def delay(self, attempts: int) -> float:
        """Exponential backoff with jitter: spreads retries so they don't arrive as a wave."""
        ceiling = min(self.max_seconds, self.base_seconds * 2 ** max(attempts - 1, 0))
        return ceiling * random.uniform(0.5, 1.0)


def record_results(
    session: Session, worker: str, results: list[DeliveryResult], policy: RetryPolicy
) -> Counter[str]:
    """Write each result to its row (only while we still hold its lease); count outcomes."""
    now = utcnow()
    outcome: Counter[str] = Counter()
    rows = {
        row.id: row
        for row in session.scalars(
            select(Notification).where(
                Notification.id.in_([r.notification_id for r in results]),
                Notification.state == State.SENDING,
                Notification.lease_owner == worker,
            )
        )
    }
    for result in results:
        row = rows.get(result.notification_id)
        if row is None:
            outcome["lease_lost"] += 1
            continue
        row.lease_owner = row.lease_expires_at = None
        row.last_error = result.detail
        if result.status is DeliveryStatus.DEFERRED:
            row.state, row.retry_at = State.FAILED_TEMPORARY, now
            row.attempts -= 1  # never tried: not one of this person's attempts
            outcome["deferred"] += 1
            continue
        if result.status is DeliveryStatus.SENT:
            row.state, row.sent_at, row.retry_at = State.SENT, now, None
            row.provider_message_id = result.provider_message_id
        elif (
            result.status is DeliveryStatus.FAILED_TEMPORARY and row.attempts < policy.max_attempts
        ):
            row.state = State.FAILED_TEMPORARY
            row.retry_at = now + timedelta(seconds=policy.delay(row.attempts))
        else:
            row.state, row.retry_at = State.FAILED_PERMANENT, None
            if result.status is DeliveryStatus.FAILED_TEMPORARY:
                row.last_error = f"gave up after {row.attempts} attempts: {result.detail}"
        outcome[str(row.state)] += 1
    return outcome


def next_due(session: Session, incident: Incident) -> datetime | None:
    """When the earliest unfinished row becomes claimable; None when all are final."""
    return session.scalar(
        select(func.min(func.coalesce(Notification.retry_at, Notification.lease_expires_at))).where(
            Notification.incident_id == incident.id,
            Notification.state.in_([State.FAILED_TEMPORARY, State.SENDING]),
        )
    )


def counts(session: Session, incident: Incident) -> dict[str, int]:
    rows = session.execute(
        select(Notification.state, func.count())
        .where(Notification.incident_id == incident.id)
        .group_by(Notification.state)
    ).all()
    return {str(state): n for state, n in rows}


def unfinished(session: Session, incident: Incident) -> int:
    return (
        session.scalar(
            select(func.count()).where(
                Notification.incident_id == incident.id, Notification.state.not_in(FINAL_STATES)
            )
        )
        or 0
    )


def reached_since(session: Session, incident: Incident, since: datetime) -> int:
    return (
        session.scalar(
            select(func.count()).where(
                Notification.incident_id == incident.id,
                Notification.state.in_(REACHED_STATES),
                Notification.sent_at >= since,
            )
        )
        or 0
    )


def last_sent_at(session: Session, incident: Incident) -> datetime | None:
    return session.scalar(
        select(func.max(Notification.sent_at)).where(Notification.incident_id == incident.id)
    )


def unreachable_reasons(session: Session, incident: Incident) -> dict[str, int]:
    """Why people could not be reached, most common first; reasons hold no contact details."""
    rows = session.execute(
        select(Notification.last_error, func.count())
        .where(
            Notification.incident_id == incident.id,
            Notification.state == State.FAILED_PERMANENT,
        )
        .group_by(Notification.last_error)
        .order_by(func.count().desc())
    ).all()
    return {reason or "unknown": n for reason, n in rows}
