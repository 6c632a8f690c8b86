"""Step 6, close: the response is complete; the timeline stays, as the record of it."""

from __future__ import annotations

from prefect import task

from flows.runtime import database
from flows.steps import STEP_TASK
from models.base import utcnow
from models.commands import get_incident
from models.incident import IncidentState
from models.timeline import advance


@task(name="close", **STEP_TASK)
def close(incident_key: str, actor: str) -> None:
    with database().unit_of_work() as session:
        incident = get_incident(session, incident_key, lock=True)
        if incident.has_reached(IncidentState.CLOSED):
            return
        incident.closed_at = utcnow()
        advance(session, incident, IncidentState.CLOSED, actor)
