"""Step 5, report: the regulator report, written from a template into the reports folder.

Issue-level scope: one initial report per incident with the facts we hold and the outcome
of individual notification. Per-regime filings come with the rules engine.
"""

from __future__ import annotations

import hashlib
import os

from prefect import task

from flows.runtime import database, settings
from flows.steps import STEP_TASK, step_finished, step_started
from models import ledger
from models.base import utcnow
from models.commands import get_incident, latest_notice
from models.incident import IncidentState
from models.timeline import EventKind, advance, record
from notifiers.render import environment

PHASE = "initial"


@task(name="report", **STEP_TASK)
def report(incident_key: str, actor: str) -> None:
    config = settings()
    with database().unit_of_work() as session:
        incident = get_incident(session, incident_key, lock=True)
        if incident.has_reached(IncidentState.REPORTED):
            return
        step_started(session, incident, "report", actor, phase=PHASE)
        people = ledger.people(session, incident)
        notice = latest_notice(session, incident)
        html = (
            environment()
            .get_template("reports/regulator.en.html.j2")
            .render(
                incident=incident,
                organisation=config.organisation_name,
                contact_point=config.contact_point,
                phase=PHASE,
                generated_at=utcnow(),
                by_channel=ledger.channel_counts(session, incident),
                affected=people.affected,
                notified=people.reached,
                unreachable=people.unreachable,
                unreachable_reasons=ledger.unreachable_reasons(session, incident),
                notice=notice.parsed().get("en") if notice else None,
                notice_version=notice.version if notice else None,
            )
        )
        config.reports.mkdir(parents=True, exist_ok=True)
        target = config.reports / f"{incident.key}-regulator-{PHASE}.html"
        temporary = target.with_suffix(".tmp")
        temporary.write_text(html, encoding="utf-8")
        os.replace(temporary, target)
        record(
            session,
            incident,
            EventKind.REPORT_WRITTEN,
            actor,
            {
                "phase": PHASE,
                "file": str(target),
                "sha256": hashlib.sha256(html.encode()).hexdigest(),
            },
        )
        advance(session, incident, IncidentState.REPORTED, actor)
        step_finished(session, incident, "report", actor)
