"""US state regimes AL, AK, AZ, AR, CT, DE, DC, GA, HI, ID, IL, IN at and either side of
every threshold, with every fixed clock counted by hand.

T is Friday 2026-11-20 07:00 UTC. All clocks here are calendar days, so a deadline is the
anchor plus N days to the second (deadline_after adds a timedelta in UTC; no DST change
falls between T and T + 90 days in any of these zones):
  T + 45 days = 2027-01-04 07:00 UTC (Nov 10 left + Dec 31 = 41, + Jan 4),
  T + 60 days = 2027-01-19 07:00 UTC, T + 90 days = 2027-02-18 07:00 UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from breachflow.rules import IncidentFacts, Obligation, OrganisationProfile, evaluate
from breachflow.rules.loader import load_regime
from breachflow.rules.schema import Regime
from breachflow.rules.vocab import RULES_DIR

IDS = ["us-al", "us-ak", "us-az", "us-ar", "us-ct", "us-de", "us-dc", "us-ga", "us-hi"]
IDS += ["us-id", "us-il", "us-in"]
RULES: dict[str, Regime] = {i: load_regime(RULES_DIR / f"{i}.yaml") for i in IDS}
STATE = {i: "US-" + i[3:].upper() for i in IDS}
T = datetime(2026, 11, 20, 7, 0, tzinfo=UTC)
ALL = dict.fromkeys(["detected", "aware", "determined", "assessed", "discovered"], T)
DAY45 = datetime(2027, 1, 4, 7, 0, tzinfo=UTC)
DAY60 = datetime(2027, 1, 19, 7, 0, tzinfo=UTC)


def run(regime: str, **facts: object) -> list[Obligation]:
    base: dict[str, object] = {"anchors": ALL, "risk": "high", "data_categories": {"national_id"}}
    incident = IncidentFacts.model_validate(base | facts)
    return evaluate(incident, [RULES[regime]], OrganisationProfile())


def pick(obligations: list[Obligation], audience: str) -> Obligation:
    found = [o for o in obligations if o.audience == audience]
    assert len(found) == 1, (audience, found)
    return found[0]


def audiences(obligations: list[Obligation]) -> set[str]:
    return {o.audience for o in obligations}


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_days_counted_in_the_docstring() -> None:
    assert T + timedelta(days=45) == DAY45
    assert T + timedelta(days=60) == DAY60
    assert T.weekday() == 4  # Friday


# --- scope, time zone, exemptions ------------------------------------------------------------


@pytest.mark.parametrize(
    ("regime", "zone"),
    [
        ("us-al", "America/Chicago"),
        ("us-ak", "America/Juneau"),
        ("us-az", "America/Phoenix"),
        ("us-ar", "America/Chicago"),
        ("us-ct", "America/New_York"),
        ("us-de", "America/New_York"),
        ("us-dc", "America/New_York"),
        ("us-ga", "America/New_York"),
        ("us-hi", "Pacific/Honolulu"),
        ("us-id", "America/Boise"),
        ("us-il", "America/Chicago"),
        ("us-in", "America/Indiana/Indianapolis"),
    ],
)
def test_residents_in_scope_others_not(regime: str, zone: str) -> None:
    state = STATE[regime]
    inside = run(regime, residents={state: 3})
    notice = pick(inside, "individuals")
    assert notice.applies
    assert notice.timezone == zone
    assert f"3 residents of {state}" in notice.reason
    outside = run(regime, residents={"US-CA": 5000}, unknown_residence=2)
    assert not any(o.applies for o in outside)
    # Amended laws (CT, IN) append "; version in force from ...".
    assert pick(outside, "individuals").reason.startswith(
        f"no residents of {state} (2 of unknown residence: review)"
    )
    # Contact data alone is not personal information under any of these laws.
    contact_only = run(regime, residents={state: 3}, data_categories={"email", "phone"})
    assert not any(o.applies for o in contact_only)


@pytest.mark.parametrize("regime", IDS)
def test_encryption_with_the_key_safe_exempts_every_notice(regime: str) -> None:
    result = run(regime, residents={STATE[regime]: 20000}, encrypted_key_safe=True)
    assert result
    for obligation in result:
        assert not obligation.applies
        assert obligation.reason.startswith("exempt: data encrypted and key not compromised")


@pytest.mark.parametrize(
    ("regime", "exempt"),
    [
        ("us-al", True),
        ("us-ak", True),
        ("us-az", True),
        ("us-ar", True),
        ("us-ct", True),
        ("us-de", True),
        ("us-dc", True),
        ("us-ga", False),
        ("us-hi", True),
        ("us-id", True),
        ("us-il", False),
        ("us-in", True),
    ],
)
def test_risk_of_harm_exception_where_the_law_has_one(regime: str, exempt: bool) -> None:
    result = run(regime, residents={STATE[regime]: 20000}, risk="low")
    individuals = pick(result, "individuals")
    assert individuals.applies is not exempt
    if exempt:
        assert individuals.reason.startswith("exempt: risk assessed as low")


# --- regulator notice thresholds -------------------------------------------------------------


@pytest.mark.parametrize(
    ("regime", "op", "threshold", "recipient"),
    [
        ("us-al", ">", 1000, "Alabama Attorney General"),
        ("us-az", ">", 1000, "Arizona Attorney General"),
        ("us-de", ">", 500, "Delaware Attorney General"),
        ("us-dc", ">=", 50, "District of Columbia Attorney General"),
        ("us-hi", ">", 1000, "Hawaii Office of Consumer Protection"),
        ("us-il", ">", 500, "Illinois Attorney General"),
        ("us-in", ">=", 1, "Indiana Attorney General"),
    ],
)
def test_regulator_thresholds_on_residents(
    regime: str, op: str, threshold: int, recipient: str
) -> None:
    state = STATE[regime]
    first = threshold if op == ">=" else threshold + 1
    for residents, expected in [(first - 1, False), (first, True), (first + 1, True)]:
        people = {state: residents} if residents else {state: 0, "US-CA": 5}
        regulator = pick(run(regime, residents=people), "regulator")
        assert regulator.applies is expected, (regime, residents)
        assert regulator.recipient == recipient
        if expected:
            word = "resident" if residents == 1 else "residents"
            assert regulator.reason.startswith(
                f"{residents:,} {word} of {state} {op} {threshold:,}"
            )
            assert regulator.contact is not None and regulator.contact.name == recipient


@pytest.mark.parametrize(("total", "expected"), [(1000, False), (1001, True), (1002, True)])
def test_arkansas_ag_counts_all_affected_individuals(total: int, expected: bool) -> None:
    # 4-110-105(b)(2) says "more than 1,000 individuals": residents of other states count too.
    result = run("us-ar", residents={"US-AR": 10, "US-TX": total - 10})
    regulator = pick(result, "regulator")
    assert regulator.applies is expected
    if expected:
        assert regulator.reason.startswith(f"{total:,} affected > 1,000")
        assert regulator.deadline == DAY45
    else:
        assert regulator.reason == "1,000 affected, not > 1,000"


def test_connecticut_ag_notice_for_any_resident() -> None:
    regulator = pick(run("us-ct", residents={"US-CT": 1}), "regulator")
    assert regulator.applies
    assert regulator.contact is not None and regulator.contact.email == "ag.breach@ct.gov"


@pytest.mark.parametrize("regime", ["us-ak", "us-ga", "us-id"])
def test_no_regulator_notice_for_businesses(regime: str) -> None:
    result = run(regime, residents={STATE[regime]: 50000})
    assert "regulator" not in audiences(result)


# --- consumer reporting agencies -------------------------------------------------------------


@pytest.mark.parametrize(
    ("regime", "threshold"),
    [
        ("us-al", 1000),
        ("us-ak", 1000),
        ("us-az", 1000),
        ("us-dc", 1000),
        ("us-ga", 10000),
        ("us-hi", 1000),
        ("us-in", 1000),
    ],
)
def test_consumer_reporting_agency_thresholds(regime: str, threshold: int) -> None:
    state = STATE[regime]
    below = pick(run(regime, residents={state: threshold}), "consumer_reporting_agencies")
    assert not below.applies
    assert below.reason.startswith(f"{threshold:,} residents of {state}, not > {threshold:,}")
    for residents in (threshold + 1, threshold + 2):
        notice = pick(run(regime, residents={state: residents}), "consumer_reporting_agencies")
        assert notice.applies
        assert notice.reason.startswith(f"{residents:,} residents of {state} > {threshold:,}")


def test_idaho_has_no_consumer_reporting_agency_notice() -> None:
    assert "consumer_reporting_agencies" not in audiences(run("us-id", residents={"US-ID": 9000}))


# --- fixed clocks ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("regime", "audience", "anchor", "days", "due"),
    [
        ("us-al", "individuals", "determined", 45, DAY45),
        ("us-al", "regulator", "determined", 45, DAY45),
        ("us-az", "individuals", "determined", 45, DAY45),
        ("us-az", "regulator", "determined", 45, DAY45),
        ("us-az", "consumer_reporting_agencies", "determined", 45, DAY45),
        ("us-ar", "regulator", "determined", 45, DAY45),
        ("us-ct", "individuals", "discovered", 60, DAY60),
        ("us-ct", "regulator", "discovered", 60, DAY60),
        ("us-de", "individuals", "determined", 60, DAY60),
        ("us-de", "regulator", "determined", 60, DAY60),
        ("us-in", "individuals", "discovered", 45, DAY45),
        ("us-in", "regulator", "discovered", 45, DAY45),
    ],
)
def test_fixed_clocks_and_their_anchor(
    regime: str, audience: str, anchor: str, days: int, due: datetime
) -> None:
    # Every other anchor five days earlier: only the named one may start the clock.
    anchors = {name: T - timedelta(days=5) for name in ALL} | {anchor: T}
    notice = pick(run(regime, anchors=anchors, residents={STATE[regime]: 5000}), audience)
    assert notice.applies
    assert notice.deadline == due
    assert notice.starts_at == T
    assert notice.deadline_rule.startswith(f"{days} calendar days after {anchor}")
    missing = run(regime, anchors=anchors | {anchor: None}, residents={STATE[regime]: 5000})
    assert pick(missing, audience).deadline is None
    assert f"anchor '{anchor}' not known yet" in pick(missing, audience).deadline_rule


@pytest.mark.parametrize(
    ("regime", "audience", "term"),
    [
        ("us-ak", "individuals", "in the most expeditious time possible"),
        ("us-ak", "consumer_reporting_agencies", "without unreasonable delay"),
        ("us-al", "consumer_reporting_agencies", "without unreasonable delay"),
        ("us-ar", "individuals", "in the most expedient time and manner possible"),
        ("us-dc", "regulator", "not later than the notice to individuals"),
        ("us-ga", "individuals", "in the most expedient time possible"),
        ("us-ga", "consumer_reporting_agencies", "without unreasonable delay"),
        ("us-hi", "individuals", "without unreasonable delay"),
        ("us-hi", "regulator", "without unreasonable delay"),
        ("us-hi", "consumer_reporting_agencies", "without unreasonable delay"),
        ("us-id", "individuals", "in the most expedient time possible"),
        ("us-il", "individuals", "in the most expedient time possible"),
        ("us-in", "consumer_reporting_agencies", "without unreasonable delay"),
    ],
)
def test_open_terms_have_no_invented_instant(regime: str, audience: str, term: str) -> None:
    notice = pick(run(regime, residents={STATE[regime]: 20000}), audience)
    assert notice.applies
    assert notice.deadline is None
    assert notice.deadline_rule.startswith(term)
    assert "no fixed deadline" in notice.deadline_rule


@pytest.mark.parametrize(
    ("regime", "audience", "residents"),
    [("us-dc", "individuals", 10), ("us-il", "regulator", 501)],
)
def test_no_outer_clock_that_only_one_unreliable_source_names(
    regime: str, audience: str, residents: int
) -> None:
    # DC (60 days) and the IL AG (45 days): only complianceiq.site named these outer limits;
    # the statutes have none, so the notice keeps its open term (review 2026-12-06).
    notice = pick(run(regime, residents={STATE[regime]: residents}), audience)
    assert notice.applies
    assert notice.deadline is None
    assert "no later than" not in notice.deadline_rule.split(" — ")[0].split(", from")[-1]
    assert "complianceiq" not in notice.deadline_rule


def test_delaware_and_alabama_deadlines_count_from_determination_not_discovery() -> None:
    anchors = ALL | {"discovered": T - timedelta(days=30)}
    for regime in ("us-de", "us-al"):
        notice = pick(run(regime, anchors=anchors, residents={STATE[regime]: 9}), "individuals")
        assert notice.starts_at == T


# --- amended laws: versions by local date ----------------------------------------------------


@pytest.mark.parametrize(
    ("discovered", "days", "versioned"),
    [
        # 03:59 UTC on 1 Oct 2021 is 23:59 EDT on 30 Sep: PA 18-90, 90 days.
        (utc(2021, 10, 1, 3, 59), 90, False),
        # 04:00 UTC is midnight EDT on 1 Oct 2021: PA 21-59, 60 days.
        (utc(2021, 10, 1, 4, 0), 60, True),
    ],
)
def test_connecticut_60_days_from_1_october_2021(
    discovered: datetime, days: int, versioned: bool
) -> None:
    result = run("us-ct", anchors={"discovered": discovered}, residents={"US-CT": 700})
    individuals, regulator = pick(result, "individuals"), pick(result, "regulator")
    assert individuals.deadline == discovered + timedelta(days=days)
    assert regulator.deadline == discovered + timedelta(days=days)
    assert ("version in force from 2021-10-01" in individuals.reason) is versioned


def test_connecticut_90_days_counted_by_hand() -> None:
    # 30 Sep 2021 23:59 EDT + 90 days = 29 Dec 2021 23:59 EST (03:59 / 04:59 UTC across DST:
    # a timedelta in UTC keeps 03:59 UTC, i.e. 22:59 EST on 28 Dec).
    result = run("us-ct", anchors={"discovered": utc(2021, 10, 1, 3, 59)}, residents={"US-CT": 1})
    assert pick(result, "individuals").deadline == utc(2021, 12, 30, 3, 59)


@pytest.mark.parametrize(
    ("discovered", "due"),
    [
        # 03:59 UTC on 1 Jul 2022 is 23:59 EDT on 30 Jun: old law, no fixed day.
        (utc(2022, 7, 1, 3, 59), None),
        # Midnight EDT on 1 Jul 2022: 45 days -> 15 Aug 2022 04:00 UTC (30 in Jul + 15).
        (utc(2022, 7, 1, 4, 0), utc(2022, 8, 15, 4, 0)),
    ],
)
def test_indiana_45_days_from_1_july_2022(discovered: datetime, due: datetime | None) -> None:
    result = run("us-in", anchors={"discovered": discovered}, residents={"US-IN": 5})
    individuals = pick(result, "individuals")
    assert individuals.applies
    assert individuals.deadline == due
    if due is None:
        assert individuals.deadline_rule.startswith("without unreasonable delay")


def test_dc_ag_notice_only_since_the_2020_amendment() -> None:
    before = run("us-dc", anchors={"discovered": utc(2020, 6, 8, 3, 59)}, residents={"US-DC": 60})
    assert (
        pick(before, "regulator").reason == "not in force on 2020-06-07 (in force from 2020-06-08)"
    )
    after = run("us-dc", anchors={"discovered": utc(2020, 6, 8, 4, 0)}, residents={"US-DC": 60})
    assert pick(after, "regulator").applies


def test_illinois_ag_notice_only_since_2020() -> None:
    before = run("us-il", anchors={"discovered": utc(2020, 1, 1, 5, 59)}, residents={"US-IL": 600})
    assert (
        pick(before, "regulator").reason == "not in force on 2019-12-31 (in force from 2020-01-01)"
    )
    after = run("us-il", anchors={"discovered": utc(2020, 1, 1, 6, 0)}, residents={"US-IL": 600})
    assert pick(after, "regulator").applies


# --- substitute notice -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("regime", "people", "cost"),
    [
        ("us-al", 100000, 500000),
        ("us-ak", 300000, 150000),
        ("us-az", 100000, 50000),
        ("us-ar", 500000, 250000),
        ("us-ct", 500000, 250000),
        ("us-de", 100000, 75000),
        ("us-dc", 100000, 50000),
        ("us-ga", 100000, 50000),
        ("us-hi", 200000, 100000),
        ("us-id", 50000, 25000),
        ("us-il", 500000, 250000),
        ("us-in", 500000, 250000),
    ],
)
def test_substitute_notice_people_threshold(regime: str, people: int, cost: int) -> None:
    state = STATE[regime]
    for residents, met in [(people, "not met"), (people + 1, "met")]:
        text = pick(run(regime, residents={state: residents}), "individuals").substitute_notice
        assert text is not None
        assert f"> {people:,} people: {met} ({residents:,} residents of {state}" in text
        assert f"notice cost > ${cost:,} (operator to judge)" in text
