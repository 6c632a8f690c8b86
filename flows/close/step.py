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
from sqlalchemy.orm import Session

from breachflow.flows.close.obligations import open_obligations
from breachflow.flows.steps import STEP_TASK
from breachflow.models.base import utcnow
from breachflow.models.commands import get_incident
from breachflow.models.errors import InvalidInput
from breachflow.models.incident import Incident, IncidentState
from breachflow.models.notification import Notification
from breachflow.models.runtime import database, settings
from breachflow.models.settings import NotifierMode
from breachflow.models.subject import Subject
from breachflow.models.timeline import EventKind, advance, record
from breachflow.notifiers.sandbox import outbox_files


@task(name="close", **STEP_TASK)
def close(incident_key: str, actor: str) -> str | None:
    """Close, or say what closing waits for (``obligations.py``): while a report is to
    be filed, the announcement is up or the sign-off is missing, the incident stays
    ``reporting`` and its facts can still be updated and reports written."""
    with database().unit_of_work() as session:
        incident = get_incident(session, incident_key, lock=True)
        if incident.has_reached(IncidentState.CLOSED):
            return None
        return close_if_done(session, incident, actor)


def close_if_done(session: Session, incident: Incident, actor: str) -> str | None:
    """Close ``incident`` if it is ``reporting`` and nothing is open; else what is open.

    Called by the run, and by whatever meets an obligation (a filing recorded, the closure
    approved, the watchdog seeing an announcement's period end), so the last one closes it.
    """
    if incident.state != IncidentState.REPORTING:
        return None
    waiting = open_obligations(session, incident)
    if waiting:
        return "; ".join(waiting)
    _close(session, incident, actor, {})
    return None


def close_early(incident_key: str, actor: str, reason: str) -> list[str]:
    """A named person closes the incident with obligations still open, for the record's
    sake with the reason and the list of what was open; returns that list.

    Only once everyone has been notified and the reports are written (``reporting``):
    before that, closing would stop the response itself.
    """
    if len(reason.strip()) < 10:
        raise InvalidInput("closing early needs a reason (--reason, 10 characters or more)")
    with database().unit_of_work() as session:
        incident = get_incident(session, incident_key, lock=True)
        if incident.state != IncidentState.REPORTING:
            raise InvalidInput(
                f"{incident.key} is {incident.state}: it can be closed early only once everyone"
                " is notified and the reports are written (state reporting); `breach run` first"
            )
        waiting = open_obligations(session, incident)
        _close(session, incident, actor, {"early": True, "reason": reason.strip(), "open": waiting})
        return waiting


def _close(session: Session, incident: Incident, actor: str, why: dict[str, object]) -> None:
    incident.closed_at = utcnow()
    incident.purge_after = incident.closed_at + timedelta(days=settings().retention_days)
    advance(session, incident, IncidentState.CLOSED, actor, **why)
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
