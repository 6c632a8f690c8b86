"""Step 2b, approve: nobody is notified before a named person approves the notice.

The gate is a runbook step (``runbooks/notification.md``, ``gates: notify``); what it
waits for and how it is given is ``flows/approve/runbook.py``. The flow stops here, records what
it waits for, and ``breach approve`` (or the API) continues it, in any process.
"""

from __future__ import annotations

from prefect import task

from breachflow.flows.approve.runbook import waiting_for
from breachflow.flows.steps import STEP_TASK
from breachflow.models.commands import get_incident
from breachflow.models.runtime import database
from breachflow.models.timeline import EventKind, record


@task(name="gate", **STEP_TASK)
def gate(incident_key: str, flow_step: str, actor: str) -> str | None:
    """Before ``flow_step``: what it waits for (recorded on the timeline), or None."""
    with database().unit_of_work() as session:
        incident = get_incident(session, incident_key, lock=True)
        waiting = waiting_for(session, incident, flow_step)
        if waiting:
            record(session, incident, EventKind.AWAITING_APPROVAL, actor, {"waiting_for": waiting})
    return waiting
