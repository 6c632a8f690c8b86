"""The assessment: the incident's facts, the rules in force, who must be told what by when.

Each assessment is stored whole (``models.assessment``) with the rules it used, so an
assessed incident's deadlines do not move when a rule file changes; re-assessing adds a
new assessment and says on the timeline which deadlines moved. The notification window
(``Incident.notice_deadline``) is the earliest fixed deadline for telling individuals.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Text, cast, func, select
from sqlalchemy.orm import Session

from breachflow.models.assessment import Assessment, latest_assessment
from breachflow.models.base import utcnow
from breachflow.models.errors import InvalidInput
from breachflow.models.incident import Incident
from breachflow.models.settings import Settings
from breachflow.models.subject import Subject
from breachflow.models.timeline import EventKind, record
from breachflow.rules import (
    IncidentFacts,
    Obligation,
    OrganisationProfile,
    PolicyProfile,
    Regime,
    RuleFileError,
    default_policy,
    evaluate,
    load_policy,
    load_rules,
    notification_window,
    ruleset_fingerprint,
)
from breachflow.rules.vocab import data_categories


def check_data_categories(categories: list[str]) -> list[str]:
    """The categories, lower-cased, or a clear error naming the ones the rules don't know."""
    known = data_categories()
    wanted = sorted({c.strip().lower() for c in categories if c.strip()})
    unknown = [c for c in wanted if c not in known]
    if unknown:
        raise InvalidInput(
            f"unknown data category {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    return wanted


def organisation(config: Settings) -> OrganisationProfile:
    try:
        return OrganisationProfile(
            name=config.organisation_name,
            sectors=set(config.organisation_sectors),
            home_jurisdictions=config.home_jurisdictions,
            timezone=config.organisation_timezone,
            gdpr_lead_authority_timezone=config.gdpr_lead_authority_timezone,
        )
    except ValidationError as exc:
        raise InvalidInput(f"organisation profile in settings: {_first(exc)}") from None


def policy(config: Settings) -> PolicyProfile:
    """Our published promise: the policy file if set, else the default with our window."""
    try:
        if config.policy_file:
            return load_policy(config.policy_file)
        return default_policy().model_copy(update={"window_days": config.policy_notice_days})
    except RuleFileError as exc:
        raise InvalidInput(f"policy: {exc}") from None


def regimes_in_force(config: Settings) -> list[Regime]:
    try:
        return load_rules(overrides=config.rules_overrides)
    except RuleFileError as exc:
        raise InvalidInput(f"rules: {exc}") from None


def facts(session: Session, incident: Incident) -> IncidentFacts:
    residences = session.execute(
        select(Subject.country, Subject.region, func.count())
        .where(Subject.incident_id == incident.id)
        .group_by(Subject.country, Subject.region)
    ).all()
    residents: dict[str, int] = {}
    unknown = 0
    for country, region, count in residences:
        if country is None:
            unknown += count
            continue
        residents[country] = residents.get(country, 0) + count
        if region:
            residents[region] = residents.get(region, 0) + count
    categories = set(incident.data_categories)
    for (listed,) in session.execute(  # as text: PostgreSQL's json has no equality for DISTINCT
        select(cast(Subject.data_categories, Text))
        .where(Subject.incident_id == incident.id, Subject.data_categories.is_not(None))
        .distinct()
    ):
        categories.update(json.loads(listed))
    return IncidentFacts(
        anchors=incident.anchors(),
        risk=incident.risk,
        data_categories=categories,
        encrypted_key_safe=incident.encrypted_key_safe,
        improper_purpose=incident.improper_purpose,
        material=incident.material,
        residents=residents,
        unknown_residence=unknown,
    )


def assess(session: Session, incident: Incident, actor: str, config: Settings) -> Assessment:
    """Evaluate every regime for ``incident`` now, store the result, record what changed."""
    if incident.assessed_at is None:
        incident.assessed_at = utcnow()
    regimes = regimes_in_force(config)
    promise = policy(config)
    known = facts(session, incident)
    obligations = evaluate(known, regimes, organisation(config), promise)
    previous = latest_assessment(session, incident.id)
    assessment = Assessment(
        incident_id=incident.id,
        number=previous.number + 1 if previous else 1,
        assessed_by=actor,
        ruleset_fingerprint=ruleset_fingerprint(regimes),
        rules=[regime.model_dump(mode="json") for regime in regimes],
        policy=promise.model_dump(mode="json"),
        facts=known.model_dump(mode="json"),
        obligations=[o.model_dump(mode="json") for o in obligations],
    )
    session.add(assessment)
    incident.notice_deadline = notification_window(obligations)
    incident.policy_deadline = next(
        (o.deadline for o in obligations if o.regime == "policy" and o.audience == "individuals"),
        None,
    )
    applicable = [o for o in obligations if o.applies]
    record(
        session,
        incident,
        EventKind.ASSESSMENT_RECORDED,
        actor,
        {
            "assessment": assessment.number,
            "ruleset_fingerprint": assessment.ruleset_fingerprint,
            "affected_people": known.affected_total,
            "residences": dict(sorted(known.residents.items(), key=lambda kv: -kv[1])[:20]),
            "unknown_residence": known.unknown_residence,
            "obligations_applicable": len(applicable),
            "regimes_applicable": sorted({o.regime for o in applicable}),
            # Applicable answers that rest on a fact not checked in the official text.
            "counsel_to_review": sorted(
                {o.regime for o in applicable if o.confidence in ("~", "U")}
            ),
            "notice_deadline": _iso(incident.notice_deadline),
            "policy": promise.name,
            "deadlines_moved": _moved(previous, obligations) if previous else [],
        },
    )
    session.flush()
    return assessment


def stored_obligations(assessment: Assessment) -> list[Obligation]:
    return [Obligation.model_validate(o) for o in assessment.obligations]


def _moved(previous: Assessment, now: list[Obligation]) -> list[dict[str, Any]]:
    """Obligations whose applicability or deadline changed since the previous assessment."""
    before = {
        (o["regime"], o["audience"], o["phase"], o.get("place")): o for o in previous.obligations
    }
    changes = []
    for o in now:
        old = before.get((o.regime, o.audience, o.phase, o.place))
        new_deadline = _iso(o.deadline)
        if old is None or old["applies"] != o.applies or old["deadline"] != new_deadline:
            changes.append(
                {
                    "regime": o.regime,
                    "audience": o.audience,
                    "phase": o.phase,
                    **({"place": o.place} if o.place else {}),
                    "from": old and {"applies": old["applies"], "deadline": old["deadline"]},
                    "to": {"applies": o.applies, "deadline": new_deadline},
                }
            )
    return changes


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def _first(exc: ValidationError) -> str:
    err = exc.errors()[0]
    return f"{'.'.join(map(str, err['loc']))}: {err['msg']}"
