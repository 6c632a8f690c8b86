"""What keeps an incident open: every obligation that is not met yet, said as a task.

An incident is closed only when none is left, or early by a named person with a reason
(``close_early`` in ``step.py``): closing schedules the purge of the people's contact
details and freezes the facts, so "closed" must never be said of a response that still
owes a regulator a report or the public an announcement.
"""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy.orm import Session

from breachflow.flows.approve.runbook import waiting_for
from breachflow.models.announcement import announcements
from breachflow.models.base import utcnow
from breachflow.models.incident import Incident, IncidentState
from breachflow.models.regulator_report import ReportState, reports


def open_obligations(
    session: Session, incident: Incident, now: datetime | None = None
) -> list[str]:
    """One line per obligation still open, each saying how it is met; empty when none is,
    and for an incident that is not ``reporting`` (before: the run has work to do; after:
    it is closed)."""
    if incident.state != IncidentState.REPORTING:
        return []
    now = now or utcnow()
    key = incident.key
    open_ones = []
    filed = reports(session, incident.id)
    for report in filed:
        phase = f"--phase {report.phase}"
        same = [r for r in filed if (r.regime, r.phase) == (report.regime, report.phase)]
        if len({r.recipient for r in same}) > 1:  # one per member state: say which
            phase += f' --to "{report.recipient}"'
        if report.state == ReportState.WAITING:
            anchor = _missing_anchor(report.deadline_rule or "")
            open_ones.append(
                f"{report.label}: its clock has not started; record it (breach update {key}"
                f" --{anchor.replace('_', '-')}-at …), then breach assess and breach run"
            )
        elif report.state == ReportState.HELD_LATE:
            open_ones.append(
                f"{report.label}: late, held for its reasons"
                f" (breach report delay-reason {key} {report.regime} {phase} …)"
            )
        elif report.state == ReportState.AWAITING_SUBMISSION:
            open_ones.append(
                f"{report.label}: to be filed, then recorded"
                f" (breach report submitted {key} {report.regime} {phase} --reference …)"
            )
    published = announcements(session, incident.id)
    if published and published[-1].ends_at > now:
        open_ones.append(
            f"the public announcement: stays up until {published[-1].ends_at:%Y-%m-%d %H:%M} UTC"
        )
    sign_off = waiting_for(session, incident, "close")
    if sign_off:
        open_ones.append(sign_off)
    return open_ones


def _missing_anchor(rule: str) -> str:
    """The anchor a waiting report's clock runs from: ``anchor 'X' not known yet``."""
    match = re.search(r"anchor '([a-z_]+)' not known yet", rule)
    return match.group(1) if match else "handling_ended"
