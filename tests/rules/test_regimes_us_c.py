"""US states, batch C: Nevada to South Carolina, at and either side of each threshold.

Dates are counted by hand in the comments. T is Friday 20 November 2026, 07:00 UTC: after the
end of summer time everywhere in the batch, and no change of offset falls in the 45 days
that follow, so a fixed clock in calendar days is T plus that many days (20 Nov + 45 days:
10 days to 30 Nov, 31 to 31 Dec, 4 more = Monday 4 January 2027, 07:00 UTC).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from breachflow.rules import IncidentFacts, Obligation, OrganisationProfile, evaluate
from breachflow.rules.loader import load_regime
from breachflow.rules.schema import Regime
from breachflow.rules.vocab import RULES_DIR

STATES = {
    "us-nv": "US-NV",
    "us-nh": "US-NH",
    "us-nj": "US-NJ",
    "us-nm": "US-NM",
    "us-nc": "US-NC",
    "us-nd": "US-ND",
    "us-oh": "US-OH",
    "us-ok": "US-OK",
    "us-or": "US-OR",
    "us-pa": "US-PA",
    "us-ri": "US-RI",
    "us-sc": "US-SC",
}
RULES: dict[str, Regime] = {i: load_regime(RULES_DIR / f"{i}.yaml") for i in STATES}
T = datetime(2026, 11, 20, 7, 0, tzinfo=UTC)
ANCHORS = ["detected", "aware", "determined", "assessed", "discovered"]
ALL = dict.fromkeys(ANCHORS, T)
#: Every state of the batch covers a Social Security number with a name.
DATA = {"national_id", "name"}


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def run(regime: str, residents: int | dict[str, int] = 10, **facts: object) -> list[Obligation]:
    """Evaluate one regime; a bare number counts residents of the regime's own state."""
    counts = residents if isinstance(residents, dict) else {STATES[regime]: residents}
    base: dict[str, object] = {
        "anchors": ALL,
        "risk": "high",
        "data_categories": DATA,
        "residents": counts,
    }
    incident = IncidentFacts.model_validate(base | facts)
    return evaluate(incident, [RULES[regime]], OrganisationProfile())


def pick(obligations: list[Obligation], audience: str) -> Obligation:
    found = [o for o in obligations if o.audience == audience]
    assert len(found) == 1, (audience, found)
    return found[0]


def audiences(obligations: list[Obligation]) -> set[str]:
    return {o.audience for o in obligations}


# --- every regime ----------------------------------------------------------------------------


@pytest.mark.parametrize("regime", STATES)
def test_out_of_scope_for_people_elsewhere(regime: str) -> None:
    result = run(regime, residents={"US-CA": 5000})
    assert result
    assert not any(o.applies for o in result)
    # Amended laws add "; version in force from ..." to every reason.
    assert pick(result, "individuals").reason.startswith(f"no residents of {STATES[regime]}")


@pytest.mark.parametrize("regime", STATES)
def test_encryption_with_the_key_safe_is_exempt(regime: str) -> None:
    result = run(regime, residents=5000, encrypted_key_safe=True)
    assert not any(o.applies for o in result)
    assert pick(result, "individuals").reason.startswith(
        "exempt: data encrypted and key not compromised"
    )


@pytest.mark.parametrize("regime", STATES)
def test_contact_data_alone_is_out_of_scope(regime: str) -> None:
    result = run(regime, residents=5000, data_categories={"email", "phone"})
    assert not any(o.applies for o in result)


@pytest.mark.parametrize(
    ("regime", "exempt"),
    [
        ("us-nv", False),
        ("us-nh", True),
        ("us-nj", True),
        ("us-nm", True),
        ("us-nc", True),
        ("us-nd", False),
        ("us-oh", True),
        ("us-ok", True),
        ("us-or", True),
        ("us-pa", True),
        ("us-ri", True),
        ("us-sc", True),
    ],
)
def test_risk_of_harm_exception(regime: str, exempt: bool) -> None:
    individuals = pick(run(regime, residents=5000, risk="low"), "individuals")
    assert individuals.applies is not exempt
    if exempt:
        assert individuals.reason.startswith("exempt: risk assessed as low")


