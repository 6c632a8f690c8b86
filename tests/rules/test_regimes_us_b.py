"""US state laws, batch B (Iowa to Nebraska): thresholds, clocks, open terms and exemptions.

Each regime is loaded from its own file. Dates are counted by hand in the comments;
T = Friday 20 Nov 2026, 07:00 UTC (01:00 CST, 02:00 EST, 00:00 MST). The engine adds
calendar days and hours as elapsed time, so a clock keeps T's UTC time of day.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from breachflow.rules import IncidentFacts, Obligation, OrganisationProfile, evaluate
from breachflow.rules.loader import load_regime
from breachflow.rules.schema import Regime
from breachflow.rules.vocab import RULES_DIR

STATES = ["ia", "ks", "ky", "la", "md", "ma", "mi", "mn", "ms", "mo", "mt", "ne"]
REGIMES: dict[str, Regime] = {s: load_regime(RULES_DIR / f"us-{s}.yaml") for s in STATES}
T = datetime(2026, 11, 20, 7, 0, tzinfo=UTC)
ALL = dict.fromkeys(["detected", "aware", "determined", "assessed", "discovered"], T)


def run(state: str, **facts: object) -> list[Obligation]:
    base: dict[str, object] = {"anchors": ALL, "risk": "high", "data_categories": {"national_id"}}
    incident = IncidentFacts.model_validate(base | facts)
    return evaluate(incident, [REGIMES[state]], OrganisationProfile())


def residents(state: str, count: int) -> dict[str, int]:
    return {f"US-{state.upper()}": count} if count else {"US-CA": 5}


def pick(obligations: list[Obligation], audience: str) -> Obligation:
    """The obligation for ``audience`` that applies, else the first one listed."""
    found = [o for o in obligations if o.audience == audience]
    return next((o for o in found if o.applies), found[0])


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_every_file_is_named_for_its_id_and_cited() -> None:
    for state, regime in REGIMES.items():
        assert regime.id == f"us-{state}"
        assert regime.applicability.residence == [f"US-{state.upper()}"]
        assert regime.authorities, state


# --- Head-count thresholds: regulator and consumer reporting agencies ------------------------


@pytest.mark.parametrize(
    ("state", "audience", "op", "threshold"),
    [
        ("ia", "regulator", ">=", 500),  # AG page "at least 500" (stricter than "more than")
        ("la", "regulator", ">=", 1),
        ("md", "regulator", ">=", 1),
        ("md", "consumer_reporting_agencies", ">=", 1000),
        ("ma", "regulator", ">=", 1),
        ("ma", "consumer_reporting_agencies", ">=", 1),
        ("mi", "consumer_reporting_agencies", ">=", 1000),
        ("mn", "consumer_reporting_agencies", ">", 500),
        ("mo", "regulator", ">", 1000),
        ("mo", "consumer_reporting_agencies", ">", 1000),
        ("mt", "regulator", ">=", 1),
        ("mt", "consumer_reporting_agencies", ">=", 1),
        ("ne", "regulator", ">=", 1),
        ("ks", "consumer_reporting_agencies", ">", 1000),
        ("ky", "consumer_reporting_agencies", ">", 1000),
    ],
)
def test_count_thresholds(state: str, audience: str, op: str, threshold: int) -> None:
    first = threshold if op == ">=" else threshold + 1  # the first count that triggers
    code = f"US-{state.upper()}"
    for count, expected in [(first - 1, False), (first, True), (first + 1, True)]:
        notice = pick(run(state, residents=residents(state, count)), audience)
        assert notice.applies is expected, (state, audience, count)
        if expected:
            word = "resident" if count == 1 else "residents"
            assert notice.reason.startswith(f"{count:,} {word} of {code} {op} {threshold:,}")
        elif count:
            assert f"{count:,} residents of {code}, not {op} {threshold:,}" in notice.reason


@pytest.mark.parametrize("state", ["ia", "ks", "ky", "mi", "ms"])
def test_no_regulator_notice_where_none_found(state: str) -> None:
    audiences = {o.audience for o in run(state, residents=residents(state, 100_000))}
    assert ("regulator" in audiences) is (state == "ia")
    assert ("consumer_reporting_agencies" in audiences) is (state not in {"ia", "ms"})


# --- Fixed clocks ----------------------------------------------------------------------------


def test_louisiana_60_days_then_attorney_general_10_days_later() -> None:
    result = run("la", residents={"US-LA": 20})
    individuals, regulator = pick(result, "individuals"), pick(result, "regulator")
    # Fri 20 Nov 2026 01:00 CST + 60 days = Tue 19 Jan 2027 01:00 CST (07:00 UTC).
    assert individuals.deadline == utc(2027, 1, 19, 7, 0)
    assert individuals.deadline_rule.startswith("60 calendar days after discovered")
    assert individuals.timezone == "America/Chicago"
    # 10 days after the latest permissible individual notice: Fri 29 Jan 2027 07:00 UTC.
    assert regulator.deadline == utc(2027, 1, 29, 7, 0)
    assert regulator.deadline_rule.startswith("10 calendar days after the individuals notice")
    assert "[✓]" in regulator.citation


def test_louisiana_clock_runs_from_discovery_only() -> None:
    anchors = {name: T - timedelta(days=9) for name in ALL} | {"discovered": T}
    result = run("la", anchors=anchors, residents={"US-LA": 20})
    assert pick(result, "individuals").deadline == T + timedelta(days=60)
    missing = run("la", anchors=anchors | {"discovered": None}, residents={"US-LA": 20})
    assert pick(missing, "individuals").deadline is None
    assert "anchor 'discovered' not known yet" in pick(missing, "individuals").deadline_rule


def test_maryland_45_days_after_discovery_since_hb_962() -> None:
    result = run("md", residents={"US-MD": 20})
    individuals, regulator = pick(result, "individuals"), pick(result, "regulator")
    # Fri 20 Nov 2026 + 45 days = Mon 4 Jan 2027, 07:00 UTC (02:00 EST).
    assert individuals.deadline == utc(2027, 1, 4, 7, 0)
    assert individuals.deadline_rule.startswith("45 calendar days after discovered")
    assert individuals.reason.endswith("version in force from 2022-10-01")
    # The AG hears first: its latest instant is the individuals' latest one.
    assert regulator.deadline == individuals.deadline
    assert "before the notice to individuals" in regulator.deadline_rule


@pytest.mark.parametrize(
    ("at", "anchor"),
    [
        # 03:59 UTC on 1 Oct 2022 is 23:59 EDT on 30 Sep: the old text, 45 days after the
        # investigation ends (assessed).
        (utc(2022, 10, 1, 3, 59), "assessed"),
        # 04:00 UTC is midnight EDT on 1 Oct: HB 962, 45 days after discovery.
        (utc(2022, 10, 1, 4, 0), "discovered"),
    ],
)
def test_maryland_amendment_in_force_from_1_october_2022_local_time(
    at: datetime, anchor: str
) -> None:
    # Investigation ends 30 days after discovery: 31 Oct + 45 days = 15 Dec (old text);
    # discovery + 45 days = 15 Nov (new text). Elapsed days, so the UTC time is kept.
    anchors = dict.fromkeys(ALL, at) | {"assessed": at + timedelta(days=30)}
    individuals = pick(run("md", anchors=anchors, residents={"US-MD": 20}), "individuals")
    due = at + timedelta(days=30 + 45) if anchor == "assessed" else at + timedelta(days=45)
    assert individuals.deadline == due
    assert individuals.deadline_rule.startswith(f"45 calendar days after {anchor}")
    versioned = individuals.reason.endswith("version in force from 2022-10-01")
    assert versioned is (anchor == "discovered")


def test_minnesota_consumer_reporting_agencies_within_48_hours() -> None:
    anchors = {name: T - timedelta(days=3) for name in ALL} | {"discovered": T}
    cra = pick(run("mn", anchors=anchors, residents={"US-MN": 501}), "consumer_reporting_agencies")
    # Fri 20 Nov 01:00 CST + 48 h = Sun 22 Nov 01:00 CST = 07:00 UTC.
    assert cra.deadline == utc(2026, 11, 22, 7, 0)
    assert cra.deadline_rule.startswith("48 hours after discovered")


# --- Open terms ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "term"),
    [
        ("ia", "in the most expeditious manner possible and without unreasonable delay"),
        ("ks", "in the most expedient time possible and without unreasonable delay"),
        ("ky", "in the most expedient time possible and without unreasonable delay"),
        ("ma", "as soon as practicable and without unreasonable delay"),
        ("mi", "without unreasonable delay"),
        ("mn", "in the most expedient time possible and without unreasonable delay"),
        ("ms", "without unreasonable delay"),
        ("mo", "without unreasonable delay"),
        ("mt", "without unreasonable delay"),
        ("ne", "as soon as possible and without unreasonable delay"),
    ],
)
def test_individual_notice_is_an_open_term(state: str, term: str) -> None:
    individuals = pick(run(state, residents=residents(state, 20)), "individuals")
    assert individuals.applies
    assert individuals.deadline is None
    assert individuals.deadline_rule.startswith(f"{term}, from ")
    assert "no fixed deadline" in individuals.deadline_rule


def test_iowa_attorney_general_5_business_days_after_an_open_individual_notice() -> None:
    regulator = pick(run("ia", residents={"US-IA": 500}), "regulator")
    assert regulator.applies
    # Counted from the consumer notice, which has no fixed instant: no deadline yet.
    assert regulator.deadline is None
    assert regulator.deadline_rule.startswith(
        "5 business days after the individuals notice, counted from its deadline"
        " (America/Chicago, US-IA holidays)"
    )
    assert "no fixed individuals/initial deadline to count from" in regulator.deadline_rule


@pytest.mark.parametrize(
    ("state", "term"),
    [
        ("ma", "as soon as practicable and without unreasonable delay"),
        ("mo", "without unreasonable delay"),
        ("mt", "simultaneously with the notice to residents"),
        ("ne", "not later than the time notice is provided to the Nebraska residents"),
    ],
)
def test_regulator_notice_without_a_fixed_instant(state: str, term: str) -> None:
    regulator = pick(run(state, residents=residents(state, 5000)), "regulator")
    assert regulator.applies
    assert regulator.deadline is None
    assert regulator.deadline_rule.startswith(term)


def test_duties_only_an_unreliable_source_named_are_not_encoded() -> None:
    """Minnesota's 48-hour AG notice and Louisiana's and Nebraska's credit-bureau notices
    came from one site the statutes and law-firm charts contradict (review 2026-12-06)."""
    mn = run("mn", residents={"US-MN": 600})
    assert not [o for o in mn if o.audience == "regulator" and o.applies]
    for state, code in (("la", "US-LA"), ("ne", "US-NE")):
        result = run(state, residents={code: 5000})
        assert not [o for o in result if o.audience == "consumer_reporting_agencies"], state


# --- Substitute notice -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "people"),
    [
        ("ia", 350_000),
        ("ks", 5_000),
        ("ky", 500_000),
        ("la", 500_000),
        ("md", 175_000),
        ("ma", 500_000),
        ("mi", 500_000),
        ("mn", 500_000),
        ("ms", 5_000),
        ("mo", 150_000),
        ("mt", 500_000),
        ("ne", 100_000),
    ],
)
def test_substitute_notice_people_threshold(state: str, people: int) -> None:
    code = f"US-{state.upper()}"
    for count, met in [(people, "not met"), (people + 1, "met")]:
        individuals = pick(run(state, residents={code: count}), "individuals")
        assert individuals.substitute_notice is not None
        assert f"> {people:,} people: {met} ({count:,} residents of {code}" in (
            individuals.substitute_notice
        )
        assert "(operator to judge)" in individuals.substitute_notice


# --- Scope and exemptions --------------------------------------------------------------------


@pytest.mark.parametrize("state", STATES)
def test_encrypted_data_with_a_safe_key_is_exempt(state: str) -> None:
    result = run(state, residents=residents(state, 5000), encrypted_key_safe=True)
    assert result
    assert not any(o.applies for o in result)
    assert all(
        o.reason.startswith("exempt: data encrypted and key not compromised") for o in result
    )


@pytest.mark.parametrize("state", STATES)
def test_low_risk_exempts_only_where_the_law_has_a_harm_test(state: str) -> None:
    result = run(state, residents=residents(state, 5000), risk="low")
    harm_test = state not in {"ma", "mn"}
    assert any(o.applies for o in result) is not harm_test
    if harm_test:
        assert pick(result, "individuals").reason.startswith("exempt: risk assessed as low")


@pytest.mark.parametrize("state", STATES)
def test_out_of_scope_without_residents_or_covered_data(state: str) -> None:
    elsewhere = run(state, residents={"US-CA": 5000, "US-TX": 80})
    assert not any(o.applies for o in elsewhere)
    assert pick(elsewhere, "individuals").reason.startswith(f"no residents of US-{state.upper()}")
    contact_only = run(state, residents=residents(state, 5000), data_categories={"email"})
    assert not any(o.applies for o in contact_only)
