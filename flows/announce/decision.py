"""Whether a public announcement is required, and why.

The decision comes from the substitute-notice conditions of the rules that applied at
assessment (``rules/substitute.py``), the delivery ledger (who could not be reached, who
is still pending as the deadline nears) and any decision a named operator recorded with
``breach announce`` (forced, e.g. individual notice judged difficult, or waived), which the
flow never overrides. Each decision goes on the timeline with its grounds and inputs.

Publishing it, version by version, is ``publication.py`` beside this module; the step
that does both is ``step.py``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from breachflow.flows.assess.assessment import organisation
from breachflow.flows.notify.forecast import Verdict, forecast
from breachflow.models import ledger
from breachflow.models.announcement import (
    AnnouncementDecision,
    DecisionKind,
    announcements,
    latest_decision,
)
from breachflow.models.assessment import latest_assessment
from breachflow.models.base import iso, utcnow
from breachflow.models.commands import get_incident
from breachflow.models.errors import InvalidInput
from breachflow.models.incident import Incident
from breachflow.models.runtime import database, settings
from breachflow.models.settings import Settings
from breachflow.models.timeline import EventKind, record
from breachflow.rules import IncidentFacts, Regime
from breachflow.rules.conditions import Context
from breachflow.rules.substitute import ConditionCheck, check


def decide(
    session: Session, incident: Incident, config: Settings, actor: str
) -> AnnouncementDecision:
    """Record the flow's decision, unless the same decision is already the latest one."""
    now = utcnow()
    outcome = ledger.people(session, incident)
    checks, min_days = rule_checks(session, incident, outcome.unreachable, config)
    grounds = [f"{c.regime}: {c.text}" for c in checks if c.met]
    if outcome.pending and incident.notice_deadline is not None:
        left = incident.notice_deadline - now
        if left <= timedelta(hours=config.announcement_at_risk_hours):
            grounds.append(
                f"individual-notice deadline at risk: {outcome.pending:,} people still pending,"
                f" {max(left.total_seconds(), 0) / 3600:.0f} h left"
            )
        elif forecast(session, incident, config, now).verdict is Verdict.LATE:
            grounds.append(
                "individual-notice deadline at risk: at the present rates, the forecast"
                " finishes after it"
            )
    inputs = _inputs(outcome, checks)
    latest = latest_decision(session, incident.id)
    if latest and latest.kind == DecisionKind.AUTOMATIC and latest.grounds == grounds:
        return latest
    return _record_decision(
        session, incident, DecisionKind.AUTOMATIC, bool(grounds), grounds, inputs, min_days, actor
    )


def operator_decision(incident_key: str, actor: str, reason: str, *, waive: bool) -> bool:
    """A named person forces or waives the announcement; returns whether one is required."""
    if not reason.strip():
        raise InvalidInput("give the reason for the decision (--reason): it goes on the record")
    config = settings()
    with database().unit_of_work() as session:
        incident = get_incident(session, incident_key, lock=True)
        outcome = ledger.people(session, incident)
        checks, min_days = rule_checks(session, incident, outcome.unreachable, config)
        inputs = _inputs(outcome, checks)
        kind = DecisionKind.WAIVED if waive else DecisionKind.FORCED
        _record_decision(
            session, incident, kind, not waive, [reason.strip()], inputs, min_days, actor
        )
        return not waive


def rule_checks(
    session: Session, incident: Incident, unreachable: int, config: Settings
) -> tuple[list[ConditionCheck], int]:
    """Every substitute-notice condition of the individual notices that applied at the
    latest assessment, checked; and how long an announcement must stay up (the longest
    minimum of those rules, at least the configured default). Before any assessment (an
    operator may decide early) there is nothing to check yet."""
    assessment = latest_assessment(session, incident.id)
    if assessment is None:
        return [], config.announcement_days
    applied = {
        o["regime"]
        for o in assessment.obligations
        if o["audience"] == "individuals" and o["applies"]
    }
    facts = IncidentFacts.model_validate(assessment.facts)
    checks: list[ConditionCheck] = []
    days = [config.announcement_days]
    for raw in assessment.rules:
        if raw["id"] not in applied:
            continue
        regime = Regime.model_validate(raw)
        ctx = Context(facts=facts, org=organisation(config), regime=regime)
        for spec in regime.obligations:
            if spec.audience != "individuals" or spec.substitute_notice is None:
                continue
            notice = spec.substitute_notice
            checks += check(
                notice, ctx, unreachable=unreachable, cost_usd=config.individual_notice_cost_usd
            )
            days.append(notice.min_public_notice_days or 0)
    return list(dict.fromkeys(checks)), max(days)


def _inputs(outcome: ledger.PeopleOutcome, checks: list[ConditionCheck]) -> dict[str, Any]:
    """What a decision looked at, for the record."""
    return {
        "affected": outcome.affected,
        "reached": outcome.reached,
        "unreachable": outcome.unreachable,
        "pending": outcome.pending,
        "considered": [f"{c.regime}: {c.text}" for c in checks],
    }


def _record_decision(
    session: Session,
    incident: Incident,
    kind: DecisionKind,
    required: bool,
    grounds: list[str],
    inputs: dict[str, Any],
    min_days: int,
    actor: str,
) -> AnnouncementDecision:
    decision = AnnouncementDecision(
        incident_id=incident.id,
        kind=kind,
        required=required,
        grounds=grounds,
        inputs=inputs,
        min_days=min_days,
        decided_by=actor,
    )
    session.add(decision)
    record(
        session,
        incident,
        EventKind.ANNOUNCEMENT_DECIDED,
        actor,
        {
            "kind": kind,
            "required": required,
            "grounds": grounds,
            "inputs": inputs,
            "min_days": min_days,
        },
    )
    session.flush()
    return decision


def announcement_status(session: Session, incident: Incident) -> dict[str, Any]:
    """For reports (F12) and ``breach show``: the decision and the current version."""
    decision = latest_decision(session, incident.id)
    versions = announcements(session, incident.id)
    if decision is None:
        status = "not decided"
    elif decision.kind == DecisionKind.WAIVED:
        status = "waived"
    elif not decision.required:
        status = "not required"
    elif versions and versions[-1].published_everywhere():
        status = "published"
    else:
        status = "pending"
    current = versions[-1] if versions else None
    return {
        "status": status,
        "version": current.version if current else None,
        "published_at": iso(current.published_at) if current else None,
        "ends_at": iso(current.ends_at) if current else None,
        "locations": [
            d["location"]
            for d in (current.destinations.values() if current else [])
            if d.get("status") == "published"
        ],
    }
