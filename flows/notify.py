"""Step 3, notify: queue one ledger row per person, then send in leased batches.

Runs as batches, one Prefect task per batch (never one per person). Each batch is leased
and marked ``sending`` in one transaction before anything leaves, and its results are
recorded in another; after a crash the rows whose lease died are sent again with the same
Message-ID, so at most one batch can be duplicated and each person keeps one ledger row.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from prefect import flow, task

from flows.runtime import database, settings, vault
from flows.steps import STEP_TASK, step_finished, step_started
from models import ledger
from models.base import utcnow
from models.commands import get_incident, latest_notice
from models.crypto import Vault
from models.delivery import Channel, DeliveryResult, DeliveryStatus, OutboundMessage
from models.errors import BreachError, ProviderUnavailable, safe_reason
from models.incident import Incident, IncidentState
from models.notice import NoticeContent, NoticeText
from models.notification import Notification
from models.settings import Settings
from models.timeline import EventKind, advance, record
from notifiers import email_notifier
from notifiers.email_message import message_id
from notifiers.render import choose_locale, notice_locales, render_notice

CHANNEL = Channel.EMAIL
MAX_IDLE_WAIT = 5.0  # seconds between looks at the ledger while retries are pending


@flow(name="notify")
def notify(incident_key: str, actor: str) -> None:
    """Send every queued notice; wait for due retries; stop when every row is final.

    A provider outage is waited out with the retry policy's backoff, up to its number of
    attempts; then the run stops with the reason and the rest stays queued for the next run.
    """
    queue_notices(incident_key, actor)
    worker = ledger.worker_id()
    policy = retry_policy(settings())
    outages = 0
    while True:
        try:
            if send_batch(incident_key, worker):
                outages = 0
                continue
        except ProviderUnavailable:
            outages += 1
            if outages >= policy.max_attempts:
                raise
            time.sleep(policy.delay(outages))
            continue
        wait = seconds_until_due(incident_key)
        if wait is None:
            break
        time.sleep(min(max(wait, 0.05), MAX_IDLE_WAIT))
    finish_notify(incident_key, actor)


@task(name="queue-notices", **STEP_TASK)
def queue_notices(incident_key: str, actor: str) -> None:
    with database().unit_of_work() as session:
        incident = get_incident(session, incident_key, lock=True)
        if incident.has_reached(IncidentState.NOTIFIED):
            return
        resumed = incident.state == IncidentState.NOTIFYING
        step_started(session, incident, "notify", actor, resumed=resumed)
        notice = latest_notice(session, incident)
        assert notice is not None  # assess refuses to finish without one
        queued, unreachable = ledger.queue(session, incident, CHANNEL, notice.version)
        if queued or unreachable or not resumed:
            record(
                session,
                incident,
                EventKind.NOTICES_QUEUED,
                actor,
                {
                    "channel": str(CHANNEL),
                    "notice_version": notice.version,
                    "queued": queued,
                    "unreachable": unreachable,
                },
            )
        if not resumed:
            advance(session, incident, IncidentState.NOTIFYING, actor)


@task(name="send-batch", **STEP_TASK)
def send_batch(incident_key: str, worker: str) -> int:
    """Lease one batch, render and send it, record each result; returns how many were leased.

    If the provider cannot be used at all, the untried rows go back to the queue without
    costing the people an attempt and ``ProviderUnavailable`` is raised: a mail-server outage
    must not write anyone off as unreachable.
    """
    config = settings()
    db = database()
    with db.unit_of_work() as session:
        incident = get_incident(session, incident_key)
        rows = ledger.claim(session, incident, worker, config.batch_size, config.lease_seconds)
        notice = latest_notice(session, incident)
    if not rows:
        return 0
    try:
        assert notice is not None  # assess refuses to finish without one
        texts = notice.parsed()
        writable = notice_locales() & set(texts)
        keys = vault()
        messages = [_message(row, incident, texts, writable, config, keys) for row in rows]
        results = asyncio.run(email_notifier(config).send(messages))
    except BaseException as exc:  # nothing was tried: hand the whole batch back, then stop
        results = [
            DeliveryResult(
                notification_id=row.id, status=DeliveryStatus.DEFERRED, detail=safe_reason(exc)
            )
            for row in rows
        ]
        _record(incident_key, worker, results, config, leased=len(rows))
        raise
    outcome = _record(incident_key, worker, results, config, leased=len(rows))
    if outcome["deferred"]:
        reason = next(r.detail for r in results if r.status is DeliveryStatus.DEFERRED)
        raise ProviderUnavailable(
            f"{reason}. Nothing was lost: {outcome['deferred']} notices are back in the queue; "
            f"run `breach run {incident_key}` again once the provider is reachable"
        )
    return len(rows)


def _record(
    incident_key: str, worker: str, results: list[DeliveryResult], config: Settings, leased: int
) -> Counter[str]:
    with database().unit_of_work() as session:
        outcome = ledger.record_results(session, worker, results, retry_policy(config))
        record(
            session,
            get_incident(session, incident_key),
            EventKind.NOTICE_BATCH_SENT,
            f"flow:notify/{worker}",
            {"channel": str(CHANNEL), "leased": leased, **outcome},
        )
    return outcome


def _message(
    row: Notification,
    incident: Incident,
    texts: dict[str, NoticeText],
    writable: frozenset[str],
    config: Settings,
    keys: Vault,
) -> OutboundMessage:
    """Render one person's notice; their contact details are decrypted here and only here."""
    subject = row.subject
    name = keys.decrypt("name", subject.name_enc)
    email = keys.decrypt("email", subject.email_enc)
    locale = choose_locale(subject.locale, writable, config.default_locale)
    text = texts[locale]
    content = NoticeContent(
        locale=locale,
        organisation=config.organisation_name,
        incident_key=incident.key,
        detected_at=incident.detected_at,
        aware_at=incident.aware_at,
        recipient_name=name,
        **text.model_dump(exclude={"contact_point"}),
        contact_point=text.contact_point or config.contact_point,
    )
    rendered = render_notice(content)
    assert email is not None  # rows without an address are queued as failed
    return OutboundMessage(
        notification_id=row.id,
        message_id=message_id(row.idempotency_key, config.sender),
        channel=CHANNEL,
        recipient=email,
        recipient_name=name,
        locale=locale,
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
    )


def retry_policy(config: Settings) -> ledger.RetryPolicy:
    return ledger.RetryPolicy(
        config.max_attempts, config.retry_base_seconds, config.retry_max_seconds
    )


def seconds_until_due(incident_key: str) -> float | None:
    with database().unit_of_work() as session:
        due = ledger.next_due(session, get_incident(session, incident_key))
    return None if due is None else (due - utcnow()).total_seconds()


@task(name="finish-notify", **STEP_TASK)
def finish_notify(incident_key: str, actor: str) -> None:
    with database().unit_of_work() as session:
        incident = get_incident(session, incident_key, lock=True)
        if incident.has_reached(IncidentState.NOTIFIED):
            return
        left = ledger.unfinished(session, incident)
        if left:
            raise BreachError(f"{left} notices of {incident.key} are still unfinished")
        counts = ledger.counts(session, incident)
        record(
            session,
            incident,
            EventKind.NOTICES_FINISHED,
            actor,
            {
                "channel": str(CHANNEL),
                "counts": counts,
                "unreachable_reasons": ledger.unreachable_reasons(session, incident),
            },
        )
        advance(session, incident, IncidentState.NOTIFIED, actor)
        step_finished(session, incident, "notify", actor, counts=counts)
