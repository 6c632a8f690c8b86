"""The dispatcher: claim leased batches of the ledger, render and send them, record results.

Runs as batches, one Prefect task per batch of one channel (never one per person). Each
batch is leased and marked ``sending`` in one transaction before anything leaves, and its
results are recorded in another; after a crash the rows whose lease died are sent again
with the same message id. A permanent failure moves the person to the next channel of the
chain in the transaction that records it.

Channels are worked side by side, each in its own lane of ``PIPELINE`` batches: while one
batch of a channel is sent, the next is claimed and rendered, so the provider never waits
for our database. Sending and recording take turns within a lane (``_lane``): a process
has at most one batch per channel handed to a provider and not yet recorded, which is what
bounds the duplicates a crash can cause.

``notify_shard`` can run in any number of processes (``breach dispatch``) on one incident
together; the ledger's leases keep them apart.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from functools import cache

from prefect import flow, task
from prefect.futures import PrefectFuture, as_completed
from sqlalchemy.orm import Session

from breachflow.flows.notify import vendor
from breachflow.flows.steps import STEP_TASK
from breachflow.models import ledger
from breachflow.models.base import utcnow
from breachflow.models.chain import chain_for
from breachflow.models.commands import get_incident, latest_notice
from breachflow.models.crypto import Vault
from breachflow.models.db import Database
from breachflow.models.delivery import Channel, DeliveryResult, DeliveryStatus, OutboundMessage
from breachflow.models.errors import BreachError, ProviderUnavailable, safe_reason
from breachflow.models.incident import Incident
from breachflow.models.notice import NoticeText
from breachflow.models.pacing import ConnectionSlots, DatabasePacer
from breachflow.models.runtime import database, settings, vault
from breachflow.models.settings import NotifierMode, Settings
from breachflow.models.timeline import EventKind, record
from breachflow.models.workers import worker_id
from breachflow.notifiers.base import Notifier
from breachflow.notifiers.domains import BrakedNotifier, DomainBrake
from breachflow.notifiers.email_message import message_id
from breachflow.notifiers.factory import (
    CONTACT_FIELD,
    notifier_for,
    rate_per_second,
    unconfigured_reason,
)
from breachflow.rendering.notices import (
    NoticeRenderer,
    choose_locale,
    notice_content,
    notice_link,
    notice_locales,
)
from breachflow.rules.places import timezone_of

MAX_IDLE_WAIT = 5.0  # seconds between looks at the ledger while retries are pending
PIPELINE = 2  # batches of one channel in flight in a process: one sending, one being prepared
SMTP_CONNECTIONS = "smtp-connections"


@flow(name="notify-shard")
def notify_shard(incident_key: str) -> dict[str, int]:
    """Claim and send batches, every channel in its lane, until no row is left to try.

    A provider outage pauses its channel only: the others go on. A paused channel is tried
    again with the retry policy's backoff, ``outage_retries`` times; then this shard
    stops with the reason and those rows stay queued for the next run. Returns how many
    messages this shard handed to providers, per channel.
    """
    config = settings()
    worker = worker_id()
    policy = retry_policy(config)
    with database().unit_of_work() as session:
        incident = get_incident(session, incident_key)
        config = config.outside_world(incident.exercise, incident.key)
        chain, _ = usable_chain(session, incident, config)
    names = [str(c) for c in chain]
    sent: Counter[str] = Counter()
    outages: Counter[Channel] = Counter()
    resume_at: dict[Channel, float] = {}
    paused: dict[Channel, str] = {}
    in_flight: dict[PrefectFuture[int], Channel] = {}
    while True:
        with database().unit_of_work() as session:
            incident = get_incident(session, incident_key)
            ledger.apply_waiting_reports(
                session, incident, lambda c: retry_policy(config, c), chain
            )
            now = time.monotonic()
            active = [c for c in chain if c not in paused]
            due = ledger.due_channels(session, incident, active)
            ready = [c for c in active if resume_at.get(c, 0) <= now]
            next_at = ledger.next_due(session, incident, ready, report_wait(config))
        lanes = Counter(in_flight.values())
        for channel in (c for c in ready if c in due):
            for _ in range(PIPELINE - lanes[channel]):
                future = send_batch.submit(incident_key, channel, worker, names)
                in_flight[future] = channel
        if in_flight:
            done = next(as_completed(list(in_flight)))
            channel = in_flight.pop(done)
            try:
                leased = done.result()
            except ProviderUnavailable as exc:
                # The lane's other batch usually meets the same outage: count it once.
                if channel not in paused and resume_at.get(channel, 0) <= time.monotonic():
                    outages[channel] += 1
                    if outages[channel] >= config.outage_retries:
                        paused[channel] = str(exc)
                    else:
                        resume_at[channel] = time.monotonic() + policy.delay(outages[channel])
                continue
            sent[str(channel)] += leased
            if leased:  # a batch that found nothing to send says nothing about the provider
                outages[channel] = 0
            continue
        # Nothing in flight, nothing to send now: wait for the next retry, lease expiry or
        # outage backoff, or stop when there is none.
        waits = [resume_at[c] - now for c in active if c in due and resume_at.get(c, 0) > now]
        if next_at is not None:
            waits.append((next_at - utcnow()).total_seconds())
        if not waits:
            break
        time.sleep(min(max(min(waits), 0.05), MAX_IDLE_WAIT))
    if paused:
        raise ProviderUnavailable(" | ".join(paused.values()))
    return dict(sent)


@task(name="send-batch", **STEP_TASK)
def send_batch(incident_key: str, channel: Channel, worker: str, chain: list[str]) -> int:
    """Lease one batch of ``channel``, render it, then, in the lane's turn, send it and
    record each result.

    Returns how many rows were leased. If the provider cannot be used at all, the untried
    rows go back to the queue without costing the people an attempt and
    ``ProviderUnavailable`` is raised: an outage must not write anyone off as unreachable.
    """
    config = settings()
    with database().unit_of_work() as session:
        incident = get_incident(session, incident_key)
        rows = ledger.claim(
            session, incident, channel, worker, config.batch_size, config.lease_seconds
        )
        notice = latest_notice(session, incident)
        config = config.outside_world(incident.exercise, incident.key)  # an exercise: sandbox
        # Letters above the vendor threshold: each one's wave, for the vendor's hand-over.
        waves = vendor.plan(session, incident, rows, config) if channel is Channel.LETTER else None
    if not rows:
        return 0
    chain_channels = [Channel(c) for c in chain]
    with ExitStack() as turn:
        try:
            assert notice is not None  # assess refuses to finish without one
            # Worded for this channel: a call does not "reply to this email".
            texts = {locale: t.for_channel(channel) for locale, t in notice.parsed().items()}
            writable = notice_locales(channel) & set(texts)
            keys = vault()
            renderer = NoticeRenderer()
            messages = [
                _message(row, channel, incident, texts, writable, config, keys, renderer)
                for row in rows
            ]
            handover = (
                vendor.handover(config, incident, notice.version, texts, messages, waves)
                if waves is not None
                else None
            )
            turn.enter_context(_lane(incident_key, channel))
            connections = turn.enter_context(provider_slots(channel, config, worker))
            results = asyncio.run(_send(channel, config, messages, connections, handover))
        except BaseException as exc:  # nothing was tried: hand the whole batch back, then stop
            results = [
                DeliveryResult(
                    notification_id=row.id, status=DeliveryStatus.DEFERRED, detail=safe_reason(exc)
                )
                for row in rows
            ]
            _record(incident_key, channel, worker, results, config, chain_channels, len(rows))
            raise
        outcome = _record(incident_key, channel, worker, results, config, chain_channels, len(rows))
    if outcome["deferred"]:
        reason = next(r.detail for r in results if r.status is DeliveryStatus.DEFERRED)
        raise ProviderUnavailable(
            f"{channel}: {reason}. Nothing was lost: {outcome['deferred']} notices are back in "
            f"the queue; run `breach run {incident_key}` again once the provider is reachable"
        )
    return len(rows)


_LANES: dict[tuple[str, Channel], threading.Lock] = {}
_LANES_LOCK = threading.Lock()


def _lane(incident_key: str, channel: Channel) -> threading.Lock:
    """The turn to send and record on one incident's channel in this process."""
    with _LANES_LOCK:
        return _LANES.setdefault((incident_key, channel), threading.Lock())


