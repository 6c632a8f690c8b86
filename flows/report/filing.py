"""Reports to regulators: what each must say, the pack, its submission and its states.

Which reports are due comes from the assessment: every applicable obligation towards a
regulator, per phase (initial, supplementary, final). A report is built from the incident,
the assessment, the notice texts and the ledger as the canonical content fields F1–F14
(``../shared/reference/breach-law-facts.md``), then written as a pack: the regime's HTML
(``templates/reports/<regime>.html.j2``, else ``default``), its PDF and the same content
as JSON. A report filed after its deadline needs the reasons for the delay (F11): it is
held, with a banner saying so on the pack, until a person gives them.

Submitting them and recording what happened to them is ``flows/report/submission.py``.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from breachflow.flows.announce.decision import announcement_status
from breachflow.models import ledger
from breachflow.models.assessment import latest_assessment
from breachflow.models.base import iso, utcnow
from breachflow.models.commands import latest_notice
from breachflow.models.errors import InvalidInput
from breachflow.models.files import write_atomically
from breachflow.models.incident import Incident
from breachflow.models.regulator_report import RegulatorReport, ReportState, SubmissionMode, reports
from breachflow.models.runtime import settings
from breachflow.models.settings import Settings
from breachflow.models.timeline import EventKind, record
from breachflow.rendering.environment import TEMPLATES, environment
from breachflow.rendering.pdf import PdfRenderer
from breachflow.rules import Obligation
from breachflow.rules.places import place_name, residence_rows

FIELDS = [f"F{i}" for i in range(1, 15)]


def due(session: Session, incident: Incident) -> list[Obligation]:
    """Every applicable regulator obligation of the latest assessment. Our policy's own
    promise to report proactively is kept by the legal reports; only when no law asks for
    one does it get a report of its own."""
    assessment = latest_assessment(session, incident.id)
    if assessment is None:
        return []
    owed = [
        o
        for o in map(Obligation.model_validate, assessment.obligations)
        if o.applies and o.audience == "regulator"
    ]
    legal = [o for o in owed if o.regime != "policy"]
    return legal or owed


def is_early(obligation: Obligation, incident: Incident) -> bool:
    """An initial report due before notification is over (GDPR's 72 hours, the CAC's
    hours, PIPL's "immediately"): it is filed with what is known, before notifying."""
    if obligation.phase != "initial" or _waits(obligation):
        return False
    if obligation.deadline is None:  # an open term: "immediately", "promptly"
        return True
    return incident.notice_deadline is None or obligation.deadline <= incident.notice_deadline


def file_reports(
    session: Session, incident: Incident, obligations: list[Obligation], actor: str
) -> list[RegulatorReport]:
    """File each report not filed yet (one per regime, recipient and phase), and start the
    ones that waited for their clock. Further supplementary reports: ``supplement``."""
    filed = {(r.regime, r.recipient, r.phase): r for r in reports(session, incident.id)}
    created = []
    for obligation in obligations:
        recipient = recipient_of(obligation)
        earlier = filed.get((obligation.regime, recipient, obligation.phase))
        if earlier is None:
            created.append(file_one(session, incident, obligation, recipient, 1, actor))
        elif earlier.state == ReportState.WAITING and not _waits(obligation):
            _start_clock(session, incident, earlier, obligation, actor)
    return created


def start_waiting(session: Session, incident: Incident, actor: str) -> None:
    """After a re-assessment: reports whose clock had not started and now has."""
    if any(r.state == ReportState.WAITING for r in reports(session, incident.id)):
        file_reports(session, incident, due(session, incident), actor)


def _start_clock(
    session: Session,
    incident: Incident,
    report: RegulatorReport,
    obligation: Obligation,
    actor: str,
) -> None:
    """A waiting report's anchor is now known (re-assessed): it gets its deadline and pack."""
    report.deadline = obligation.deadline
    report.deadline_rule = obligation.deadline_rule
    report.late = obligation.deadline is not None and utcnow() > obligation.deadline
    report.state = ReportState.HELD_LATE if report.late else ReportState.AWAITING_SUBMISSION
    write_pack(session, incident, report, obligation, settings())
    kind = EventKind.REPORT_HELD_LATE if report.late else EventKind.REPORT_WRITTEN
    record(session, incident, kind, actor, summary(report))


def file_one(
    session: Session,
    incident: Incident,
    obligation: Obligation,
    recipient: str,
    number: int,
    actor: str,
) -> RegulatorReport:
    config = settings()
    now = utcnow()
    waits = _waits(obligation)
    late = obligation.deadline is not None and now > obligation.deadline
    report = RegulatorReport(
        incident_id=incident.id,
        regime=obligation.regime,
        recipient=recipient,
        phase=obligation.phase,
        number=number,
        deadline=obligation.deadline,
        deadline_rule=obligation.deadline_rule,
        mode=SubmissionMode.EMAIL
        if email_key(obligation) in config.regulator_emails
        else SubmissionMode.MANUAL,
        state=ReportState.WAITING
        if waits
        else ReportState.HELD_LATE
        if late
        else ReportState.AWAITING_SUBMISSION,
        late=late,
        files={},
    )
    session.add(report)
    session.flush()
    if not waits:
        write_pack(session, incident, report, obligation, config)
    record(
        session,
        incident,
        EventKind.REPORT_HELD_LATE if late and not waits else EventKind.REPORT_WRITTEN,
        actor,
        summary(report),
    )
    return report


def write_pack(
    session: Session,
    incident: Incident,
    report: RegulatorReport,
    obligation: Obligation,
    config: Settings,
) -> None:
    """Write the HTML, PDF and JSON of ``report`` under the reports folder, each atomically."""
    document = content(session, incident, report, obligation, config)
    template = f"reports/{report.regime}.html.j2"
    if not (TEMPLATES / template).exists():
        template = "reports/default.html.j2"
    html = environment().get_template(template).render(report=document)
    title = f"{incident.key} {report.regime} {report.phase} report"
    pdf = PdfRenderer().pdf(html, title=title, author=config.organisation_name)
    stem = f"{incident.key}-{report.regime}-{report.phase}"
    if obligation.place:  # one report per member state: one pack each, never overwritten
        stem += f"-{obligation.place}"
    if report.number > 1:
        stem += f"-{report.number}"
    folder = config.reports
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, Any] = {"sha256": {}}
    for suffix, data in (
        ("html", html.encode()),
        ("pdf", pdf),
        ("json", json.dumps(document, indent=1, ensure_ascii=False).encode()),
    ):
        target = folder / f"{stem}.{suffix}"
        write_atomically(target, data)
        files[suffix] = str(target)
        files["sha256"][suffix] = hashlib.sha256(data).hexdigest()
    report.files = files