@pytest.mark.parametrize("regime", STATES)
def test_every_fact_names_its_source_and_each_regime_its_timezone(regime: str) -> None:
    rules = RULES[regime]
    assert rules.applicability.residence == [STATES[regime]]
    assert rules.timezone in {
        "America/New_York",
        "America/Chicago",
        "America/Denver",
        "America/Los_Angeles",
    }
    for obligation in run(regime, residents=5000):
        assert "accessed 2026-12-06" in obligation.citation or "[U]" in obligation.citation


# --- notice to individuals -------------------------------------------------------------------

FIXED = [
    ("us-nm", "discovered", 45),
    ("us-oh", "discovered", 45),
    ("us-or", "discovered", 45),
    ("us-ri", "determined", 45),
]


@pytest.mark.parametrize(("regime", "anchor", "days"), FIXED)
def test_fixed_individual_deadlines(regime: str, anchor: str, days: int) -> None:
    anchors = dict.fromkeys(ANCHORS, T - timedelta(days=5)) | {anchor: T}
    individuals = pick(run(regime, anchors=anchors), "individuals")
    assert individuals.applies
    # 45 days from Fri 20 Nov 2026 07:00 UTC: Mon 4 Jan 2027 07:00 UTC (see module docstring).
    assert individuals.deadline == utc(2027, 1, 4, 7, 0) == T + timedelta(days=days)
    assert individuals.deadline_rule.startswith(f"{days} calendar days after {anchor}")
    missing = pick(run(regime, anchors=anchors | {anchor: None}), "individuals")
    assert missing.deadline is None
    assert f"anchor '{anchor}' not known yet" in missing.deadline_rule


OPEN = [
    ("us-nv", "in the most expedient time possible and without unreasonable delay"),
    ("us-nh", "as quickly as possible, after the determination of likely misuse"),
    ("us-nj", "in the most expedient time possible and without unreasonable delay"),
    ("us-nc", "without unreasonable delay"),
    ("us-nd", "in the most expedient time possible and without unreasonable delay"),
    ("us-ok", "without unreasonable delay"),
    ("us-pa", "without unreasonable delay"),
    ("us-sc", "in the most expedient time possible and without unreasonable delay"),
]


@pytest.mark.parametrize(("regime", "term"), OPEN)
def test_open_individual_terms_have_no_invented_number(regime: str, term: str) -> None:
    individuals = pick(run(regime), "individuals")
    assert individuals.applies
    assert individuals.deadline is None
    assert individuals.deadline_rule.startswith(f"{term}, from ")
    assert "no fixed deadline" in individuals.deadline_rule


# --- regulators ------------------------------------------------------------------------------

REGULATOR = [
    ("us-nh", ">=", 1),
    ("us-nj", ">=", 1),
    ("us-nc", ">=", 1),
    ("us-nm", ">", 1000),
    ("us-ok", ">=", 500),
    ("us-or", ">", 250),
    ("us-pa", ">", 500),
    ("us-ri", ">", 500),
    ("us-sc", ">=", 1000),
]


@pytest.mark.parametrize(("regime", "op", "threshold"), REGULATOR)
def test_regulator_thresholds(regime: str, op: str, threshold: int) -> None:
    state = STATES[regime]
    at = threshold if op == ">=" else threshold + 1
    for residents, expected in [(at - 1, False), (at, True), (at + 1, True)]:
        if residents == 0:
            continue  # nobody resident: out of scope altogether (tested above)
        regulator = pick(run(regime, residents=residents), "regulator")
        assert regulator.applies is expected, (regime, residents)
        word = "resident" if residents == 1 else "residents"
        if expected:
            assert regulator.reason.startswith(f"{residents:,} {word} of {state} {op}")
        else:
            expected_reason = f"{residents:,} {word} of {state}, not {op} {threshold:,}"
            assert regulator.reason.startswith(expected_reason)


@pytest.mark.parametrize("regime", ["us-nv", "us-oh"])
def test_no_regulator_notice_in_nevada_and_ohio(regime: str) -> None:
    assert "regulator" not in audiences(run(regime, residents=100_000))


