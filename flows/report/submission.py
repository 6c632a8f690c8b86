"""Submitting regulator reports and recording what happened to them.

A report goes by email to the regulator's address (``BREACH_REGULATOR_EMAILS``) with its
PDF attached, or a person files its pack on the regulator's portal and records when, and
the reference the regulator gave (``breach report submitted``), then the acknowledgement.
A report past its deadline is held until someone gives the reasons for the delay (F11).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from sqlalchemy.orm import Session

from breachflow.flows.close.step import close_if_done
from breachflow.flows.report.filing import (
    due,
    email_key,
    file_one,
    obligation_of,
    recipient_of,
    summary,
    write_pack,
)
from breachflow.models.base import utcnow
from breachflow.models.commands import get_incident
from breachflow.models.delivery import Attachment, DeliveryStatus, OutboundMessage
from breachflow.models.errors import InvalidInput
from breachflow.models.incident import Incident
from breachflow.models.regulator_report import RegulatorReport, ReportState, SubmissionMode, reports
from breachflow.models.runtime import database, settings
from breachflow.models.settings import Settings
from breachflow.models.timeline import EventKind, record
from breachflow.notifiers.email_message import message_id
from breachflow.notifiers.factory import email_notifier

T = TypeVar("T")


def supplement(
    incident_key: str, regime: str, actor: str, to: str | None = None
) -> RegulatorReport:
    """A further supplementary report with the facts as they stand now (to the recipient
    ``to`` names, where the regime reports to several: one per member state)."""
    with database().unit_of_work() as session:
        incident = get_incident(session, incident_key, lock=True)
        matching = [o for o in due(session, incident) if o.regime == regime]
        if not matching:
            raise InvalidInput(f"{incident.key} owes no report under {regime}")
        matching = _addressed(matching, to, recipient_of, incident.key, regime)
        obligation = next((o for o in matching if o.phase == "supplementary"), matching[0])
        recipient = recipient_of(obligation)
        number = 1 + sum(
            1
            for r in reports(session, incident.id)
            if (r.regime, r.recipient, r.phase) == (regime, recipient, obligation.phase)
        )
        report = file_one(session, incident, obligation, recipient, number, actor)
        session.flush()
        session.expunge(report)
    submit_pending(incident_key, actor)
    return report


def submit_pending(incident_key: str, actor: str) -> list[RegulatorReport]:
    """Email every report that waits for its email submission; returns those still waiting
    (a temporary failure is recorded and retried on the next run)."""
    config = settings()
    with database().unit_of_work() as session:
        incident = get_incident(session, incident_key)
        config = config.outside_world(incident.exercise, incident.key)  # no regulator
        outgoing = [
            (r.id, _email(incident, r, config, _email_key(session, incident, r)))
            for r in reports(session, incident.id)
            if r.mode == SubmissionMode.EMAIL and r.state == ReportState.AWAITING_SUBMISSION
        ]
    if not outgoing:
        return []
    results = asyncio.run(email_notifier(config).send([msg for _, msg in outgoing]))
    outcome = {r.notification_id: r for r in results}
    waiting = []
    with database().unit_of_work() as session:
        incident = get_incident(session, incident_key, lock=True)
        for report_id, msg in outgoing:
            report = session.get_one(RegulatorReport, report_id)
            result = outcome[report_id]
            if result.status is DeliveryStatus.SENT:
                report.state = ReportState.SUBMITTED
                report.submitted_at = utcnow()
                report.submitted_by = actor
                report.reference = msg.message_id
                report.last_error = None
                record(session, incident, EventKind.REPORT_SUBMITTED, actor, summary(report))
            else:
                report.last_error = result.detail or result.status
                record(session, incident, EventKind.REPORT_SUBMIT_FAILED, actor, summary(report))
                waiting.append(report)
        for report in waiting:
            session.expunge(report)
    return waiting


def _email_key(session: Session, incident: Incident, report: RegulatorReport) -> str:
    """The address key the report was filed for (``regime`` or ``regime:PLACE``)."""
    for obligation in due(session, incident):
        same = (obligation.regime, recipient_of(obligation), obligation.phase)
        if same == (report.regime, report.recipient, report.phase):
            return email_key(obligation)
    return report.regime


def _email(
    incident: Incident, report: RegulatorReport, config: Settings, key: str
) -> OutboundMessage:
    pdf = Path(report.files["pdf"])
    seed = f"{incident.key}-{key.replace(':', '-')}-{report.phase}-{report.number}"
    return OutboundMessage(
        notification_id=report.id,
        message_id=message_id(seed, config.sender),
        channel="email",
        recipient=config.regulator_emails[key],
        locale=config.default_locale,
        subject=f"Personal data breach report ({report.phase}): {config.organisation_name},"
        f" {incident.key}",
        text=(
            f"{config.organisation_name} reports a personal data breach under {report.regime}"
            f" ({report.phase} report). The report is attached as PDF.\n\n"
            f"Our reference: {incident.key}\nContact: {config.contact_point}\n"
        ),
        attachments=(
            Attachment(filename=pdf.name, content_type="application/pdf", content=pdf.read_bytes()),
        ),
    )


def find_report(
    session: Session,
    incident: Incident,
    regime: str,
    phase: str | None,
    waiting_in: tuple[ReportState, ...] = (),
    to: str | None = None,
) -> RegulatorReport:
    """The report a person means: of ``regime`` (and ``phase``, and the recipient ``to``
    names), the oldest one in a state of ``waiting_in`` (the one the action is for), else the
    latest; or a clear error."""
    found = [
        r
        for r in reports(session, incident.id)
        if r.regime == regime and (phase is None or r.phase == phase)
    ]
    if found:
        found = _addressed(found, to, lambda r: r.recipient, incident.key, regime)
    if not found:
        listed = ", ".join(f"{r.regime} {r.phase}" for r in reports(session, incident.id))
        raise InvalidInput(
            f"{incident.key} has no {regime} {phase or ''} report (reports: {listed or 'none yet'})"
        )
    open_ = [r for r in found if r.state in waiting_in]
    if phase is None and len({r.phase for r in open_}) > 1:
        # Which filing a person means is theirs to say: guessing put a portal reference
        # on the wrong report.
        listed = "; ".join(f"{r.label}: {r.state}" for r in open_)
        raise InvalidInput(
            f"{incident.key} has more than one {regime} report this applies to ({listed});"
            f" say which with --phase"
        )
    return next(iter(open_), found[-1])


def _addressed(
    items: list[T], to: str | None, recipient: Callable[[T], str], key: str, regime: str
) -> list[T]:
    """The items for the recipient ``to`` names (a case-blind part of its name), or all of
    them when they go to one recipient. Several recipients and no ``to`` is an error that
    lists them: a portal reference recorded on the wrong authority's report is false."""
    names = list(dict.fromkeys(recipient(i) for i in items))
    if to is not None:
        chosen = [n for n in names if to.casefold() in n.casefold()]
        if len(chosen) != 1:
            what = "no" if not chosen else "more than one"
            raise InvalidInput(
                f"{key} has {what} {regime} recipient matching {to!r}"
                f" (recipients: {'; '.join(names)})"
            )
        return [i for i in items if recipient(i) == chosen[0]]
    if len(names) > 1:
        raise InvalidInput(
            f"{key} reports under {regime} to {len(names)} recipients; say which with --to"
            f" ({'; '.join(names)})"
        )
    return items