def content(
    session: Session,
    incident: Incident,
    report: RegulatorReport,
    obligation: Obligation,
    config: Settings,
) -> dict[str, Any]:
    """The report as data: F1–F14 and what the regime asks for; also the pack's JSON.

    Written in the language the regime's authority works in (its ``in_language`` words:
    name, recipient, deadline, legal basis; the notice texts in that language when there
    are some), with every time in the regime's zone and its offset."""
    assessment = latest_assessment(session, incident.id)
    regime = _regime(assessment, report.regime)
    words = regime.get("in_language") or {}
    language = words.get("language", "en")
    zone = ZoneInfo(obligation.timezone)
    notice = latest_notice(session, incident)
    texts = notice.parsed() if notice else {}
    locale = language if language in texts else config.default_locale
    text = texts.get(locale) or next(iter(texts.values()), None)
    facts = assessment.facts if assessment else {}
    people = ledger.people(session, incident)
    notified = people.affected > 0
    description = incident.description
    if text:
        description = f"{incident.description}\n\n{text.what_happened}"
    recipient = words.get("recipients", {}).get(report.recipient, report.recipient)
    phase_words = words.get("phases", {}).get(report.phase, {})
    announcement = announcement_status(session, incident)
    for key in ("published_at", "ends_at"):
        if announcement and announcement.get(key):
            announcement[key] = in_zone(announcement[key], zone)
    fields: dict[str, Any] = {
        "F1": description,
        "F2": {
            "detected_at": in_zone(incident.detected_at, zone),
            "aware_at": in_zone(incident.aware_at, zone),
            "discovered_at": in_zone(incident.discovered_at, zone),
            "contained_at": in_zone(incident.contained_at, zone),
        },
        "F3": {
            "categories": list(incident.data_categories),
            "text": text.data_involved if text else None,
        },
        "F4": {
            "affected": facts.get("affected_total") or people.affected,
            "residents": facts.get("residents", {}),
            "by_residence": _residences(facts, language),
            "notified": people.reached if notified else None,
            "unreachable": people.unreachable if notified else None,
        },
        "F5": text.possible_impact if text else None,
        "F6": text.measures_taken if text else None,
        "F7": text.protective_steps if text else None,
        "F8": text.remedies if text else None,
        "F9": (text.contact_point if text else None) or config.contact_point,
        # A sentence the template writes in the pack's language.
        "F10": {"complain_to": recipient, "contact_point": config.contact_point},
        "F11": report.delay_reason,
        "F12": {
            "individuals": _individuals(session, incident, people) if notified else None,
            "announcement": announcement,
        },
        "F13": {"organisation": config.organisation_name, "contact_point": config.contact_point},
        "F14": report.phase,
    }
    return {
        "regime": report.regime,
        "regime_name": words.get("name") or regime.get("name", report.regime),
        "language": language,
        "recipient": recipient,
        "phase": report.phase,
        "number": report.number,
        "deadline": in_zone(report.deadline, zone),
        "deadline_rule": phase_words.get("deadline") or report.deadline_rule,
        "late": report.late,
        "citation": phase_words.get("citation") or obligation.citation,
        "generated_at": in_zone(utcnow(), zone),
        "timezone": zone.key,
        "locale": locale,
        "incident": {
            "key": incident.key,
            "title": incident.title,
            "severity": incident.severity,
            **({"exercise": True} if incident.exercise else {}),  # said on every page
        },
        "required_fields": list(obligation.content_fields),
        "fields": fields,
        "title": obligation.title,
        "place": obligation.place,
        "contact": obligation.contact.model_dump(exclude_none=True) if obligation.contact else None,
        "confidence": obligation.confidence,
    }