@contextmanager
def provider_slots(channel: Channel, config: Settings, worker: str) -> Iterator[int | None]:
    """Hold this batch's share of a provider's connections while it is sent.

    SMTP relays cap connections per client, so every dispatcher's pool counts against one
    limit kept in our database (``models.pacing.ConnectionSlots``); a batch may get fewer
    connections than its pool when others hold the rest. Yields how many it may open.
    """
    if channel is not Channel.EMAIL or config.notifier_mode is not NotifierMode.LIVE:
        yield None
        return
    slots = ConnectionSlots(
        database(), SMTP_CONNECTIONS, config.smtp_max_connections, config.lease_seconds
    )
    with slots.hold(worker, config.smtp_pool_size) as granted:
        yield granted


async def _send(
    channel: Channel,
    config: Settings,
    messages: list[OutboundMessage],
    connections: int | None,
    handover: Notifier | None = None,
) -> list[DeliveryResult]:
    """Send through the channel's adapter, or the batch's own vendor hand-over."""
    if handover is not None:
        return await handover.send(messages)
    notifier = notifier_for(
        channel, config, pacer=pacer_for(channel, config), connections=connections
    )
    if channel is Channel.EMAIL and config.notifier_mode is NotifierMode.LIVE:
        notifier = BrakedNotifier(
            notifier, _brake(config.retry_base_seconds, config.retry_max_seconds)
        )
    return await notifier.send(messages)