def give_delay_reason(
    incident_key: str,
    regime: str,
    phase: str | None,
    reason: str,
    actor: str,
    to: str | None = None,
) -> RegulatorReport:
    """Record the reasons for a late report (F11), rewrite its pack with them, and let it
    go: by email at once where that is the mode, else for a person to file."""
    if not reason.strip():
        raise InvalidInput("the reasons for the delay cannot be empty")
    config = settings()
    with database().unit_of_work() as session:
        incident = get_incident(session, incident_key, lock=True)
        report = find_report(session, incident, regime, phase, (ReportState.HELD_LATE,), to)
        if report.state != ReportState.HELD_LATE:
            raise InvalidInput(f"{report.label} is {report.state}: it is not held for lateness")
        report.delay_reason = reason.strip()
        obligation = obligation_of(session, incident, report)
        write_pack(session, incident, report, obligation, config)
        report.state = ReportState.AWAITING_SUBMISSION
        record(
            session,
            incident,
            EventKind.REPORT_DELAY_REASON,
            actor,
            {**summary(report), "delay_reason": report.delay_reason},
        )
        report_id = report.id
    submit_pending(incident_key, actor)
    with database().unit_of_work() as session:
        report = session.get_one(RegulatorReport, report_id)
        session.expunge(report)
    return report


def record_submission(
    incident_key: str,
    regime: str,
    phase: str | None,
    *,
    reference: str,
    at: datetime,
    actor: str,
    to: str | None = None,
) -> RegulatorReport:
    """A person filed the pack on the regulator's portal: when, and the reference given."""
    if not reference.strip():
        raise InvalidInput("give the reference the regulator's portal returned (--reference)")
    with database().unit_of_work() as session:
        incident = get_incident(session, incident_key, lock=True)
        waiting = (ReportState.HELD_LATE, ReportState.AWAITING_SUBMISSION)
        report = find_report(session, incident, regime, phase, waiting, to)
        if report.state == ReportState.HELD_LATE:
            raise InvalidInput(
                f"{report.label} is late: give the reasons for the delay first"
                f" (breach report delay-reason {incident.key} {regime} --reason ...)"
            )
        if report.state != ReportState.AWAITING_SUBMISSION:
            raise InvalidInput(f"{report.label} is {report.state}; nothing to submit")
        if at > utcnow():
            raise InvalidInput("the submission time is in the future")
        if at < report.created_at:
            raise InvalidInput(
                f"{report.label} was written at {report.created_at:%Y-%m-%d %H:%M:%S} UTC;"
                " it cannot have been filed before that (--at)"
            )
        report.state = ReportState.SUBMITTED
        report.submitted_at = at
        report.submitted_by = actor
        report.reference = reference.strip()
        record(
            session, incident, EventKind.REPORT_SUBMITTED, actor, summary(report), occurred_at=at
        )
        close_if_done(session, incident, actor)  # this filing may have been the last thing open
        session.flush()
        session.expunge(report)
    return report


def record_acknowledgement(
    incident_key: str,
    regime: str,
    phase: str | None,
    *,
    at: datetime,
    actor: str,
    to: str | None = None,
) -> RegulatorReport:
    with database().unit_of_work() as session:
        incident = get_incident(session, incident_key, lock=True)
        report = find_report(session, incident, regime, phase, (ReportState.SUBMITTED,), to)
        if report.state != ReportState.SUBMITTED:
            raise InvalidInput(f"{report.label} is {report.state}: only a submitted report")
        if at > utcnow():
            raise InvalidInput("the acknowledgement time is in the future")
        if report.submitted_at and at < report.submitted_at:
            raise InvalidInput(
                f"{report.label} was filed at {report.submitted_at:%Y-%m-%d %H:%M:%S} UTC;"
                " it cannot have been acknowledged before that (--at)"
            )
        report.state = ReportState.ACKNOWLEDGED
        report.acknowledged_at = at
        record(
            session,
            incident,
            EventKind.REPORT_ACKNOWLEDGED,
            actor,
            summary(report),
            occurred_at=at,
        )
        session.flush()
        session.expunge(report)
    return report
