"""Bookkeeping around each run of ``incident_response``: start, finish, failure, summary."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect.runtime import flow_run
from pydantic import BaseModel

from breachflow.flows.close.obligations import open_obligations
from breachflow.models import ledger
from breachflow.models.base import utcnow
from breachflow.models.commands import count_subjects, get_incident
from breachflow.models.errors import InvalidInput, safe_reason
from breachflow.models.incident import IncidentState
from breachflow.models.runtime import database, settings
from breachflow.models.settings import NotifierMode
from breachflow.models.timeline import EventKind, record


class ResponseSummary(BaseModel):
    incident_key: str
    state: str
    affected: int
    notified: int
    unreachable: int
    unreachable_reasons: dict[str, int]
    pending: int
    by_channel: dict[str, dict[str, int]]
    sent_this_run: int
    nothing_to_do: bool
    outbox: str | None
    reports: str
    notice_deadline: datetime | None
    #: When notifying individuals finished (its last notice); None while it has not.
    notification_finished_at: datetime | None
    waiting_for: str | None = None  # a gate: what a person must do before the run goes on
    #: While ``reporting``: each obligation still open (flows/close/obligations.py).
    open_before_closing: list[str] = []


def flow_actor() -> str:
    return f"flow:incident_response/{flow_run.get_name() or 'local'}"


def start_run(incident_key: str, requested_by: str) -> datetime | None:
    """Record the run; returns its start, or None when the incident is already closed."""
    started = utcnow()
    with database().unit_of_work() as session:
        incident = get_incident(session, incident_key)
        if incident.state == IncidentState.SUSPECTED:
            raise InvalidInput(
                f"{incident.key} is a suspected incident from an alert: triage it first"
                f" (breach confirm {incident.key}, or breach dismiss {incident.key})"
            )
        closed = incident.state in (IncidentState.CLOSED, IncidentState.DISMISSED)
        record(
            session,
            incident,
            EventKind.RUN_STARTED,
            flow_actor(),
            {
                "requested_by": requested_by,
                "flow_run_id": str(flow_run.get_id() or ""),
                "state": str(incident.state),
                "nothing_to_do": closed,
            },
        )
    return None if closed else started


def finish_run(
    incident_key: str, started: datetime | None, waiting_for: str | None = None
) -> ResponseSummary:
    summary = summarize(incident_key, since=started).model_copy(update={"waiting_for": waiting_for})
    with database().unit_of_work() as session:
        record(
            session,
            get_incident(session, incident_key),
            EventKind.RUN_FINISHED,
            flow_actor(),
            summary.model_dump(mode="json", exclude={"outbox", "reports", "unreachable_reasons"}),
        )
    return summary


def record_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """Prefect failure hook: the reason a run stopped belongs on the incident's timeline.

    The parameters are named as in Prefect's ``FlowStateHook`` protocol (``flow_run``
    here is the run that stopped, not ``prefect.runtime.flow_run``)."""
    key = flow_run.parameters.get("incident_key")
    try:
        state.result()
    except Exception as exc:  # the failure itself, as Prefect stored it
        reason = safe_reason(exc)
    else:
        reason = str(state.message)
    with database().unit_of_work() as session:
        record(
            session,
            get_incident(session, key),
            EventKind.RUN_FAILED,
            f"flow:incident_response/{flow_run.name}",
            {"reason": reason[:1000]},
        )


def summarize(incident_key: str, since: datetime | None = None) -> ResponseSummary:
    config = settings()
    with database().unit_of_work() as session:
        incident = get_incident(session, incident_key)
        config = config.outside_world(incident.exercise, incident.key)
        people = ledger.people(session, incident)
        by_channel = ledger.channel_counts(session, incident)
        reasons = ledger.unreachable_reasons(session, incident)
        sent = ledger.reached_since(session, incident, since) if since else 0
        finished = ledger.notification_finished_at(session, incident)
        imported = count_subjects(session, incident)
        still_open = open_obligations(session, incident)
    sandbox = config.notifier_mode is NotifierMode.SANDBOX
    return ResponseSummary(
        incident_key=incident.key,
        state=str(incident.state),
        affected=imported,
        notified=people.reached,
        unreachable=people.unreachable,
        unreachable_reasons=reasons,
        pending=people.pending,
        by_channel=by_channel,
        sent_this_run=sent,
        nothing_to_do=since is None,
        outbox=str(config.outbox.resolve()) if sandbox else None,
        reports=str(config.reports.resolve()),
        notice_deadline=incident.notice_deadline,
        notification_finished_at=finished,
        open_before_closing=still_open,
    )