@pytest.mark.parametrize(("affected", "expected"), [(250, False), (251, True)])
def test_north_dakota_ag_counts_every_affected_individual(affected: int, expected: bool) -> None:
    # "exceeds two hundred fifty individuals": residents of other states count too.
    result = run("us-nd", residents={"US-ND": 10, "US-MN": affected - 10})
    regulator = pick(result, "regulator")
    assert regulator.applies is expected
    if expected:
        assert regulator.reason.startswith(f"{affected} affected > 250")
    else:
        assert regulator.reason == f"{affected} affected, not > 250"


@pytest.mark.parametrize("regime", ["us-nm", "us-or"])
def test_regulator_deadline_45_days_after_discovery(regime: str) -> None:
    regulator = pick(run(regime, residents=2000), "regulator")
    # Fri 20 Nov 2026 + 45 days = Mon 4 Jan 2027, same hour (no offset change in between).
    assert regulator.deadline == utc(2027, 1, 4, 7, 0)
    assert regulator.deadline_rule.startswith("45 calendar days after discovered")


@pytest.mark.parametrize(
    ("regime", "term"),
    [
        ("us-nh", "no fixed deadline found"),
        ("us-nj", "in advance of the disclosure to the customer"),
        ("us-nc", "without unreasonable delay"),
        ("us-nd", "in the most expedient time possible"),
        ("us-pa", "concurrently with the notice to individuals"),
        ("us-ri", "without delaying notice to affected residents"),
        ("us-sc", "without unreasonable delay"),
    ],
)
def test_open_regulator_terms(regime: str, term: str) -> None:
    regulator = pick(run(regime, residents=5000), "regulator")
    assert regulator.applies
    assert regulator.deadline is None
    assert regulator.deadline_rule.startswith(term)


def test_oklahoma_ag_60_days_after_an_open_individual_notice_has_no_instant_yet() -> None:
    regulator = pick(run("us-ok", residents=500), "regulator")
    assert regulator.applies
    assert regulator.deadline is None
    assert regulator.deadline_rule.startswith(
        "60 calendar days after the individuals notice, counted from its deadline"
    )
    assert "no fixed individuals/initial deadline to count from" in regulator.deadline_rule
    assert regulator.reason.endswith("version in force from 2026-01-01")


@pytest.mark.parametrize(
    ("regime", "authority", "email"),
    [
        ("us-nj", "New Jersey Division of State Police", "databreach@cyber.nj.gov"),
        (
            "us-sc",
            "South Carolina Department of Consumer Affairs, Consumer Protection Division",
            "scdca@scconsumer.gov",
        ),
    ],
)
def test_authority_contact_data(regime: str, authority: str, email: str) -> None:
    found = RULES[regime].authority(authority)
    assert found is not None
    assert found.email == email


# --- consumer reporting agencies -------------------------------------------------------------

CRA = [
    ("us-nv", ">", 1000),
    ("us-nh", ">", 1000),
    ("us-nj", ">", 1000),
    ("us-nm", ">", 1000),
    ("us-nc", ">", 1000),
    ("us-oh", ">", 1000),
    ("us-or", ">", 1000),
    ("us-pa", ">=", 500),
    ("us-ri", ">", 500),
    ("us-sc", ">=", 1000),
]


@pytest.mark.parametrize(("regime", "op", "threshold"), CRA)
def test_consumer_reporting_agency_thresholds(regime: str, op: str, threshold: int) -> None:
    state = STATES[regime]
    at = threshold if op == ">=" else threshold + 1
    for residents, expected in [(at - 1, False), (at, True), (at + 1, True)]:
        notice = pick(run(regime, residents=residents), "consumer_reporting_agencies")
        assert notice.applies is expected, (regime, residents)
        if expected:
            assert notice.reason.startswith(f"{residents:,} residents of {state} {op}")
        else:
            expected_reason = f"{residents:,} residents of {state}, not {op} {threshold:,}"
            assert notice.reason.startswith(expected_reason)


def test_new_mexico_cra_notice_45_days_after_discovery() -> None:
    notice = pick(run("us-nm", residents=1001), "consumer_reporting_agencies")
    assert notice.deadline == utc(2027, 1, 4, 7, 0)


