"""Step 4, announce: when people cannot be told one by one, a public announcement.

The step decides (``decision.py``), unless a named person already did, and publishes the
decided announcement to every destination (``publication.py``).
"""

from __future__ import annotations

from prefect import task

from breachflow.flows.announce.decision import decide
from breachflow.flows.announce.publication import publish
from breachflow.flows.steps import STEP_TASK
from breachflow.models.announcement import DecisionKind, latest_decision
from breachflow.models.commands import get_incident
from breachflow.models.errors import ProviderUnavailable
from breachflow.models.runtime import database, settings


@task(name="announce", **STEP_TASK)
def announce(incident_key: str, actor: str) -> None:
    with database().unit_of_work() as session:
        incident = get_incident(session, incident_key, lock=True)
        decision = latest_decision(session, incident.id)
        if decision is None or decision.kind == DecisionKind.AUTOMATIC:
            decision = decide(session, incident, settings(), actor)
        required = decision.required
    if not required:
        return
    published = publish(incident_key, actor)
    failed = {n: d for n, d in published.destinations.items() if d["status"] != "published"}
    if failed:  # like a provider outage: stop here, lose nothing, go on when run again
        reasons = "; ".join(f"{name}: {d.get('detail')}" for name, d in failed.items())
        raise ProviderUnavailable(
            f"announcement version {published.version} not published ({reasons});"
            f" fix it and run `breach run {incident_key}` again"
        )
