"""Provider reports on the timeline: how the ledger moved since the timeline last said.

Providers report deliveries, bounces and dead push tokens one person at a time, long after
a run, through the status callbacks. An event per report would put a million events on a
big incident, and would need the incident locked before the ledger row, while a callback
only learns its incident from the row (dispatchers lock the other way round). Instead the
watchdog looks at every incident with a ledger, and when the counts per channel and state
differ from the last ones on its timeline (a run's ``run.finished`` or an earlier look),
records one ``notifications.reported`` event: the counts now and what changed. The chain
then vouches for the ledger's totals at each look; the rows themselves are in the ledger.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from breachflow.models import ledger
from breachflow.models.incident import Incident, IncidentState
from breachflow.models.notification import Notification
from breachflow.models.runtime import database
from breachflow.models.timeline import EventKind, TimelineEvent, record

ACTOR = "flow:deadline_watchdog"
#: Events that state the ledger's counts per channel and state (``by_channel``).
COUNTED = (EventKind.RUN_FINISHED, EventKind.NOTIFICATIONS_REPORTED)


def record_provider_reports() -> list[str]:
    """One look at every incident that has a ledger and still holds contact data; returns
    the incidents whose counts moved (each now has a ``notifications.reported`` event)."""
    with database().unit_of_work() as session:
        keys = list(
            session.scalars(
                select(Incident.key).where(
                    Incident.state != IncidentState.DISMISSED,
                    Incident.purged_at.is_(None),
                    exists().where(Notification.incident_id == Incident.id),
                )
            )
        )
    moved = []
    for key in keys:
        with database().unit_of_work() as session:
            incident = session.scalars(
                select(Incident).where(Incident.key == key).with_for_update()
            ).one()
            if _look(session, incident):
                moved.append(key)
    return moved


def _look(session: Session, incident: Incident) -> bool:
    now = ledger.channel_counts(session, incident)
    before = _last_counts(session, incident)
    if now == before:
        return False
    record(
        session,
        incident,
        EventKind.NOTIFICATIONS_REPORTED,
        ACTOR,
        {"by_channel": now, "change": _change(before, now)},
    )
    return True


def _last_counts(session: Session, incident: Incident) -> dict[str, dict[str, int]]:
    payload = session.scalar(
        select(TimelineEvent.payload)
        .where(TimelineEvent.incident_id == incident.id, TimelineEvent.kind.in_(COUNTED))
        .order_by(TimelineEvent.seq.desc())
        .limit(1)
    )
    return (payload or {}).get("by_channel") or {}


def _change(before: dict[str, Any], now: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Per channel, the states whose count moved, by how much (``{"sms": {"delivered": 3,
    "sent": -3}}``)."""
    change: dict[str, dict[str, int]] = {}
    for channel in sorted(set(before) | set(now)):
        states = set(before.get(channel, {})) | set(now.get(channel, {}))
        for state in sorted(states):
            moved = now.get(channel, {}).get(state, 0) - before.get(channel, {}).get(state, 0)
            if moved:
                change.setdefault(channel, {})[state] = moved
    return change
