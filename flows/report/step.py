"""Steps 2 and 5, report: every regulator that must hear, on time, in phases.

Step 2 files the initial reports due before notification can be over (GDPR's 72 hours,
the CAC's hours, PIPL's "immediately") with what is known then: the law asks for them on
time even when the investigation is incomplete. Step 5, once individual notification and
the announcement are done, files the rest, with their outcome (F12): supplementary and
final reports and the reports due with or after the individual notices. How each report
is written is ``flows/report/filing.py``; how it is submitted, ``flows/report/submission.py``.
"""

from __future__ import annotations

from prefect import task

from breachflow.flows.report.filing import due, file_reports, is_early
from breachflow.flows.report.submission import submit_pending
from breachflow.flows.steps import STEP_TASK, step_finished, step_started
from breachflow.models.commands import get_incident
from breachflow.models.errors import ProviderUnavailable
from breachflow.models.incident import IncidentState
from breachflow.models.runtime import database
from breachflow.models.timeline import advance


@task(name="report_early", **STEP_TASK)
def report_early(incident_key: str, actor: str) -> None:
    """A report that cannot be emailed now does not hold up notification: step 5 tries
    again, and stops the run there if it still cannot."""
    with database().unit_of_work() as session:
        incident = get_incident(session, incident_key, lock=True)
        early = [o for o in due(session, incident) if is_early(o, incident)]
        if not incident.has_reached(IncidentState.NOTIFIED):
            file_reports(session, incident, early, actor)
    submit_pending(incident_key, actor)


@task(name="report", **STEP_TASK)
def report(incident_key: str, actor: str) -> None:
    with database().unit_of_work() as session:
        incident = get_incident(session, incident_key, lock=True)
        if not incident.has_reached(IncidentState.REPORTING):
            step_started(session, incident, "report", actor)
            file_reports(session, incident, due(session, incident), actor)
            advance(session, incident, IncidentState.REPORTING, actor)
            step_finished(session, incident, "report", actor)
    unsent = submit_pending(incident_key, actor)
    if unsent:  # like a provider outage: stop before closing, go on when run again
        reasons = "; ".join(f"{r.label}: {r.last_error}" for r in unsent)
        raise ProviderUnavailable(
            f"{len(unsent)} report(s) could not be emailed ({reasons});"
            f" fix it and run `breach run {incident_key}` again"
        )