def pacer_for(channel: Channel, config: Settings) -> DatabasePacer | None:
    """The channel's shared rate limit in live mode, or None where it has none."""
    rate = rate_per_second(channel, config)
    if config.notifier_mode is NotifierMode.SANDBOX or not rate:
        return None
    return _pacer(database(), str(channel), rate)


@cache
def _brake(base_seconds: float, max_seconds: float) -> DomainBrake:
    """This process's brake on mail domains that defer (``notifiers.domains``): what one
    batch learns about a domain holds for the next, whichever incident it is for."""
    policy = ledger.RetryPolicy(None, base_seconds, max_seconds)
    return DomainBrake(backoff=policy.delay)


@cache
def _pacer(db: Database, name: str, per_second: float) -> DatabasePacer:
    """This process's one pacer for a limit: batches after the first carry on its spacing
    and its reserved slots instead of starting a schedule of their own."""
    return DatabasePacer(db, name, per_second)


def _record(
    incident_key: str,
    channel: Channel,
    worker: str,
    results: list[DeliveryResult],
    config: Settings,
    chain: list[Channel],
    leased: int,
) -> Counter[str]:
    with database().unit_of_work() as session:
        # The incident's row first: the timeline event below locks it, and taking that lock
        # after this transaction's inserts (a fallback's new row references the incident)
        # would deadlock with another lane's record doing the same on PostgreSQL.
        incident = get_incident(session, incident_key, lock=True)
        outcome = ledger.record_results(
            session, worker, results, retry_policy(config, channel), chain
        )
        record(
            session,
            incident,
            EventKind.NOTICE_BATCH_SENT,
            f"flow:notify/{worker}",
            {"channel": str(channel), "leased": leased, **outcome},
        )
    return outcome


def _message(
    row: ledger.Leased,
    channel: Channel,
    incident: Incident,
    texts: dict[str, NoticeText],
    writable: frozenset[str],
    config: Settings,
    keys: Vault,
    renderer: NoticeRenderer,
) -> OutboundMessage:
    """Render one person's notice; their contact details are decrypted here and only here."""
    subject = row.subject
    name = keys.decrypt("name", subject.name_enc)
    field = CONTACT_FIELD[channel]
    contact = keys.decrypt(field, getattr(subject, f"{field}_enc"))
    assert contact is not None  # rows are only queued on channels with a usable contact
    locale = choose_locale(subject.locale, writable, config.default_locale)
    text = texts[locale]
    link = notice_link(config, incident.key, locale)
    address = contact if channel is Channel.LETTER else None
    zone = timezone_of(subject.country, subject.region)
    content = notice_content(
        incident, text, locale, config, name=name, address=address, link=link, timezone=zone
    )
    rendered = renderer.render(content, str(channel))
    return OutboundMessage(
        notification_id=row.id,
        message_id=(
            message_id(row.idempotency_key, config.sender)
            if channel is Channel.EMAIL
            else row.idempotency_key
        ),
        channel=channel,
        recipient=contact,
        recipient_name=name,
        locale=locale,
        timezone=zone,
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        short_text=rendered.short_text,
        link=link,
    )


def usable_chain(
    session: Session, incident: Incident, config: Settings
) -> tuple[list[Channel], dict[str, str]]:
    """The incident's chain without the channels this installation cannot send on (for an
    exercise, the sandbox's: every channel)."""
    config = config.outside_world(incident.exercise, incident.key)
    chain, skipped = [], {}
    for channel in chain_for(session, incident):
        reason = unconfigured_reason(channel, config)
        if reason:
            skipped[str(channel)] = reason
        else:
            chain.append(channel)
    if not chain:
        raise BreachError(
            f"no channel of {incident.key}'s chain can be used here: "
            + "; ".join(f"{c}: {r}" for c, r in skipped.items())
        )
    return chain, skipped


def report_wait(config: Settings) -> float:
    """How long to wait for SMS and call outcomes: only live Twilio sends report them."""
    if config.notifier_mode is NotifierMode.LIVE and config.twilio_account_sid:
        return config.report_wait_seconds
    return 0


def retry_policy(config: Settings, channel: Channel | None = None) -> ledger.RetryPolicy:
    """Temporary failures are retried for the retry lifetime, bounded by the deadline's
    margin; calls not answered, ``voice_max_attempts`` times (a count is the rule there)."""
    return ledger.RetryPolicy(
        max_attempts=config.voice_max_attempts if channel is Channel.VOICE else config.max_attempts,
        base_seconds=config.retry_base_seconds,
        max_seconds=config.retry_max_seconds,
        lifetime_seconds=config.retry_lifetime_hours * 3600,
        deadline_margin_seconds=config.deadline_margin_hours * 3600,
    )
