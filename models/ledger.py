"""The delivery ledger's contract: queue, claim with a lease, record results (and a mailing
vendor's returns), count.

Every function works inside the caller's unit of work. Claiming uses
``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL so several workers can share an
incident; SQLite serializes writers with ``BEGIN IMMEDIATE`` (see ``models.db``).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta
from typing import cast

from sqlalchemy import (
    ColumnElement,
    Table,
    and_,
    bindparam,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session, aliased

from breachflow.models import bulk
from breachflow.models.base import UTCDateTime, utcnow
from breachflow.models.chain import (
    PROBLEM_COLUMN,
    Skip,
    explain,
    first_usable_sql,
    next_channel,
    subjects_with_contacts,
)
from breachflow.models.delivery import (
    Channel,
    DeliveryResult,
    DeliveryStatus,
    ProviderEvent,
    ProviderEventStatus,
)
from breachflow.models.errors import InvalidInput
from breachflow.models.incident import Incident, IncidentState
from breachflow.models.notification import (
    FINAL_STATES,
    REACHED_STATES,
    DeliveryReport,
    Notification,
    NotificationState,
    idempotency_key,
    idempotency_key_sql,
)
from breachflow.models.subject import Subject
from breachflow.models.workers import orphaned

State = NotificationState
REASON_WIDTH = 500  # the stored width of a reason
#: Channels whose providers report later what became of a message (status callbacks).
REPORTED = frozenset({Channel.SMS, Channel.VOICE})
#: The channel of the row of a person no channel could even be tried for.
NO_CHANNEL = "none"


#: People without a usable channel written per round trip: memory stays flat at any number.
QUEUE_CHUNK = 20_000


def queue(
    session: Session, incident: Incident, chain: Sequence[Channel], version: int
) -> Counter[str]:
    """Start everyone who has no row for ``version`` on the first usable channel of ``chain``.

    A person with no usable contact on any channel still gets a row, on no channel
    (``none``), directly ``failed_permanent`` with the reasons: everyone affected appears
    in the ledger. Returns the number queued per channel and ``unreachable``.

    Everyone with a usable channel is queued by one ``INSERT ... SELECT`` in the database
    (channel and idempotency key computed there), so memory stays flat and nothing crosses
    the wire per person; who has a row already is an anti-join (NOT EXISTS), so a resumed
    run costs one pass. The few left, on no channel, are written from here with the
    reasons, ``QUEUE_CHUNK`` at a time.
    """
    has_row = (
        select(Notification.id)
        .where(
            Notification.incident_id == incident.id,
            Notification.subject_id == Subject.id,
            Notification.notice_version == version,
        )
        .exists()
    )
    table = cast(Table, Notification.__table__)
    # Who has a row is looked up per person; fresh statistics keep that an index probe of
    # the person's own rows (bulk.analyze), not a read of the incident's.
    bulk.analyze(session, table)
    now = utcnow()
    before = _rows_per_channel(session, incident, version)
    channel = first_usable_sql(chain)
    reachable = select(
        literal(incident.id),
        Subject.id,
        channel,
        literal(version),
        idempotency_key_sql(incident.key, Subject.id, channel, version),
        literal(State.QUEUED.value),
        literal(0),
        literal(now, UTCDateTime()),
        literal(now, UTCDateTime()),
    ).where(Subject.incident_id == incident.id, channel.is_not(None), ~has_row)
    # PostgreSQL: never a nested loop over the ledger. While it holds few rows for the
    # incident (a first queue, a grown population), the planner would read them again for
    # every person, and this very statement adds a row per person to what each read walks
    # (unseen, but visited): 1,000,000 people ran for minutes instead of 21 s. A hash or
    # merge anti-join reads the rows already there once.
    with bulk.planner_settings(session, enable_nestloop="off"):
        session.execute(
            insert(Notification).from_select(
                ["incident_id", "subject_id", "channel", "notice_version", "idempotency_key",
                 "state", "attempts", "queued_at", "updated_at"],
                reachable,
            )
        )  # fmt: skip
    outcome = _rows_per_channel(session, incident, version) - before
    stored_now = now.replace(tzinfo=None)  # the bulk path takes stored form: naive UTC
    after = 0
    while True:  # everyone still without a row has no usable channel
        people = session.execute(
            subjects_with_contacts(incident.id)
            .where(Subject.id > after, ~has_row)
            .order_by(Subject.id)
            .limit(QUEUE_CHUNK)
        ).all()
        if not people:
            return outcome
        rows = []
        for contacts in people:
            channel_left, skipped = next_channel(contacts._mapping, chain, None)
            outcome[str(channel_left) if channel_left else "unreachable"] += 1
            rows.append(
                _new_row(
                    incident, contacts.id, channel_left or NO_CHANNEL, version, stored_now,
                    failed=None if channel_left else _unreachable(skipped),
                )
            )  # fmt: skip
        bulk.insert_rows(session, table, rows)
        after = people[-1].id


def _rows_per_channel(session: Session, incident: Incident, version: int) -> Counter[str]:
    return Counter(
        dict(
            session.execute(
                select(Notification.channel, func.count())
                .where(
                    Notification.incident_id == incident.id,
                    Notification.notice_version == version,
                    Notification.channel != NO_CHANNEL,
                )
                .group_by(Notification.channel)
            )
            .tuples()
            .all()
        )
    )


def _new_row(
    incident: Incident,
    subject_id: int,
    channel: str,
    version: int,
    now: datetime,
    failed: str | None = None,
) -> dict[str, object]:
    return {
        "incident_id": incident.id,
        "subject_id": subject_id,
        "channel": channel,
        "notice_version": version,
        "idempotency_key": idempotency_key(incident.key, subject_id, channel, version),
        "state": (State.FAILED_PERMANENT if failed else State.QUEUED).value,  # stored form
        "last_error": failed,
        "attempts": 0,
        "queued_at": now,
        "updated_at": now,
    }


def _unreachable(skipped: list[Skip]) -> str:
    return f"no channel left: {explain(skipped)}"[:REASON_WIDTH]


@dataclass(frozen=True)
class LeasedSubject:
    """What rendering one person's notice needs of them: the encrypted contacts, the
    locale and the place (for the time zone). A plain record, not an ORM object: building
    500 of those per batch was a tenth of a dispatcher's CPU."""

    external_id: str
    name_enc: bytes | None
    email_enc: bytes | None
    phone_enc: bytes | None
    push_enc: bytes | None
    address_enc: bytes | None
    locale: str
    country: str | None
    region: str | None


