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
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from prefect import flow
from sqlalchemy import ColumnElement, exists, or_, select
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
from breachflow.models.watchdog import DeadlineWarning
from breachflow.notifiers.email_message import message_id
from breachflow.notifiers.factory import notifier_for
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
                    given.append(DeadlineAlert(key, deadline.name, level, deadline.due_at))
            late = _look_ahead(session, incident, config, now)
            if late:
                given.append(late)
            close_if_done(session, incident, "watchdog")  # e.g. the announcement's period ended
    _checkpoint(keys)
    undelivered = asyncio.run(_escalate(given, config)) if given else []
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
        o = self.obligation
        return f"{o.regime} {o.audience} {o.phase}"

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
    return DeadlineAlert(incident.key, f"{name}: {ahead.text()}", FORECAST_LATE, ahead.deadline)


async def _escalate(warnings: list[DeadlineAlert], config: Settings) -> list[str]:
    """One message per person on call, listing this run's warnings; returns what could not
    be sent (the warnings themselves are on the timeline either way)."""
    lines = [
        f"{w.incident_key}: {w.deadline}"
        if w.level == FORECAST_LATE
        else f"{w.incident_key}: {w.deadline} is "
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
                subject=f"Deadline warning: {len(warnings)} deadline(s) need attention",
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
