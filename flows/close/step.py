"""Step 6, close: the response is complete; the timeline stays, as the record of it.

Closing schedules the purge of the affected people's contact details after the configured
retention; ``purge_due`` carries it out (``breach purge``). Counts, ledger states and the
timeline are kept: they are the evidence, and they hold no contact detail.
"""

from __future__ import annotations

import shutil
from datetime import timedelta

from prefect import task
from sqlalchemy import select, update

from breachflow.flows.steps import STEP_TASK
from breachflow.models.base import utcnow
from breachflow.models.commands import get_incident
from breachflow.models.incident import Incident, IncidentState
from breachflow.models.notification import Notification
from breachflow.models.regulator_report import ReportState, reports
from breachflow.models.runtime import database, settings
from breachflow.models.settings import NotifierMode
from breachflow.models.subject import Subject
from breachflow.models.timeline import EventKind, advance, record
from breachflow.notifiers.sandbox import outbox_files


@task(name="close", **STEP_TASK)
def close(incident_key: str, actor: str) -> str | None:
    """Close, or say what closing waits for: a report whose clock has not started (the
    CAC's summary report runs from the end of handling) keeps the incident open, so its
    facts can still be updated and the report written."""
    with database().unit_of_work() as session:
        incident = get_incident(session, incident_key, lock=True)
        if incident.has_reached(IncidentState.CLOSED):
            return None
        waiting = [r.label for r in reports(session, incident.id) if r.state == ReportState.WAITING]
        if waiting:
            return (
                f"the clock of {', '.join(waiting)}: record it (e.g. breach update"
                f" {incident.key} --handling-ended-at …), then breach assess and breach run"
            )
        incident.closed_at = utcnow()
        incident.purge_after = incident.closed_at + timedelta(days=settings().retention_days)
        advance(session, incident, IncidentState.CLOSED, actor)
        record(
            session,
            incident,
            EventKind.PURGE_SCHEDULED,
            actor,
            {
                "purge_after": incident.purge_after.isoformat(),
                "retention_days": settings().retention_days,
            },
        )
    return None


def purge_due(actor: str) -> dict[str, int]:
    """Delete the contact details of every closed incident whose retention has run out.

    Returns ``{incident key: people purged}``. Safe to run at any time, as often as wanted.
    """
    purged: dict[str, int] = {}
    with database().unit_of_work() as session:
        due = session.scalars(
            select(Incident).where(Incident.purge_after <= utcnow(), Incident.purged_at.is_(None))
        ).all()
        for incident in due:
            purged[incident.key] = _purge(session, incident, actor)
    return purged


CONTACT_COLUMNS = (
    "name_enc", "email_enc", "email_index", "phone_enc", "phone_index", "push_enc", "address_enc",
)  # fmt: skip


def _purge(session, incident: Incident, actor: str) -> int:
    people = session.execute(
        update(Subject)
        .where(Subject.incident_id == incident.id)
        .values(dict.fromkeys(CONTACT_COLUMNS))
    ).rowcount
    files = 0
    config = settings()
    if config.notifier_mode is NotifierMode.SANDBOX:  # the outbox holds copies of the notices
        rows = session.execute(
            select(Notification.channel, Notification.idempotency_key).where(
                Notification.incident_id == incident.id
            )
        )
        for channel, key in rows:
            for path in outbox_files(config.outbox, channel, key, config.sender):
                if path.is_dir():
                    files += sum(1 for _ in path.iterdir())
                    shutil.rmtree(path)
                elif path.exists():
                    path.unlink()
                    files += 1
    incident.purged_at = utcnow()
    record(
        session,
        incident,
        EventKind.CONTACTS_PURGED,
        actor,
        {"people": people, "outbox_files_deleted": files},
    )
    return people