@dataclass(frozen=True)
class Leased:
    """A ledger row a claim leased: its id, its idempotency key and its person."""

    id: int
    idempotency_key: str
    subject: LeasedSubject


_SUBJECT_COLUMNS = [getattr(Subject, field.name) for field in fields(LeasedSubject)]


def claim(
    session: Session,
    incident: Incident,
    channel: Channel,
    worker: str,
    limit: int,
    lease_seconds: float,
) -> list[Leased]:
    """Lease up to ``limit`` rows of ``channel`` that are due: queued, due for retry, or
    with a dead lease. Marking them ``sending`` commits before anything leaves.

    A claim costs the person no attempt: an attempt is counted when its outcome is
    recorded, so a lease lost to our own crash (a dead lease, taken over) charges nobody.

    One ``UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED LIMIT n) RETURNING id``,
    then the people read by the returned ids' range and this lease: no statement carries
    a list of 500 ids, whose text the driver would parse again on every batch.
    """
    now = utcnow()
    due = _claimable(session, incident, channel, now)
    lease_expires_at = now + timedelta(seconds=lease_seconds)
    picked = (
        select(Notification.id)
        .where(Notification.incident_id == incident.id, Notification.channel == channel, due)
        .order_by(Notification.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = set(
        session.scalars(
            update(Notification)
            .where(Notification.id.in_(picked))
            .values(
                state=State.SENDING,
                lease_owner=worker,
                lease_expires_at=lease_expires_at,
                retry_at=None,
                updated_at=now,
            )
            .returning(Notification.id),
            execution_options={"synchronize_session": False},
        )
    )
    if not ids:
        return []
    rows = session.execute(
        select(Notification.id, Notification.idempotency_key, *_SUBJECT_COLUMNS)
        .join(Subject, Subject.id == Notification.subject_id)
        .where(
            Notification.id.between(min(ids), max(ids)),
            Notification.lease_owner == worker,
            Notification.state == State.SENDING,
        )
        .order_by(Notification.id)
    )
    # The range may hold rows this worker leased in another claim: only this claim's.
    return [
        Leased(row_id, key, LeasedSubject(*person))
        for row_id, key, *person in rows
        if row_id in ids
    ]


@dataclass(frozen=True)
class RetryPolicy:
    """When a temporary failure is tried again, and which rule ends the trying.

    Like a mail server's queue (Postfix keeps trying for days): exponential backoff with
    jitter up to ``max_seconds``, for ``lifetime_seconds`` from when the row was queued on
    its channel, and never closer to the notice deadline than ``deadline_margin_seconds``,
    so the next channel still has time. ``max_attempts`` caps the count where a count is
    the rule (a call not answered twice); elsewhere it is None.
    """

    max_attempts: int | None
    base_seconds: float
    max_seconds: float
    lifetime_seconds: float | None = None
    deadline_margin_seconds: float = 0.0

    def delay(self, attempts: int) -> float:
        """Exponential backoff with jitter: spreads retries so they don't arrive as a wave."""
        # Annotated: typeshed types ``int ** int`` as Any (a negative exponent gives a float).
        ceiling: float = min(self.max_seconds, self.base_seconds * 2 ** max(attempts - 1, 0))
        return ceiling * random.uniform(0.5, 1.0)

    def last_try(self, queued_at: datetime, deadline: datetime | None) -> datetime | None:
        """The latest moment this row may be tried again, or None if nothing bounds it."""
        limits = []
        if self.lifetime_seconds is not None:
            limits.append(queued_at + timedelta(seconds=self.lifetime_seconds))
        if deadline is not None:
            limits.append(deadline - timedelta(seconds=self.deadline_margin_seconds))
        return min(limits) if limits else None

    def stop_rule(self, row: Notification, now: datetime, deadline: datetime | None) -> str | None:
        """Why ``row`` is not tried again after this failure, or None to try again."""
        if self.max_attempts is not None and row.attempts >= self.max_attempts:
            return f"gave up after {_tries(row.attempts)}"
        if self.lifetime_seconds is not None and now >= row.queued_at + timedelta(
            seconds=self.lifetime_seconds
        ):
            return (
                f"gave up after {_tries(row.attempts)} over {_span(self.lifetime_seconds)}"
                " (the retry lifetime)"
            )
        if deadline is not None and now >= deadline - timedelta(
            seconds=self.deadline_margin_seconds
        ):
            return (
                f"gave up after {_tries(row.attempts)}, {_span(self.deadline_margin_seconds)}"
                f" before the notice deadline {deadline:%Y-%m-%d %H:%M} UTC"
            )
        return None


def _tries(attempts: int) -> str:
    return f"{attempts} attempt" + ("" if attempts == 1 else "s")


def _span(seconds: float) -> str:
    hours = seconds / 3600
    return f"{hours:g} h" if hours >= 1 else f"{seconds:g} s"


def record_results(
    session: Session,
    worker: str,
    results: list[DeliveryResult],
    policy: RetryPolicy,
    chain: Sequence[Channel],
) -> Counter[str]:
    """Write each result to its row (only while we still hold its lease); count outcomes.

    A permanent failure opens the person's next usable channel in ``chain`` in the same
    transaction, so no one is left between channels by a crash. Sent rows, nearly all of
    them, are written in one statement: this transaction is the pause between a channel's
    batches.
    """
    now = utcnow()
    outcome: Counter[str] = Counter()
    held = set(
        session.scalars(
            select(Notification.id)
            .where(
                Notification.id.in_([r.notification_id for r in results]),
                Notification.state == State.SENDING,
                Notification.lease_owner == worker,
            )
            .with_for_update()
        )
    )
    outcome["lease_lost"] = sum(1 for r in results if r.notification_id not in held)
    sent = [r for r in results if r.notification_id in held and r.status is DeliveryStatus.SENT]
    if sent:
        # SQLAlchemy types ``__table__`` as FromClause; a ``__tablename__`` class maps a Table.
        table = cast(Table, Notification.__table__)
        session.execute(
            update(table)
            .where(table.c.id == bindparam("row_id"))
            .values(
                state=State.SENT,
                attempts=table.c.attempts + 1,
                sent_at=now,
                retry_at=None,
                lease_owner=None,
                lease_expires_at=None,
                last_error=None,
                provider_message_id=bindparam("provider_id"),
            ),
            [{"row_id": r.notification_id, "provider_id": r.provider_message_id} for r in sent],
        )
        outcome["sent"] = len(sent)
    handed = [
        r for r in results if r.notification_id in held and r.status is DeliveryStatus.HANDED_OVER
    ]
    if handed:
        _record_handed_over(session, handed)
        outcome["handed_over"] = len(handed)
    others = [r for r in results if r.notification_id in held and r.status not in ACCEPTED]
    if others:
        _record_failures(session, others, policy, chain, now, outcome)
    return +outcome


#: What a provider took from us: the row leaves the dispatcher's hands.
ACCEPTED = frozenset({DeliveryStatus.SENT, DeliveryStatus.HANDED_OVER})


def _record_handed_over(session: Session, results: list[DeliveryResult]) -> None:
    """Letters in a mailing vendor's hand-over: the attempt is made, nobody is reached yet.
    The row keeps the hand-over's id and the day it is to be posted; the vendor's return
    file moves it on (``vendor_mailed``, ``vendor_returned``)."""
    table = cast(Table, Notification.__table__)
    session.execute(
        update(table)
        .where(table.c.id == bindparam("row_id"))
        .values(
            state=State.HANDED_OVER,
            attempts=table.c.attempts + 1,
            mail_on=bindparam("mail_on"),
            retry_at=None,
            lease_owner=None,
            lease_expires_at=None,
            last_error=None,
            provider_message_id=bindparam("provider_id"),
        ),
        [
            {
                "row_id": r.notification_id,
                "provider_id": r.provider_message_id,
                "mail_on": r.mail_on,
            }
            for r in results
        ],
    )


def _record_failures(
    session: Session,
    results: list[DeliveryResult],
    policy: RetryPolicy,
    chain: Sequence[Channel],
    now: datetime,
    outcome: Counter[str],
) -> None:
    rows = {
        row.id: row
        for row in session.scalars(
            select(Notification).where(Notification.id.in_([r.notification_id for r in results]))
        )
    }
    failed: list[Notification] = []
    deadline = _notice_deadline(session, results, rows)
    for result in results:
        row = rows[result.notification_id]
        row.lease_owner = row.lease_expires_at = None
        row.last_error = _reason(row.channel, result.detail)
        if result.status is DeliveryStatus.DEFERRED:
            row.state, row.retry_at = State.FAILED_TEMPORARY, now  # never tried: no attempt
            outcome["deferred"] += 1
            continue
        if result.status is DeliveryStatus.HELD:  # its mail domain is braked: not tried either
            row.state = State.FAILED_TEMPORARY
            row.retry_at = now + timedelta(seconds=result.retry_after or 0)
            outcome["held"] += 1
            continue
        row.attempts += 1
        if result.status is DeliveryStatus.FAILED_TEMPORARY:
            _retry_or_give_up(row, policy, now, deadline, result.retry_after)
        else:
            row.state, row.retry_at = State.FAILED_PERMANENT, None
        if row.state == State.FAILED_PERMANENT:
            failed.append(row)
            if result.contact_dead:
                _mark_contact_dead(session, row)
        outcome[str(row.state)] += 1
    outcome["fallback"] = _open_next_channels(session, failed, chain, now)


def _reason(channel: str, detail: str | None) -> str | None:
    return f"{channel}: {detail}"[:REASON_WIDTH] if detail else None


def _notice_deadline(
    session: Session, results: list[DeliveryResult], rows: dict[int, Notification]
) -> datetime | None:
    """The individual-notice deadline of the incident a batch belongs to."""
    incident = session.get(Incident, rows[results[0].notification_id].incident_id)
    return incident.notice_deadline if incident else None


def _retry_or_give_up(
    row: Notification,
    policy: RetryPolicy,
    now: datetime,
    deadline: datetime | None,
    retry_after: float | None = None,
) -> None:
    """Schedule the next try, no later than the policy's last one; or give up, saying which
    rule ended it."""
    rule = policy.stop_rule(row, now, deadline)
    if rule is None:
        row.state = State.FAILED_TEMPORARY
        retry_at = now + timedelta(seconds=max(policy.delay(row.attempts), retry_after or 0))
        last = policy.last_try(row.queued_at, deadline)
        row.retry_at = min(retry_at, last) if last else retry_at
    else:
        row.state, row.retry_at = State.FAILED_PERMANENT, None
        detail = (row.last_error or "").removeprefix(f"{row.channel}: ")
        row.last_error = f"{row.channel}: {rule}: {detail}"[:REASON_WIDTH]


def _mark_contact_dead(session: Session, row: Notification) -> None:
    """The provider says this contact is gone: no later run should try it again."""
    detail = (row.last_error or "").removeprefix(f"{row.channel}: ")
    problem = (detail or "reported dead by the provider")[:300]
    session.execute(
        update(Subject)
        .where(Subject.id == row.subject_id)
        .values({PROBLEM_COLUMN[Channel(row.channel)]: problem})
    )


def _open_next_channels(
    session: Session, failed: list[Notification], chain: Sequence[Channel], now: datetime
) -> int:
    """Queue each failed person on their next usable channel; the rest are unreachable."""
    if not failed:
        return 0
    contacts = {
        row.id: row._mapping
        for row in session.execute(
            subjects_with_contacts(failed[0].incident_id).where(
                Subject.id.in_({row.subject_id for row in failed})
            )
        )
    }
    incident = session.get(Incident, failed[0].incident_id)
    assert incident is not None
    opened = []
    for row in failed:
        channel, skipped = next_channel(contacts[row.subject_id], chain, Channel(row.channel))
        if channel is None:
            if skipped:
                reasons = [row.last_error or row.channel, explain(skipped)]
                row.last_error = "; ".join(reasons)[:REASON_WIDTH]
            continue
        opened.append(
            _new_row(incident, row.subject_id, channel, row.notice_version, now)
            | {"last_error": explain(skipped)[:REASON_WIDTH] or None}
        )
    if opened:
        session.execute(insert(Notification), opened)
    return len(opened)


def apply_report(
    session: Session,
    report: ProviderEvent,
    policy_for: Callable[[Channel], RetryPolicy],
    chain_of: Callable[[Incident], Sequence[Channel]],
) -> str:
    """Record a provider's status report (webhook) and apply it to its ledger row.

    Every report is kept. One that arrives before the send's result is recorded (providers
    can be that fast) waits: the dispatcher applies it on its next look at the ledger
    (``apply_waiting_reports``), after the row's provider id is written.
    Returns what happened: ``applied``, ``pending`` or ``ignored`` (stale or repeated).
    """
    stored = DeliveryReport(
        provider_message_id=report.provider_message_id,
        status=report.status,
        detail=(report.detail or "")[:REASON_WIDTH] or None,
        received_at=utcnow(),
    )
    session.add(stored)
    row = session.scalar(
        select(Notification)
        .where(Notification.provider_message_id == report.provider_message_id)
        .with_for_update(of=Notification)
    )
    if row is None:
        return "pending"
    return _apply(session, row, stored, policy_for(Channel(row.channel)), chain_of)


def _apply(
    session: Session,
    row: Notification,
    report: DeliveryReport,
    policy: RetryPolicy,
    chain_of: Callable[[Incident], Sequence[Channel]],
) -> str:
    report.applied = True
    if row.state != State.SENT:  # already delivered, failed over, or being resent
        return "ignored"
    now = utcnow()
    if report.status == ProviderEventStatus.DELIVERED:
        row.state, row.delivered_at = State.DELIVERED, now
        return "applied"
    row.last_error = _reason(row.channel, report.detail or report.status)
    if report.status == ProviderEventStatus.FAILED_TEMPORARY:
        incident = session.get(Incident, row.incident_id)
        _retry_or_give_up(row, policy, now, incident.notice_deadline if incident else None)
    else:
        row.state = State.FAILED_PERMANENT
    if row.state == State.FAILED_PERMANENT:
        incident = session.get(Incident, row.incident_id)
        assert incident is not None
        _open_next_channels(session, [row], chain_of(incident), now)
    return "applied"


def apply_waiting_reports(
    session: Session,
    incident: Incident,
    policy_for: Callable[[Channel], RetryPolicy],
    chain: Sequence[Channel],
) -> int:
    """Apply reports that found no row when they arrived but have one now.

    On PostgreSQL a report and the send's result can commit at the same moment, each
    unseen by the other; dispatchers call this as they go, so no report stays unapplied.
    """
    waiting = session.execute(
        select(DeliveryReport, Notification)
        .join(
            Notification,
            Notification.provider_message_id == DeliveryReport.provider_message_id,
        )
        .where(Notification.incident_id == incident.id, DeliveryReport.applied.is_(False))
        .order_by(DeliveryReport.id)
        .with_for_update(of=[DeliveryReport, Notification], skip_locked=True)
    ).all()
    for report, row in waiting:
        _apply(session, row, report, policy_for(Channel(row.channel)), lambda _: chain)
    return len(waiting)


def next_due(
    session: Session,
    incident: Incident,
    channels: Sequence[Channel],
    report_wait_seconds: float = 0,
) -> datetime | None:
    """When the earliest waiting row of ``channels`` (a retry, or a lease another worker
    holds) becomes claimable; None when none is waiting.

    With ``report_wait_seconds``, an SMS or call sent less than that long ago is waiting
    too: its provider may still report it undelivered or not answered, which reopens it.
    """
    names = [str(c) for c in channels]
    due = session.scalar(
        select(func.min(func.coalesce(Notification.retry_at, Notification.lease_expires_at))).where(
            Notification.incident_id == incident.id,
            Notification.channel.in_(names),
            Notification.state.in_([State.FAILED_TEMPORARY, State.SENDING]),
        )
    )
    if not report_wait_seconds:
        return due
    wait = timedelta(seconds=report_wait_seconds)
    oldest = session.scalar(
        select(func.min(Notification.sent_at)).where(
            Notification.incident_id == incident.id,
            Notification.channel.in_([c for c in names if c in REPORTED]),
            Notification.state == State.SENT,
            Notification.sent_at > utcnow() - wait,
        )
    )
    awaiting = oldest + wait if oldest else None
    return min((m for m in (due, awaiting) if m is not None), default=None)


def _claimable(
    session: Session, incident: Incident, channel: Channel, now: datetime
) -> ColumnElement[bool]:
    """Rows of ``channel`` a claim may take now: queued, due for retry, or leased by a
    process that is gone (its lease expired, or its process no longer exists here)."""
    leased_owners = session.scalars(
        select(Notification.lease_owner)
        .where(
            Notification.incident_id == incident.id,
            Notification.channel == channel,
            Notification.state == State.SENDING,
        )
        .distinct()
    ).all()
    orphaned_owners = [owner for owner in leased_owners if owner and orphaned(owner)]
    return or_(
        Notification.state == State.QUEUED,
        and_(Notification.state == State.FAILED_TEMPORARY, Notification.retry_at <= now),
        and_(
            Notification.state == State.SENDING,
            or_(Notification.lease_expires_at < now, Notification.lease_owner.in_(orphaned_owners)),
        ),
    )


def due_channels(session: Session, incident: Incident, channels: Sequence[Channel]) -> set[Channel]:
    """Which of ``channels`` have rows a claim would take now.

    Rows another live process holds are not due: counting them sent shards claiming empty
    batches while the last batches of a channel were out (373 of 573 task runs at 100,000
    people, bench/incident.py). One indexed ``LIMIT 1`` look per channel.
    """
    now = utcnow()
    return {
        channel
        for channel in channels
        if session.scalar(
            select(Notification.id)
            .where(
                Notification.incident_id == incident.id,
                Notification.channel == channel,
                _claimable(session, incident, channel, now),
            )
            .limit(1)
        )
        is not None
    }


def counts(session: Session, incident: Incident) -> dict[str, int]:
    """Ledger rows per state (a person who fell back has a row per channel tried)."""
    rows = session.execute(
        select(Notification.state, func.count())
        .where(Notification.incident_id == incident.id)
        .group_by(Notification.state)
    ).all()
    return {str(state): n for state, n in rows}


def channel_counts(session: Session, incident: Incident) -> dict[str, dict[str, int]]:
    """Ledger rows per channel and state: what each channel did."""
    table: dict[str, dict[str, int]] = {}
    for channel, state, n in session.execute(
        select(Notification.channel, Notification.state, func.count())
        .where(Notification.incident_id == incident.id)
        .group_by(Notification.channel, Notification.state)
    ):
        table.setdefault(str(channel), {})[str(state)] = n
    return table


@dataclass(frozen=True)
class PeopleOutcome:
    """Per person, not per row: reached on some channel, still in progress, or unreachable."""

    affected: int
    reached: int
    pending: int

    @property
    def unreachable(self) -> int:
        return self.affected - self.reached - self.pending

    @property
    def settled(self) -> int:
        return self.reached + self.unreachable


def people(session: Session, incident: Incident) -> PeopleOutcome:
    """A person has at most one row that is not ``failed_permanent`` (channels are tried one
    after another), so distinct people per state class add up."""

    def distinct(*where: ColumnElement[bool]) -> int:
        return (
            session.scalar(
                select(func.count(func.distinct(Notification.subject_id))).where(
                    Notification.incident_id == incident.id, *where
                )
            )
            or 0
        )

    return PeopleOutcome(
        affected=distinct(),
        reached=distinct(Notification.state.in_(REACHED_STATES)),
        pending=distinct(Notification.state.not_in(FINAL_STATES)),
    )


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


def notification_finished_at(session: Session, incident: Incident) -> datetime | None:
    """When notifying individuals finished (the last notice sent), or None while it has
    not: a deadline for telling people is met only by a finished notification."""
    if (
        not incident.has_reached(IncidentState.NOTIFIED)
        or incident.state == IncidentState.DISMISSED
    ):
        return None
    return last_sent_at(session, incident) or incident.assessed_at


def _left_without_channel() -> ColumnElement[bool]:
    """A ``failed_permanent`` row that is its person's last: no channel was opened after it,
    and nothing else of theirs is still in play. Its person is unreachable."""
    other = aliased(Notification)
    still_in_play = (
        select(other.id)
        .where(
            other.incident_id == Notification.incident_id,
            other.subject_id == Notification.subject_id,
            or_(other.state != State.FAILED_PERMANENT, other.id > Notification.id),
        )
        .exists()
    )
    return and_(Notification.state == State.FAILED_PERMANENT, ~still_in_play)


def unreachable_reasons(session: Session, incident: Incident) -> dict[str, int]:
    """Why people could not be reached on any channel, most common first.

    The reason is that of each unreachable person's last row, which lists the channels
    tried or skipped; reasons hold no contact details.
    """
    rows = session.execute(
        select(Notification.last_error, func.count())
        .where(Notification.incident_id == incident.id, _left_without_channel())
        .group_by(Notification.last_error)
        .order_by(func.count().desc())
    ).all()
    return {reason or "unknown": n for reason, n in rows}


@dataclass(frozen=True)
class ChannelFunnel:
    """What became of the notices put on one channel, as a funnel: every row ``queued``
    on it was ``sent`` (and maybe ``delivered``), is still ``in_progress``, or ``failed``
    for good, after which its person ``fell_back`` to their next channel or was left
    ``unreachable``. Rows, not people: a person who fell back counts on each channel."""

    channel: str
    queued: int
    in_progress: int
    sent: int
    delivered: int
    failed: int
    fell_back: int
    unreachable: int


def funnel(session: Session, incident: Incident) -> list[ChannelFunnel]:
    """Per channel, in the default chain's order; ``none`` (people no channel could be
    tried for), last, counts them as queued and unreachable at once."""
    order = [*Channel, NO_CHANNEL]
    states = channel_counts(session, incident)
    unreachable = dict(
        session.execute(
            select(Notification.channel, func.count())
            .where(Notification.incident_id == incident.id, _left_without_channel())
            .group_by(Notification.channel)
        )
        .tuples()
        .all()
    )
    rows = []
    for channel, by_state in sorted(states.items(), key=lambda item: order.index(item[0])):
        failed = by_state.get(State.FAILED_PERMANENT, 0)
        left = unreachable.get(channel, 0)
        rows.append(
            ChannelFunnel(
                channel=channel,
                queued=sum(by_state.values()),
                in_progress=sum(n for s, n in by_state.items() if s not in FINAL_STATES),
                sent=sum(by_state.get(s, 0) for s in REACHED_STATES),
                delivered=by_state.get(State.DELIVERED, 0),
                failed=failed,
                fell_back=failed - left,
                unreachable=left,
            )
        )
    return rows


def with_vendor(session: Session, incident: Incident) -> tuple[int, date | None]:
    """Letters handed to a mailing vendor and not yet said to be mailed, and the last day
    one of them is to be posted (None when there are none)."""
    count, last = session.execute(
        select(func.count(), func.max(Notification.mail_on)).where(
            Notification.incident_id == incident.id, Notification.state == State.HANDED_OVER
        )
    ).one()
    return int(count or 0), last


def vendor_mailed(row: Notification, mailed_at: datetime) -> str:
    """The mailing vendor says this letter was posted at ``mailed_at``: it is ``sent`` from
    then, and its person reached.

    Returns ``mailed``, or ``unchanged`` when the ledger already says so (an earlier return
    file, or a letter counted as sent when its PDF was handed over); raises ``InvalidInput``
    when the ledger knows otherwise, saying what it knows.
    """
    if row.state == State.HANDED_OVER:
        row.state, row.sent_at, row.last_error = State.SENT, mailed_at, None
        return "mailed"
    if row.sent_at is not None and (row.mail_on is None or row.sent_at.date() == mailed_at.date()):
        return "unchanged"
    if row.sent_at is not None:
        raise InvalidInput(f"already recorded as mailed on {row.sent_at:%Y-%m-%d}")
    if row.state == State.FAILED_PERMANENT and row.mail_on is not None:
        raise InvalidInput("already returned undeliverable, before it was mailed")
    raise InvalidInput(f"not with the mailing vendor (the letter is {row.state})")


def vendor_returned(
    session: Session, row: Notification, on: date, reason: str, chain: Sequence[Channel]
) -> str:
    """The mailing vendor says this letter could not be delivered (before posting, or the
    post brought it back): a permanent failure, so the person moves to their next usable
    channel in ``chain`` in this transaction, or is left unreachable with the reason.

    The address is marked unusable on the person, as a dead push token is: no later notice
    is posted to it. Returns ``fell_back``, ``unreachable`` or ``unchanged`` (already
    returned); raises ``InvalidInput`` for a letter that was never with a vendor.
    """
    if row.state == State.FAILED_PERMANENT:
        return "unchanged"
    if row.state not in (State.HANDED_OVER, State.SENT, State.DELIVERED):
        raise InvalidInput(f"not with the mailing vendor (the letter is {row.state})")
    row.state, row.retry_at = State.FAILED_PERMANENT, None
    row.last_error = _reason(row.channel, f"returned undeliverable on {on}: {reason}")
    _mark_contact_dead(session, row)
    opened = _open_next_channels(session, [row], chain, utcnow())
    return "fell_back" if opened else "unreachable"
