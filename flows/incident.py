"""The life of an incident, step by step, as the runbook tells it.

Each step reads the incident's persisted state, does only what is not yet done, and
commits its result with its timeline event; so running this flow again, after a crash, a
fix or a restart, continues where the database says the incident stands.
"""

from __future__ import annotations

from prefect import flow

from breachflow.flows.announce.step import announce
from breachflow.flows.approve.step import gate
from breachflow.flows.assess.step import assess
from breachflow.flows.close.step import close
from breachflow.flows.notify.step import notify
from breachflow.flows.report.step import report, report_early
from breachflow.flows.runs import ResponseSummary, finish_run, flow_actor, record_failure, start_run


@flow(name="incident_response", on_failure=[record_failure], on_crashed=[record_failure])
def incident_response(incident_key: str, requested_by: str = "unknown") -> ResponseSummary:
    started = start_run(incident_key, requested_by)
    if started is None:  # closed: nothing left to do, and nothing is sent again
        return finish_run(incident_key, None)
    actor = flow_actor()
    assess(incident_key, actor)  # 1. who is affected, by when we must tell them
    report_early(incident_key, actor)  # 2. regulators whose clock runs in hours
    waiting = gate(incident_key, "notify", actor)  # 2b. a named person approves the notice
    if waiting:
        return finish_run(incident_key, started, waiting_for=waiting)
    waiting = notify(incident_key, actor)  # 3. every reachable person, in batches, retried
    if waiting:  # 3b. letters with the mailing vendor, until its return file says posted
        return finish_run(incident_key, started, waiting_for=waiting)
    announce(incident_key, actor)  # 4. publicly, where one by one is not enough
    report(incident_key, actor)  # 5. every other report, with notification's outcome
    waiting = close(incident_key, actor)  # 6. done; the timeline is the record
    return finish_run(incident_key, started, waiting_for=waiting)
