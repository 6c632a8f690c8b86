"""Latin America: Mexico, Argentina, Colombia and Chile, at and either side of each rule.

Dates are counted by hand in the comments; 2026-11-20 is a Friday. Bogotá is UTC-5 all
year; Santiago is UTC-3 in December (summer time); Mexico City is UTC-6 all year.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from breachflow.rules import IncidentFacts, Obligation, OrganisationProfile, evaluate
from breachflow.rules.loader import load_regime
from breachflow.rules.schema import Regime
from breachflow.rules.vocab import RULES_DIR

IDS = ["mx-lfpdppp", "ar-pdpa", "co-habeas", "cl-pdp"]
RULES: dict[str, Regime] = {i: load_regime(RULES_DIR / f"{i}.yaml") for i in IDS}
T = datetime(2026, 11, 20, 7, 0, tzinfo=UTC)
ANCHORS = ["detected", "aware", "determined", "assessed", "discovered"]
ALL = dict.fromkeys(ANCHORS, T)
HOME = {"mx-lfpdppp": "MX", "ar-pdpa": "AR", "co-habeas": "CO", "cl-pdp": "CL"}


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def at(instant: datetime) -> dict[str, datetime]:
    return dict.fromkeys(ANCHORS, instant)


#: Chile's new law is in force from 1 December 2026; its tests use Thursday 3 December.
CL_T = utc(2026, 12, 3, 15, 0)


def run(regime: str, org: OrganisationProfile | None = None, **facts: object) -> list[Obligation]:
    base: dict[str, object] = {
        "anchors": ALL,
        "risk": "high",
        "data_categories": {"financial"},
        "residents": {HOME[regime]: 10},
    }
    incident = IncidentFacts.model_validate(base | facts)
    return evaluate(incident, [RULES[regime]], org or OrganisationProfile())


def one(obligations: list[Obligation], audience: str, nth: int = 0) -> Obligation:
    found = [o for o in obligations if o.audience == audience]
    return found[nth]


# --- every regime ------------------------------------------------------------------------


@pytest.mark.parametrize("regime", IDS)
def test_out_of_scope_for_people_elsewhere(regime: str) -> None:
    anchors = at(CL_T) if regime == "cl-pdp" else ALL
    result = run(regime, anchors=anchors, residents={"US-CA": 50, "BR": 5})
    assert result
    assert not any(o.applies for o in result)
    in_force = [o for o in result if "in force" not in o.reason]
    assert in_force
    for obligation in in_force:
        assert obligation.reason == f"no residents of {HOME[regime]} and not established there"


@pytest.mark.parametrize("regime", IDS)
def test_in_scope_for_an_organisation_established_there(regime: str) -> None:
    anchors = at(CL_T) if regime == "cl-pdp" else ALL
    org = OrganisationProfile(home_jurisdictions=[HOME[regime]])
    result = run(regime, org, anchors=anchors, residents={"US-CA": 50})
    assert any(o.applies for o in result)


@pytest.mark.parametrize("regime", IDS)
def test_no_encryption_safe_harbour_was_found(regime: str) -> None:
    anchors = at(CL_T) if regime == "cl-pdp" else ALL
    plain = run(regime, anchors=anchors)
    encrypted = run(regime, anchors=anchors, encrypted_key_safe=True)
    assert [o.applies for o in encrypted] == [o.applies for o in plain]
    assert any(o.applies for o in encrypted)
    assert not RULES[regime].exemptions


# --- Mexico ----------------------------------------------------------------------------------


def test_mexico_individuals_immediately_when_rights_are_significantly_affected() -> None:
    result = run("mx-lfpdppp")
    old, new = one(result, "individuals", 0), one(result, "individuals", 1)
    assert not old.applies
    assert old.reason == "no longer in force on 2026-11-20 (until 2025-03-20)"
    assert new.applies
    assert new.deadline is None
    assert new.deadline_rule.startswith(
        "immediately (de forma inmediata), from determined: no fixed deadline"
    )
    assert new.reason.startswith("risk high; 10 residents of MX")
    assert new.content_fields == ["F1", "F3", "F6", "F7", "F9"]
    assert new.timezone == "America/Mexico_City"
    assert "Art 19" in new.citation


def test_mexico_no_regulator_notice_and_no_duty_below_high_risk() -> None:
    result = run("mx-lfpdppp", risk="medium")
    assert {o.audience for o in result} == {"individuals"}
    assert one(result, "individuals", 1).reason == "risk medium, below high"


@pytest.mark.parametrize(
    ("instant", "law"),
    [
        # 05:59 UTC on 21 March 2025 is 23:59 on 20 March in Mexico City: the 2010 law.
        (utc(2025, 3, 21, 5, 59), 0),
        # 06:00 UTC is 00:00 on 21 March, the day the 2025 law came into force.
        (utc(2025, 3, 21, 6, 0), 1),
    ],
)
def test_mexico_2025_law_replaces_the_2010_law(instant: datetime, law: int) -> None:
    result = run("mx-lfpdppp", anchors=at(instant))
    applying = [o for o in result if o.applies]
    assert applying == [one(result, "individuals", law)]
    assert ("Art 19" if law else "Art 20") in applying[0].citation


def test_mexico_authority_is_the_anticorruption_secretariat() -> None:
    regime = RULES["mx-lfpdppp"]
    authority = regime.authority(place="MX")
    assert authority is not None
    assert authority.name == regime.regulators[0]
    assert "Anticorrupción" in authority.name


# --- Argentina -------------------------------------------------------------------------------


def test_argentina_only_a_voluntary_report_to_the_aaip() -> None:
    result = run("ar-pdpa", residents={"AR": 1})
    assert [o.audience for o in result] == ["regulator"]
    report = one(result, "regulator")
    assert report.applies
    assert report.deadline is None
    assert report.deadline_rule.startswith(
        "no fixed deadline found (recommended, not mandatory), from aware: no fixed deadline"
    )
    assert report.reason.startswith("voluntary: 1 resident of AR")
    assert report.reason.endswith("notify AAIP")
    assert RULES["ar-pdpa"].records is not None


def test_argentina_applies_at_any_risk_and_head_count() -> None:
    assert one(run("ar-pdpa", risk="low", residents={"AR": 1}), "regulator").applies


# --- Colombia --------------------------------------------------------------------------------


def test_colombia_sic_report_15_business_days_after_detection() -> None:
    result = run("co-habeas")
    report = one(result, "regulator")
    assert report.applies
    # 07:00 UTC on Fri 20 Nov is 02:00 on Fri 20 Nov in Bogotá. Business days: Mon 23 to
    # Fri 27 (1-5), Mon 30 (6), Tue 1 Dec to Fri 4 (7-10), Mon 7 (11), Tue 8 Dec is the
    # Immaculate Conception (holiday), Wed 9 to Fri 11 (12-14), Mon 14 (15).
    # 23:59:59 on Mon 14 Dec in Bogotá = 04:59:59 UTC on Tue 15 Dec.
    assert report.deadline == utc(2026, 12, 15, 4, 59, 59)
    assert report.deadline_rule.startswith(
        "15 business days after detected (America/Bogota, CO holidays)"
    )
    assert report.reason == (
        "10 residents of CO; notify SIC, through the Registro Nacional de Bases de Datos (RNBD)"
    )
    assert [o.audience for o in result] == ["regulator"]


@pytest.mark.parametrize(
    ("detected", "deadline"),
    [
        # 04:59 UTC on Fri 20 Nov is 23:59 on Thu 19 Nov in Bogotá: Fri 20 (1), Mon 23 to
        # Fri 27 (2-6), Mon 30 (7), Tue 1 to Fri 4 Dec (8-11), Mon 7 (12), (Tue 8 holiday),
        # Wed 9 (13), Thu 10 (14), Fri 11 (15) → 04:59:59 UTC on Sat 12 Dec.
        (utc(2026, 11, 20, 4, 59), utc(2026, 12, 12, 4, 59, 59)),
        # 05:00 UTC is 00:00 on Fri 20 Nov: counted from Friday as above → Mon 14 Dec.
        (utc(2026, 11, 20, 5, 0), utc(2026, 12, 15, 4, 59, 59)),
    ],
)
def test_colombia_counts_from_the_local_date(detected: datetime, deadline: datetime) -> None:
    result = run("co-habeas", anchors={"detected": detected, "aware": T})
    assert one(result, "regulator").deadline == deadline


def test_colombia_has_no_head_count_or_risk_threshold() -> None:
    result = run("co-habeas", risk="low", residents={"CO": 1}, data_categories={"email"})
    assert one(result, "regulator").applies


# --- Chile -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("instant", "in_force"),
    [
        # 02:59:59 UTC on 1 Dec is 23:59:59 on 30 Nov in Santiago (UTC-3): Law 19.628 had
        # no breach duty.
        (utc(2026, 12, 1, 2, 59, 59), False),
        (utc(2026, 12, 1, 3, 0), True),  # 00:00 on 1 Dec in Santiago
    ],
)
def test_chile_duties_start_on_1_december_2026(instant: datetime, in_force: bool) -> None:
    result = run("cl-pdp", anchors=at(instant))
    assert [o.applies for o in result] == [in_force, in_force]
    if not in_force:
        assert {o.reason for o in result} == {
            "not in force on 2026-11-30 (in force from 2026-12-01)"
        }


def test_chile_report_to_the_agency_without_undue_delay() -> None:
    report = one(run("cl-pdp", anchors=at(CL_T)), "regulator")
    assert report.applies
    assert report.deadline is None
    assert report.deadline_rule.startswith(
        "by the most expeditious means possible and without undue delay, from aware:"
        " no fixed deadline"
    )
    assert report.timezone == "America/Santiago"
    assert report.content_fields == ["F1", "F3", "F4", "F5", "F6"]


@pytest.mark.parametrize(("risk", "applies"), [("low", False), ("medium", True), ("high", True)])
def test_chile_needs_a_reasonable_risk(risk: str, applies: bool) -> None:
    result = run("cl-pdp", anchors=at(CL_T), risk=risk)
    assert one(result, "regulator").applies is applies
    assert one(result, "individuals").applies is applies
    if not applies:
        assert one(result, "regulator").reason == "risk low, below medium"


@pytest.mark.parametrize(
    ("categories", "applies"),
    [
        ({"email", "name"}, False),
        ({"financial"}, True),
        ({"health"}, True),
        ({"children"}, True),
        ({"sensitive"}, True),
    ],
)
def test_chile_individuals_only_for_sensitive_children_or_financial_data(
    categories: set[str], applies: bool
) -> None:
    result = run("cl-pdp", anchors=at(CL_T), risk="medium", data_categories=categories)
    assert one(result, "regulator").applies
    individuals = one(result, "individuals")
    assert individuals.applies is applies
    if applies:
        assert individuals.deadline is None
        assert individuals.substitute_notice is not None
        assert individuals.substitute_notice.startswith("a notice in a mass medium of national")
    else:
        assert individuals.reason.startswith("no data category among")
