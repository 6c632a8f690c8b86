"""Reports from the public: taken in, acknowledged, triaged and attached to an incident.

Operators promise that people who find their data leaked can tell them (operators C and
D in ``../shared/reference/policy-promises.md``). A report needs no key: it is limited
instead, to ``PUBLIC_REPORTS_PER_HOUR`` per network address, and the reporter gets an
acknowledgement by email with a reference to quote. It waits in the triage queue
(``breach public list``) until someone attaches it to an incident.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from datetime import timedelta

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from breachflow.models import commands
from breachflow.models.base import utcnow
from breachflow.models.delivery import Channel, DeliveryStatus, OutboundMessage
from breachflow.models.errors import InvalidInput, RateLimited
from breachflow.models.public_report import PublicReport
from breachflow.models.runtime import database, settings, vault
from breachflow.models.timeline import EventKind, record
from breachflow.notifiers.email_message import message_id
from breachflow.notifiers.factory import email_notifier

PUBLIC_REPORTS_PER_HOUR = 5  # from one address (an IPv6 /64)
#: The advisory lock that takes reports one at a time (any number, fixed: "PR" in ASCII).
INTAKE_LOCK = 0x5052
EMAIL_COLUMN = "public_report_email"


@dataclass(frozen=True)
class Received:
    reference: str
    acknowledged: bool


def take_in(email: str, what_happened: str, data_involved: str | None, client: str) -> Received:
    """Store a report and acknowledge it to the reporter."""
    try:
        address = validate_email(email.strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise InvalidInput(f"the email address is not valid: {exc}") from None
    if not what_happened.strip():
        raise InvalidInput("tell us what you found (what_happened)")
    keys = vault()
    client_hash = keys.blind_index(0, "public_report_client", client) or ""
    since = utcnow() - timedelta(hours=1)
    with database().unit_of_work() as session:
        _one_at_a_time(session)
        recent = select(func.count()).where(PublicReport.received_at >= since)
        if (session.scalar(recent) or 0) >= settings().public_reports_per_hour:
            raise RateLimited("too many reports right now; please try again in an hour")
        mine = recent.where(PublicReport.client_hash == client_hash)
        if (session.scalar(mine) or 0) >= PUBLIC_REPORTS_PER_HOUR:
            raise RateLimited("too many reports from this address; please try again later")
        report = PublicReport(
            reference="PR-" + secrets.token_hex(4).upper(),
            email_enc=keys.encrypt(EMAIL_COLUMN, address),
            what_happened=what_happened.strip(),
            data_involved=(data_involved or "").strip() or None,
            client_hash=client_hash,
        )
        session.add(report)
        session.flush()
        reference, report_id = report.reference, report.id
    acknowledged = _acknowledge(report_id, reference, address)
    return Received(reference, acknowledged)


def _one_at_a_time(session: Session) -> None:
    """Reports are taken one at a time, so concurrent ones cannot all pass the limits'
    counts (SQLite takes its writer lock at the start of every unit of work)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": INTAKE_LOCK})


def _acknowledge(report_id: int, reference: str, address: str) -> bool:
    config = settings()
    message = OutboundMessage(
        notification_id=report_id,
        message_id=message_id(f"public-report-{reference}", config.sender),
        channel=Channel.EMAIL,
        recipient=address,
        locale=config.default_locale,
        subject=f"We received your report {reference}",
        text=(
            f"Thank you for telling {config.organisation_name} that your personal data may have"
            f" been leaked. Your report's reference is {reference}; please quote it if you write"
            f" to us again at {config.contact_point}.\n\nOur security team reviews every"
            " report. If it belongs to an incident, you will hear from us as our notice"
            " promises.\n"
        ),
    )
    (result,) = asyncio.run(email_notifier(config).send([message]))
    sent = result.status is DeliveryStatus.SENT
    with database().unit_of_work() as session:
        session.get_one(PublicReport, report_id).acknowledged = sent
    return sent


def attach(reference: str, incident_key: str, actor: str) -> None:
    """Attach a report to an incident; the incident's timeline gets it, without the
    reporter's address."""
    with database().unit_of_work() as session:
        report = session.scalar(
            select(PublicReport).where(PublicReport.reference == reference.strip().upper())
        )
        if report is None:
            raise InvalidInput(f"no public report {reference}; `breach public list` shows them")
        incident = commands.get_incident(session, incident_key, lock=True)
        report.incident_id, report.status = incident.id, "attached"
        record(
            session,
            incident,
            EventKind.PUBLIC_REPORT_ATTACHED,
            actor,
            {
                "reference": report.reference,
                "received_at": report.received_at.isoformat(),
                "what_happened": report.what_happened[:2000],
                "data_involved": report.data_involved,
            },
        )


def queue() -> list[PublicReport]:
    """Reports not attached to an incident yet, oldest first."""
    with database().unit_of_work() as session:
        rows = list(
            session.scalars(
                select(PublicReport)
                .where(PublicReport.status == "new")
                .order_by(PublicReport.received_at)
            )
        )
        session.expunge_all()
    return rows