@pytest.mark.parametrize("regime", ["us-nd", "us-ok"])
def test_no_cra_duty_that_only_an_unreliable_source_named(regime: str) -> None:
    # Only complianceiq.site named one; the statutes do not (review 2026-12-06).
    assert "consumer_reporting_agencies" not in audiences(run(regime, residents=2000))


# --- amendments: Oklahoma S.B. 626 and Pennsylvania Act 33 -----------------------------------


def test_oklahoma_ag_notice_from_1_january_2026_local_time() -> None:
    # 05:59 UTC on 1 Jan 2026 is 23:59 CST on 31 Dec 2025 in Oklahoma City.
    old = run("us-ok", residents=600, anchors=dict.fromkeys(ANCHORS, utc(2026, 1, 1, 5, 59)))
    assert "regulator" not in audiences(old)
    assert pick(old, "individuals").applies
    new = run("us-ok", residents=600, anchors=dict.fromkeys(ANCHORS, utc(2026, 1, 1, 6, 0)))
    assert pick(new, "regulator").applies


@pytest.mark.parametrize(
    ("anchor", "ag", "cra_at_999", "cra_at_500"),
    [
        # 03:59 UTC on 26 Sep 2024 is 23:59 EDT on the 25th: before Act 33.
        (utc(2024, 9, 26, 3, 59), False, False, False),
        (utc(2024, 9, 26, 4, 0), True, True, True),
    ],
)
def test_pennsylvania_act_33_from_26_september_2024(
    anchor: datetime, ag: bool, cra_at_999: bool, cra_at_500: bool
) -> None:
    at = dict.fromkeys(ANCHORS, anchor)
    result = run("us-pa", residents=999, anchors=at)
    assert ("regulator" in audiences(result)) is ag
    if ag:
        assert pick(result, "regulator").applies
    assert pick(result, "consumer_reporting_agencies").applies is cra_at_999
    result = run("us-pa", residents=500, anchors=at)
    assert pick(result, "consumer_reporting_agencies").applies is cra_at_500
    # Before Act 33 the CRA threshold is 1,000 or more.
    if not ag:
        assert pick(run("us-pa", residents=1000, anchors=at), "consumer_reporting_agencies").applies


@pytest.mark.parametrize(
    ("regime", "first_day", "eve_utc"),
    [
        # 23:59 MDT on 15 Jun 2017 = 05:59 UTC on the 16th.
        ("us-nm", "2017-06-16", utc(2017, 6, 16, 5, 59)),
        # 23:59 EDT on 1 Jul 2016 = 03:59 UTC on the 2nd.
        ("us-ri", "2016-07-02", utc(2016, 7, 2, 3, 59)),
    ],
)
def test_laws_not_in_force_before_their_first_day(
    regime: str, first_day: str, eve_utc: datetime
) -> None:
    before = run(regime, anchors=dict.fromkeys(ANCHORS, eve_utc))
    assert not any(o.applies for o in before)
    assert f"(in force from {first_day})" in pick(before, "individuals").reason
    after = run(regime, anchors=dict.fromkeys(ANCHORS, eve_utc + timedelta(minutes=1)))
    assert pick(after, "individuals").applies


# --- substitute notice -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("regime", "people"),
    [
        ("us-nv", 500_000),
        ("us-nh", 1_000),
        ("us-nj", 500_000),
        ("us-nm", 50_000),
        ("us-nc", 500_000),
        ("us-nd", 500_000),
        ("us-oh", 500_000),
        ("us-ok", 100_000),
        ("us-or", 350_000),
        ("us-pa", 175_000),
        ("us-ri", 50_000),
        ("us-sc", 500_000),
    ],
)
def test_substitute_notice_people_threshold(regime: str, people: int) -> None:
    state = STATES[regime]
    for residents, met in [(people, "not met"), (people + 1, "met")]:
        substitute = pick(run(regime, residents=residents), "individuals").substitute_notice
        assert substitute is not None
        assert f"> {people:,} people: {met} ({residents:,} residents of {state}" in substitute


def test_ohio_small_business_substitute_is_for_the_operator_to_judge() -> None:
    substitute = pick(run("us-oh"), "individuals").substitute_notice
    assert substitute is not None
    assert "10 or fewer employees" in substitute
    assert "notice cost > $250,000 (operator to judge)" in substitute