def in_zone(moment: datetime | str | None, zone: ZoneInfo) -> str | None:
    """``moment`` (a datetime, or an ISO 8601 string) as ISO 8601 in ``zone``, with its
    offset: what the regulator reads as local time, still one exact instant."""
    if moment is None or moment == "":
        return None
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment.astimezone(zone).isoformat(timespec="seconds")


def obligation_of(session: Session, incident: Incident, report: RegulatorReport) -> Obligation:
    for obligation in due(session, incident):
        same = (obligation.regime, recipient_of(obligation), obligation.phase)
        if same == (report.regime, report.recipient, report.phase):
            return obligation
    raise InvalidInput(f"{report.label} is no longer owed under the latest assessment")


def _individuals(
    session: Session, incident: Incident, people: ledger.PeopleOutcome
) -> dict[str, Any]:
    by_channel = {
        channel: {
            "sent": states.get("sent", 0),
            "delivered": states.get("delivered", 0),
            "failed": states.get("failed_permanent", 0),
            "pending": sum(states.get(s, 0) for s in ("queued", "sending", "failed_temporary")),
        }
        for channel, states in ledger.channel_counts(session, incident).items()
    }
    return {
        "affected": people.affected,
        "notified": people.reached,
        "unreachable": people.unreachable,
        "pending": people.pending,
        "by_channel": by_channel,
    }


def _residences(facts: dict[str, Any], locale: str) -> list[dict[str, Any]]:
    """The residence table's rows, each person once: countries, their subdivisions nested
    under them, then the unknown; places named in the pack's language."""
    rows = residence_rows(facts.get("residents", {}), facts.get("unknown_residence", 0))
    return [
        {
            "code": row.code,
            "name": place_name(row.code, locale) if row.code else None,
            "people": row.people,
            "level": row.level,
            "subdivision_unknown": row.subdivision_unknown,
        }
        for row in rows
    ]


def email_key(obligation: Obligation) -> str:
    """The ``BREACH_REGULATOR_EMAILS`` key of a report: its regime, or ``regime:PLACE`` for
    one of a report per member state (``eu-gdpr:FR``), so that one address configured for a
    regime never receives the reports meant for another country's authority."""
    return f"{obligation.regime}:{obligation.place}" if obligation.place else obligation.regime


def recipient_of(obligation: Obligation) -> str:
    return obligation.recipient or "the regulator"


def _waits(obligation: Obligation) -> bool:
    """Its clock anchor (e.g. the end of handling) is not known yet."""
    return obligation.deadline is None and "not known yet" in obligation.deadline_rule


def _regime(assessment: Any, regime: str) -> dict[str, Any]:
    """The regime as the assessment used it (its rule file then), or {} without one."""
    rules = assessment.rules if assessment else []
    return next((r for r in rules if r["id"] == regime), {})


def summary(report: RegulatorReport) -> dict[str, Any]:
    return {
        "regime": report.regime,
        "recipient": report.recipient,
        "phase": report.phase,
        "number": report.number,
        "state": report.state,
        "mode": report.mode,
        "deadline": iso(report.deadline),
        "late": report.late,
        "reference": report.reference,
        "files": report.files,
    }
