"""The deadline watchdog: no deadline passes unseen.

For every open incident, every deadline still to be met: the notice to individuals (met
when notification has finished) and each report to a regulator (met when submitted). As
each passes a configured fraction of its window (``BREACH_WATCHDOG_LEVELS``, 50%, 75%,
90%) and when it is overdue, on-call is warned by email and SMS (``BREACH_ONCALL_EMAILS``,
``BREACH_ONCALL_PHONES``) and the warning goes on the incident's timeline. A warning is
given once: the row recording it is written first, in the same transaction as its event,
so neither a second run nor a second watchdog repeats it. Several levels passed since the
last run give one warning, at the highest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import httpx
from prefect import flow
from sqlalchemy import ColumnElement, exists, func, or_, select
from sqlalchemy.orm import Session

from breachflow.flows.close.step import close_if_done
from breachflow.flows.notify.dispatch import pacer_for
from breachflow.flows.notify.forecast import Verdict, forecast
from breachflow.flows.notify.progress import record_provider_reports
from breachflow.flows.report.filing import recipient_of
from breachflow.models import ledger
from breachflow.models.anchor import checkpoint_incidents
from breachflow.models.assessment import latest_assessment
from breachflow.models.base import utcnow
from breachflow.models.delivery import Channel, DeliveryStatus, OutboundMessage
from breachflow.models.incident import Incident, IncidentState
from breachflow.models.regulator_report import RegulatorReport, ReportState, reports
from breachflow.models.runtime import anchoring, database, settings
from breachflow.models.settings import Settings
from breachflow.models.timeline import EventKind, TimelineEvent, record
from breachflow.models.watchdog import DeadlineWarning, StaffCursor
from breachflow.notifiers.email_message import message_id
from breachflow.notifiers.factory import notifier_for
from breachflow.notifiers.oncall import opsgenie, pagerduty, slack, teams, webhook
from breachflow.notifiers.oncall.delivery import StaffDeliveryError
from breachflow.rules import Obligation

OVERDUE = "overdue"
#: The forecast says everyone will not be told by the deadline at the present rates.
FORECAST_LATE = "forecast late"
#: Incidents triage has not made yet, or made nothing: no deadline runs for them.
UNWATCHED = (IncidentState.DISMISSED, IncidentState.SUSPECTED)
FILED = frozenset({ReportState.SUBMITTED, ReportState.ACKNOWLEDGED})


@dataclass(frozen=True)
class OpenDeadline:
    incident_key: str
    name: str  # e.g. "eu-gdpr regulator initial"
    starts_at: datetime
    due_at: datetime

    def level(self, now: datetime, levels: list[float]) -> str | None:
        """The highest level this deadline has passed, or None."""
        if now >= self.due_at:
            return OVERDUE
        window = (self.due_at - self.starts_at).total_seconds()
        gone = (now - self.starts_at).total_seconds() / window if window > 0 else 1.0
        passed = [level for level in sorted(levels) if gone >= level]
        return f"{passed[-1]:.0%}" if passed else None


@dataclass(frozen=True)
class DeadlineAlert:
    incident_key: str
    deadline: str
    level: str
    due_at: datetime
    exercise: bool = False  # every message about it says EXERCISE
    #: The deadline's own name where ``deadline`` adds to it (the forecast's text): what a
    #: page is keyed by, and resolved by, so it stays one alert.
    named: str = ""

    @property
    def mark(self) -> str:
        return "[EXERCISE] " if self.exercise else ""

    @property
    def key(self) -> str:
        return dedup_key(self.incident_key, self.named or self.deadline)


@dataclass(frozen=True)
class WatchdogRun:
    alerts: list[DeadlineAlert]
    undelivered: list[str]  # e.g. "sms: 1 of 2 not sent (reason)"
    reported: list[str]  # incidents whose ledger moved: flows/notify/progress.py


@flow(name="deadline_watchdog")
def deadline_watchdog() -> WatchdogRun:
    """Warn once per deadline and level; returns the warnings this run gave. Also puts on
    each timeline how its ledger moved since it last said (provider reports), and closes
    an incident whose last obligation has just ended (an announcement's period), and
    checkpoints each watched timeline that grew (models/anchor.py)."""
    config = settings()
    now = utcnow()
    given: list[DeadlineAlert] = []
    with database().unit_of_work() as session:
        keys = watched_incidents(session)
    for key in keys:
        with database().unit_of_work() as session:
            incident = session.scalars(
                select(Incident).where(Incident.key == key).with_for_update()
            ).one()
            for deadline in open_deadlines(session, incident):
                level = deadline.level(now, config.watchdog_levels)
                if level and _first_time(session, incident, deadline, level, config):
                    alert = DeadlineAlert(
                        key, deadline.name, level, deadline.due_at, incident.exercise
                    )
                    given.append(alert)
            late = _look_ahead(session, incident, config, now)
            if late:
                given.append(late)
            close_if_done(session, incident, "watchdog")  # e.g. the announcement's period ended
    _checkpoint(keys)
    undelivered = asyncio.run(_escalate(given, config)) if given else []
    undelivered += asyncio.run(_page_and_chat(given, _resolved(), config))
    return WatchdogRun(given, undelivered, record_provider_reports())


def _checkpoint(keys: list[str]) -> None:
    """The scheduled checkpoint: every watched incident whose timeline grew since its last
    one (events between stages, a stage whose own checkpoint failed)."""
    signing = anchoring()
    if signing is None or not keys:
        return
    with database().unit_of_work() as session:
        ids = session.scalars(select(Incident.id).where(Incident.key.in_(keys))).all()
    checkpoint_incidents(database(), signing, dict.fromkeys(ids, "schedule"))


# --- Paging and chat (notifiers/oncall/) --------------------------------------------------


def dedup_key(incident_key: str, deadline: str) -> str:
    """One PagerDuty alert per deadline: its levels raise it, its being met resolves it."""
    return f"breachflow/{incident_key}/{deadline}"


def _resolved() -> list[str]:
    """The warned deadlines that have been met since (or whose incident is closed or
    dismissed), each marked resolved once; their dedup keys, to resolve their pages."""
    now, keys = utcnow(), []
    with database().unit_of_work() as session:
        open_warnings = session.scalars(
            select(DeadlineWarning).where(DeadlineWarning.resolved_at.is_(None))
        ).all()
        for incident_id in sorted({w.incident_id for w in open_warnings}):
            incident = session.get(Incident, incident_id)
            assert incident is not None
            met = _met_names(session, incident)
            for warning in (w for w in open_warnings if w.incident_id == incident_id):
                if met is None or warning.deadline in met:
                    warning.resolved_at = now
                    keys.append(dedup_key(incident.key, warning.deadline))
    return sorted(set(keys))


def _met_names(session: Session, incident: Incident) -> set[str] | None:
    """The names of the incident's deadlines that are met; None when nothing of it is
    watched any more (closed, dismissed): every page of it resolves."""
    if incident.state in (IncidentState.CLOSED, IncidentState.DISMISSED):
        return None
    statuses = deadline_statuses(session, incident)
    met = {s.name for s in statuses if s.state in (DeadlineState.MET, DeadlineState.MET_LATE)}
    if incident.has_reached(IncidentState.NOTIFIED):  # the forecast was of this notice
        met.add(f"individual notice {FORECAST_LATE}")
    return met


#: How far back a channel switched on later is told: a day.
CHAT_HORIZON = timedelta(days=1)
#: What the staff channels hear, by timeline event.
CHAT_KINDS = (
    EventKind.INCIDENT_DECLARED,
    EventKind.INCIDENT_SUSPECTED,
    EventKind.STATE_CHANGED,
    EventKind.APPROVAL_GIVEN,
    EventKind.DEADLINE_WARNING,
)


@dataclass(frozen=True)
class StageLine:
    """One stage or warning to tell a staff channel: the event, and its line of text."""

    incident_id: int
    incident: str
    seq: int
    kind: str
    at: datetime
    data: dict[str, Any]
    text: str


Sender = Callable[[httpx.AsyncClient, StageLine], Coroutine[Any, Any, None]]


def _channels(config: Settings) -> dict[str, Sender]:
    """The staff channels configured, each as how to send it one line."""
    retry = {"base_seconds": config.retry_base_seconds, "max_seconds": config.retry_max_seconds}
    found: dict[str, Sender] = {}
    if config.slack_webhook_url is not None:
        slack_url = config.slack_webhook_url.get_secret_value()
        found["slack"] = lambda client, line: slack.say(client, slack_url, line.text, **retry)
    if config.teams_webhook_url is not None:
        teams_url = config.teams_webhook_url.get_secret_value()
        found["teams"] = lambda client, line: teams.say(client, teams_url, line.text, **retry)
    if config.webhook_url and config.webhook_secret is not None:
        hook, secret = config.webhook_url, config.webhook_secret.get_secret_value()

        def signed(client: httpx.AsyncClient, line: StageLine) -> Coroutine[Any, Any, None]:
            data = {"text": line.text, **line.data}
            cloud = webhook.event(line.incident, line.seq, line.kind, line.at, data)
            return webhook.send(client, hook, secret, cloud, **retry)

        found["webhook"] = signed
    return found


def _untold(target: str) -> list[StageLine]:
    """The stages and warnings ``target`` has not been told yet, oldest first."""
    with database().unit_of_work() as session:
        rows = session.execute(
            select(TimelineEvent, Incident.key, Incident.exercise)
            .join(Incident, Incident.id == TimelineEvent.incident_id)
            .outerjoin(
                StaffCursor,
                (StaffCursor.incident_id == Incident.id) & (StaffCursor.target == target),
            )
            .where(
                TimelineEvent.kind.in_([str(k) for k in CHAT_KINDS]),
                TimelineEvent.seq > func.coalesce(StaffCursor.seq, 0),
                # A channel switched on later hears what is news, not every incident's past.
                TimelineEvent.recorded_at >= utcnow() - CHAT_HORIZON,
            )
            .order_by(TimelineEvent.incident_id, TimelineEvent.seq)
            .limit(200)
        ).all()
        return [
            StageLine(
                e.incident_id, key, e.seq, e.kind, e.recorded_at,
                dict(e.payload or {}) | ({"exercise": True} if exercise else {}),
                ("[EXERCISE] " if exercise else "") + _chat_text(key, e),
            )
            for e, key, exercise in rows
        ]  # fmt: skip


def _chat_text(key: str, event: TimelineEvent) -> str:
    """One line for the channel: the incident, what happened, who did it. Never a person's
    contact details: the timeline holds none."""
    payload, who = event.payload or {}, event.actor
    match event.kind:
        case EventKind.INCIDENT_DECLARED:
            return f"{key} declared by {who}: {payload.get('title', '')}"
        case EventKind.INCIDENT_SUSPECTED:
            return f"{key} suspected (opened by {who}): triage it in Breachflow"
        case EventKind.APPROVAL_GIVEN:
            return f"{key}: {payload.get('step', 'a gate')} approved by {who}"
        case EventKind.DEADLINE_WARNING:
            level, due = payload.get("level"), payload.get("due_at")
            return f"{key}: {payload.get('deadline')} is {level} (due {due})"
        case _:
            return f"{key} is now {payload.get('to')} (by {who})"


async def _page_and_chat(
    given: list[DeadlineAlert], resolved: list[str], config: Settings
) -> list[str]:
    """Page each warning and resolve each met deadline (PagerDuty, Opsgenie), then tell each
    staff channel its lines (Slack, Teams, the webhook), moving its cursor after each;
    returns what could not be delivered."""
    retry = {"base_seconds": config.retry_base_seconds, "max_seconds": config.retry_max_seconds}
    pages = [
        pagerduty.Page(
            w.key,
            f"{w.mark}{w.incident_key}: {w.deadline} is {w.level}"
            f" (due {w.due_at:%Y-%m-%d %H:%M} UTC)",
            w.incident_key,
            w.deadline,
            w.level,
            w.due_at,
        )
        for w in given
    ]
    sending: list[Coroutine[Any, Any, None]] = []
    undelivered: list[str] = []
    async with httpx.AsyncClient(timeout=30) as client:
        if config.pagerduty_routing_key is not None:
            key, url = config.pagerduty_routing_key.get_secret_value(), config.pagerduty_url
            sending += [pagerduty.trigger(client, url, key, p, **retry) for p in pages]
            sending += [pagerduty.resolve(client, url, key, done, **retry) for done in resolved]
        if config.opsgenie_api_key is not None:
            key, url = config.opsgenie_api_key.get_secret_value(), config.opsgenie_url
            sending += [opsgenie.create(client, url, key, p, **retry) for p in pages]
            sending += [opsgenie.close(client, url, key, done, **retry) for done in resolved]
        for each in sending:
            undelivered += await _try(each)
        for target, send in _channels(config).items():
            for line in _untold(target):
                failed = await _try(send(client, line))
                if failed:
                    undelivered += failed
                    break  # in order: the rest waits for the next run
                _moved(target, line.incident_id, line.seq)
    return undelivered


async def _try(sending: Coroutine[Any, Any, None]) -> list[str]:
    try:
        await sending
    except StaffDeliveryError as exc:
        return [str(exc)]
    return []


def _moved(target: str, incident_id: int, seq: int) -> None:
    with database().unit_of_work() as session:
        cursor = session.get(StaffCursor, (incident_id, target))
        cursor = cursor or StaffCursor(incident_id=incident_id, target=target, seq=0)
        cursor.seq = max(cursor.seq or 0, seq)
        session.add(cursor)


def unfiled_report() -> ColumnElement[bool]:
    """SQL: the incident has a regulator report not filed yet. An incident closed early (by a
    named person, with a reason) may still owe one, and its deadline still runs."""
    return exists().where(
        RegulatorReport.incident_id == Incident.id, RegulatorReport.state.not_in(FILED)
    )


def watched_incidents(session: Session) -> list[str]:
    """Open incidents, and closed ones with a report still to file."""
    return list(
        session.scalars(
            select(Incident.key).where(
                Incident.state.not_in(UNWATCHED),
                or_(Incident.state != IncidentState.CLOSED, unfiled_report()),
            )
        )
    )


class DeadlineState(StrEnum):
    """Where an obligation stands against its deadline, as compliance reads it."""

    MET = "met"  # on time (or it had no fixed deadline)
    MET_LATE = "met late"
    ON_TRACK = "pending"
    AT_RISK = "at risk"  # past a watchdog level: on-call has been warned
    OVERDUE = "overdue"
    OPEN = "no fixed deadline"  # not met yet, and the law gives no instant
    UNTRACKED = "not tracked"  # media and others: no state of ours says when it is met


@dataclass(frozen=True)
class DeadlineStatus:
    obligation: Obligation
    recipient: str
    state: DeadlineState
    starts_at: datetime
    met_at: datetime | None = None
    late_reason: str | None = None  # a late report's reasons for delay (F11)

    @property
    def name(self) -> str:
        return self.obligation.name

    @property
    def open(self) -> bool:
        """Not met and due at a fixed instant: what the watchdog watches."""
        return self.state in (DeadlineState.ON_TRACK, DeadlineState.AT_RISK, DeadlineState.OVERDUE)


def deadline_statuses(
    session: Session, incident: Incident, now: datetime | None = None
) -> list[DeadlineStatus]:
    """Every applicable obligation of the latest assessment with where it stands: the
    notice to individuals is met when notification has finished (at the last notice
    sent), a regulator's when its report is submitted (late ones give their reasons)."""
    assessment = latest_assessment(session, incident.id)
    if assessment is None:
        return []
    now = now or utcnow()
    levels = settings().watchdog_levels
    filed: dict[tuple[str, str, str], RegulatorReport] = {}
    for report in reports(session, incident.id):  # oldest first: the first filing counts
        if report.state in FILED:
            filed.setdefault((report.regime, report.recipient, report.phase), report)
    notified = incident.has_reached(IncidentState.NOTIFIED)
    last_sent = ledger.last_sent_at(session, incident) if notified else None
    found = []
    for obligation in map(Obligation.model_validate, assessment.obligations):
        if not obligation.applies:
            continue
        recipient = recipient_of(obligation)
        starts_at = obligation.starts_at or incident.aware_at
        status = DeadlineStatus(obligation, recipient, DeadlineState.UNTRACKED, starts_at)
        if obligation.audience == "individuals":
            met = notified
            at, reason = last_sent, None
        elif obligation.audience == "regulator":
            filing = filed.get((obligation.regime, recipient, obligation.phase))
            met = filing is not None
            at, reason = (filing.submitted_at, filing.delay_reason) if filing else (None, None)
        else:
            found.append(status)
            continue
        found.append(_met(status, at, reason) if met else _pending(status, now, levels))
    return found


def _met(status: DeadlineStatus, at: datetime | None, reason: str | None) -> DeadlineStatus:
    due_at = status.obligation.deadline
    late = due_at is not None and at is not None and at > due_at
    state = DeadlineState.MET_LATE if late else DeadlineState.MET
    return replace(status, state=state, met_at=at, late_reason=reason if late else None)


def _pending(status: DeadlineStatus, now: datetime, levels: list[float]) -> DeadlineStatus:
    due_at = status.obligation.deadline
    if due_at is None:
        return replace(status, state=DeadlineState.OPEN)
    level = OpenDeadline("", status.name, status.starts_at, due_at).level(now, levels)
    if level == OVERDUE:
        state = DeadlineState.OVERDUE
    else:
        state = DeadlineState.AT_RISK if level else DeadlineState.ON_TRACK
    return replace(status, state=state)


def open_deadlines(session: Session, incident: Incident) -> list[OpenDeadline]:
    """The incident's fixed deadlines that are not met yet."""
    return [
        OpenDeadline(incident.key, s.name, s.starts_at, s.obligation.deadline)
        for s in deadline_statuses(session, incident)
        if s.open and s.obligation.deadline is not None
    ]


def _first_time(
    session: Session, incident: Incident, deadline: OpenDeadline, level: str, config: Settings
) -> bool:
    """Record the warning unless it was given; lower levels passed meanwhile are recorded
    as given too, so a later run does not warn about them after a higher one."""
    done = set(
        session.scalars(
            select(DeadlineWarning.level).where(
                DeadlineWarning.incident_id == incident.id,
                DeadlineWarning.deadline == deadline.name,
            )
        )
    )
    if level in done:
        return False
    order = [f"{value:.0%}" for value in sorted(config.watchdog_levels)] + [OVERDUE]
    for passed in order[: order.index(level) + 1] if level in order else [level]:
        if passed not in done:
            session.add(
                DeadlineWarning(incident_id=incident.id, deadline=deadline.name, level=passed)
            )
    record(
        session,
        incident,
        EventKind.DEADLINE_WARNING,
        "watchdog",
        {
            "deadline": deadline.name,
            "level": level,
            "due_at": deadline.due_at.isoformat(),
            "warned": {"email": len(config.oncall_emails), "sms": len(config.oncall_phones)},
        },
    )
    return True


def _look_ahead(
    session: Session, incident: Incident, config: Settings, now: datetime
) -> DeadlineAlert | None:
    """Put a change of the forecast's verdict on the timeline; the first time it says
    the individual notice will be late, warn on-call then, not at an elapsed fraction."""
    if incident.state == IncidentState.CLOSED:
        return None
    ahead = forecast(session, incident, config, now)
    verdict = ahead.verdict
    said = session.scalar(
        select(TimelineEvent.payload)
        .where(
            TimelineEvent.incident_id == incident.id,
            TimelineEvent.kind == EventKind.FORECAST_CHANGED,
        )
        .order_by(TimelineEvent.seq.desc())
        .limit(1)
    )
    if verdict is not Verdict.NOT_STARTED and (said or {}).get("verdict") != verdict:
        summary = ahead.as_dict()
        summary.pop("channels")
        record(session, incident, EventKind.FORECAST_CHANGED, "watchdog", summary)
    if verdict is not Verdict.LATE or ahead.deadline is None:
        return None
    name = f"individual notice {FORECAST_LATE}"
    if not _first_time(
        session, incident, OpenDeadline(incident.key, name, now, ahead.deadline), "late", config
    ):  # once per incident: a forecast that recovers and slips again is on the timeline
        return None
    return DeadlineAlert(
        incident.key,
        f"{name}: {ahead.text()}",
        FORECAST_LATE,
        ahead.deadline,
        incident.exercise,
        named=name,
    )


async def _escalate(warnings: list[DeadlineAlert], config: Settings) -> list[str]:
    """One message per person on call, listing this run's warnings; returns what could not
    be sent (the warnings themselves are on the timeline either way)."""
    lines = [
        f"{w.mark}{w.incident_key}: {w.deadline}"
        if w.level == FORECAST_LATE
        else f"{w.mark}{w.incident_key}: {w.deadline} is "
        f"{'OVERDUE' if w.level == OVERDUE else w.level + ' gone'}"
        f" (due {w.due_at:%Y-%m-%d %H:%M} UTC)"
        for w in warnings
    ]
    text = "Breachflow deadline watchdog\n\n" + "\n".join(lines) + "\n"
    stamp = f"{utcnow():%Y%m%dT%H%M%S}"
    batches = {
        Channel.EMAIL: config.oncall_emails,
        Channel.SMS: config.oncall_phones,
    }
    undelivered = []
    for channel, recipients in batches.items():
        if not recipients:
            continue
        notifier = notifier_for(channel, config, pacer=pacer_for(channel, config))
        batch = [
            OutboundMessage(
                notification_id=number,
                message_id=message_id(f"watchdog-{stamp}-{channel}-{number}", config.sender),
                channel=channel,
                recipient=recipient,
                locale="en",
                subject=("[EXERCISE] " if all(w.exercise for w in warnings) else "")
                + f"Deadline warning: {len(warnings)} deadline(s) need attention",
                text=text,
            )
            for number, recipient in enumerate(recipients)
        ]
        failed = [r for r in await notifier.send(batch) if r.status is not DeliveryStatus.SENT]
        if failed:
            undelivered.append(
                f"{channel}: {len(failed)} of {len(batch)} not sent ({failed[0].detail})"
            )
    return undelivered
