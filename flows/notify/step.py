"""Step 3, notify: put everyone on their first usable channel, send, record the outcome.

The sending itself is ``dispatch.notify_shard``: leased batches, a lane per channel, any
number of shards on one incident; ``fanout`` runs them on Prefect workers or in-process.
"""

from __future__ import annotations

from prefect import flow, task

from breachflow.flows.notify.dispatch import usable_chain
from breachflow.flows.notify.fanout import send_everything
from breachflow.flows.notify.vendor import awaiting_returns
from breachflow.flows.steps import STEP_TASK, step_finished, step_started
from breachflow.models import ledger
from breachflow.models.commands import get_incident, latest_notice
from breachflow.models.errors import BreachError
from breachflow.models.incident import IncidentState
from breachflow.models.runtime import database, settings
from breachflow.models.timeline import EventKind, advance, record


@flow(name="notify")
def notify(incident_key: str, actor: str) -> str | None:
    """Queue everyone, dispatch until every row is final, then record the outcome.

    A provider's report can come after the sending stopped waiting for it
    (``BREACH_REPORT_WAIT_SECONDS``) and reopen a row: a text undelivered moves its person
    to the next channel, a call not answered is tried again. Those are sent too before the
    outcome is recorded, up to ``SEND_ROUNDS`` times.

    Returns what notification still waits for (letters with the mailing vendor until its
    return file is imported), or None when it is done."""
    queue_notices(incident_key, actor)
    for _ in range(SEND_ROUNDS):
        send_everything(incident_key, actor)  # on Prefect workers, or here
        if not reopened(incident_key):
            break
    return finish_notify(incident_key, actor)


SEND_ROUNDS = 3


def reopened(incident_key: str) -> int:
    """Rows a dispatcher has to send again, reopened by a report after the sending ended
    (a letter with the mailing vendor is not one: the vendor's return file finishes it)."""
    with database().unit_of_work() as session:
        incident = get_incident(session, incident_key)
        return ledger.unfinished(session, incident) - ledger.with_vendor(session, incident)[0]


@task(name="queue-notices", **STEP_TASK)
def queue_notices(incident_key: str, actor: str) -> None:
    config = settings()
    with database().unit_of_work() as session:
        incident = get_incident(session, incident_key, lock=True)
        if incident.has_reached(IncidentState.NOTIFIED):
            return
        resumed = incident.state == IncidentState.NOTIFYING
        step_started(session, incident, "notify", actor, resumed=resumed)
        notice = latest_notice(session, incident)
        assert notice is not None  # assess refuses to finish without one
        chain, skipped = usable_chain(session, incident, config)
        queued = ledger.queue(session, incident, chain, notice.version)
        if queued or not resumed:
            record(
                session,
                incident,
                EventKind.NOTICES_QUEUED,
                actor,
                {
                    "chain": [str(c) for c in chain],
                    "skipped_channels": skipped,
                    "notice_version": notice.version,
                    "queued": dict(queued),
                },
            )
        if not resumed:
            advance(session, incident, IncidentState.NOTIFYING, actor)


@task(name="finish-notify", **STEP_TASK)
def finish_notify(incident_key: str, actor: str) -> str | None:
    """Record notification's outcome and move the incident on; or, while letters are with
    the mailing vendor, say what it waits for (the vendor's return file), on the timeline
    too, and leave the incident notifying. Returns what it waits for, or None."""
    with database().unit_of_work() as session:
        incident = get_incident(session, incident_key, lock=True)
        if incident.has_reached(IncidentState.NOTIFIED):
            return None
        left = ledger.unfinished(session, incident)
        with_vendor, last_day = ledger.with_vendor(session, incident)
        if left > with_vendor:
            raise BreachError(
                f"{left - with_vendor} notices of {incident.key} are still unfinished"
            )
        waiting = awaiting_returns(session, incident)
        if waiting:
            record(
                session,
                incident,
                EventKind.AWAITING_VENDOR,
                actor,
                {"waiting_for": waiting, "letters": with_vendor, "last_mail_on": str(last_day)},
            )
            return waiting
        people = ledger.people(session, incident)
        by_channel = ledger.channel_counts(session, incident)
        record(
            session,
            incident,
            EventKind.NOTICES_FINISHED,
            actor,
            {
                "people": {"reached": people.reached, "unreachable": people.unreachable},
                "channels": by_channel,
                "unreachable_reasons": ledger.unreachable_reasons(session, incident),
            },
        )
        advance(session, incident, IncidentState.NOTIFIED, actor)
        step_finished(
            session,
            incident,
            "notify",
            actor,
            reached=people.reached,
            unreachable=people.unreachable,
        )
    return None
