"""US regimes: HIPAA, the state laws, NYDFS and SEC 8-K, at and either side of each threshold.

Dates are counted by hand in the comments; 2026-11-20 is a Friday.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from breachflow.rules import IncidentFacts, Obligation, OrganisationProfile, evaluate, load_rules

RULES = {r.id: r for r in load_rules()}
T = datetime(2026, 11, 20, 7, 0, tzinfo=UTC)
ALL = dict.fromkeys(["detected", "aware", "determined", "assessed", "discovered"], T)


def run(regime: str, org: OrganisationProfile | None = None, **facts: object) -> list[Obligation]:
    base: dict[str, object] = {"anchors": ALL, "risk": "high", "data_categories": {"national_id"}}
    incident = IncidentFacts.model_validate(base | facts)
    return evaluate(incident, [RULES[regime]], org or OrganisationProfile())


def pick(
    obligations: list[Obligation], audience: str, phase: str = "initial", nth: int | None = None
) -> Obligation:
    """The ``nth`` obligation of this audience and phase, or without ``nth`` the first one in
    force on the anchor date (a law's text before or after an amendment is another
    obligation of the same kind)."""
    found = [o for o in obligations if (o.audience, o.phase) == (audience, phase)]
    if nth is not None:
        return found[nth]
    current = [o for o in found if "in force on" not in o.reason]
    return (current or found)[0]


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


# --- HIPAA -----------------------------------------------------------------------------------

HIPAA = OrganisationProfile(sectors={"hipaa-covered"})


def hipaa(**facts: object) -> list[Obligation]:
    return run("us-hipaa", HIPAA, **({"data_categories": {"health", "name"}} | facts))


def test_hipaa_individuals_60_days_after_discovery() -> None:
    result = hipaa(residents={"US-CA": 10})
    individuals = pick(result, "individuals")
    assert individuals.applies
    assert individuals.deadline == T + timedelta(days=60)
    assert individuals.deadline_rule == "60 calendar days after discovered"
    assert individuals.content_fields == ["F1", "F2", "F3", "F6", "F7", "F9"]
    assert individuals.min_public_notice_days == 90
    assert "[✓]" in individuals.citation


@pytest.mark.parametrize(("total", "immediate"), [(499, False), (500, True), (501, True)])
def test_hipaa_hhs_notice_at_500_people_else_annual_log(total: int, immediate: bool) -> None:
    result = hipaa(residents={"US-NY": total})
    now, annual = pick(result, "regulator", nth=0), pick(result, "regulator", nth=1)
    assert now.applies is immediate
    assert annual.applies is not immediate
    if immediate:
        assert now.deadline == T + timedelta(days=60)
        assert now.reason.startswith(
            f"{total} affected >= 500; sector flag hipaa-covered; data includes health"
        )
    else:
        # 31 Dec 2026 23:59:59 EST + 60 days = 1 Mar 2027 23:59:59 EST.
        assert annual.deadline == utc(2027, 3, 2, 4, 59, 59)
        assert "499 affected < 500" in annual.reason
        assert "after the end of the calendar year of discovered" in annual.deadline_rule


@pytest.mark.parametrize(("in_state", "media"), [(500, False), (501, True)])
def test_hipaa_media_when_more_than_500_residents_of_one_state(in_state: int, media: bool) -> None:
    result = hipaa(residents={"US-CA": 400, "US-TX": in_state})
    notice = pick(result, "media")
    assert notice.applies is media
    if media:
        assert f"{in_state} residents of US-TX (largest subdivision) > 500" in notice.reason
        assert notice.deadline == T + timedelta(days=60)
    else:
        assert "500 residents of US-TX (largest subdivision), not > 500" in notice.reason


def test_hipaa_needs_the_sector_flag_and_health_data() -> None:
    unflagged = run("us-hipaa", data_categories={"health"}, residents={"US-CA": 600})
    assert not any(o.applies for o in unflagged)
    assert pick(unflagged, "individuals").reason == "sector flag hipaa-covered not set"
    no_phi = hipaa(data_categories={"email"}, residents={"US-CA": 600})
    assert not any(o.applies for o in no_phi)
    assert pick(no_phi, "individuals").reason == "no data category among health"


def test_hipaa_secured_phi_and_low_probability_are_exempt() -> None:
    encrypted = hipaa(residents={"US-CA": 600}, encrypted_key_safe=True)
    assert not any(o.applies for o in encrypted)
    assert pick(encrypted, "individuals").reason.startswith(
        "exempt: data encrypted and key not compromised — 45 CFR 164.402"
    )
    low = hipaa(residents={"US-CA": 600}, risk="low")
    assert not any(o.applies for o in low)
    assert pick(low, "media").reason.startswith("exempt: risk assessed as low")


# --- California ----------------------------------------------------------------------------


@pytest.mark.parametrize(("residents", "ag"), [(500, False), (501, True)])
def test_california_ag_copy_above_500_residents(residents: int, ag: bool) -> None:
    result = run("us-ca", residents={"US-CA": residents})
    individuals = pick(result, "individuals")
    assert individuals.applies
    assert individuals.deadline == T + timedelta(days=30)
    assert individuals.timezone == "America/Los_Angeles"
    regulator = pick(result, "regulator")
    assert regulator.applies is ag
    if ag:
        assert regulator.reason.startswith(f"{residents} residents of US-CA > 500")
        # 15 days after the latest permissible individual notice.
        assert regulator.deadline == T + timedelta(days=45)
        assert regulator.deadline_rule.startswith("15 calendar days after the individuals notice")
    else:
        assert regulator.reason == "500 residents of US-CA, not > 500"


def test_the_documented_reason_format() -> None:
    result = run("us-ca", residents={"US": 700, "US-CA": 612, "US-TX": 88})
    assert pick(result, "regulator").reason.startswith("612 residents of US-CA > 500")


@pytest.mark.parametrize(("residents", "cra"), [(1000, False), (1001, True)])
def test_california_consumer_reporting_agencies_default(residents: int, cra: bool) -> None:
    result = run("us-ca", residents={"US-CA": residents})
    notice = pick(result, "consumer_reporting_agencies")
    assert notice.applies is cra
    assert "unverified default, operator may override" in notice.citation


def test_california_30_day_rule_starts_on_1_january_2026_local_time() -> None:
    # 07:00 UTC on 1 Jan 2026 is still 31 Dec 2025, 23:00, in Los Angeles.
    anchors = {"discovered": utc(2026, 1, 1, 7, 0)}
    old = run("us-ca", anchors=anchors, residents={"US-CA": 800})
    assert pick(old, "individuals", nth=0).applies
    assert pick(old, "individuals", nth=0).deadline is None
    assert pick(old, "individuals", nth=1).reason == (
        "not in force on 2025-12-31 (in force from 2026-01-01)"
    )
    # Without a fixed individual deadline, the AG copy has no instant to count from either.
    assert pick(old, "regulator").applies
    assert pick(old, "regulator").deadline is None
    anchors = {"discovered": utc(2026, 1, 1, 8, 0)}
    new = run("us-ca", anchors=anchors, residents={"US-CA": 800})
    assert not pick(new, "individuals", nth=0).applies
    assert pick(new, "individuals", nth=1).deadline == utc(2026, 1, 31, 8, 0)


def test_california_scope_residents_and_data() -> None:
    elsewhere = run("us-ca", residents={"US-TX": 900}, unknown_residence=3)
    assert not any(o.applies for o in elsewhere)
    assert pick(elsewhere, "regulator").reason == (
        "no residents of US-CA (3 of unknown residence: review)"
    )
    contact_only = run("us-ca", residents={"US-CA": 900}, data_categories={"email", "phone"})
    assert not any(o.applies for o in contact_only)


def test_california_encryption_safe_harbor_and_substitute_notice() -> None:
    encrypted = run("us-ca", residents={"US-CA": 900}, encrypted_key_safe=True)
    assert not any(o.applies for o in encrypted)
    assert "exempt: data encrypted and key not compromised" in pick(encrypted, "regulator").reason
    result = run("us-ca", residents={"US-CA": 900})
    substitute = pick(result, "individuals", nth=1).substitute_notice
    assert substitute is not None
    assert "> 500,000 people: not met (900 residents of US-CA, not > 500,000)" in substitute
    assert "notice cost > $250,000 (operator to judge)" in substitute


# --- Colorado, Florida, Washington, Texas, Maine, New York -----------------------------------


@pytest.mark.parametrize(
    ("regime", "state", "op", "threshold"),
    [
        ("us-co", "US-CO", ">=", 500),
        ("us-fl", "US-FL", ">=", 500),
        ("us-wa", "US-WA", ">", 500),
        ("us-tx", "US-TX", ">=", 250),
        ("us-me", "US-ME", ">=", 1),
        ("us-ny", "US-NY", ">=", 1),
    ],
)
def test_state_regulator_thresholds(regime: str, state: str, op: str, threshold: int) -> None:
    open_term = regime in ("us-me", "us-ny")  # the statute names no number of days
    at = threshold if op == ">=" else threshold + 1
    for residents, expected in [(at - 1, False), (at, True), (at + 1, True)]:
        result = run(regime, residents={state: residents} if residents else {"US-CA": 5})
        regulator = pick(result, "regulator")
        assert regulator.applies is expected, (regime, residents)
        if expected:
            word = "resident" if residents == 1 else "residents"
            assert regulator.reason.startswith(f"{residents:,} {word} of {state} {op}")
            assert (regulator.deadline is None) is open_term


@pytest.mark.parametrize(
    ("regime", "state", "threshold"),
    [("us-co", "US-CO", 1000), ("us-tx", "US-TX", 10000), ("us-ny", "US-NY", 5000)],
)
def test_state_consumer_reporting_agency_thresholds(
    regime: str, state: str, threshold: int
) -> None:
    assert not pick(
        run(regime, residents={state: threshold}), "consumer_reporting_agencies"
    ).applies
    notice = pick(run(regime, residents={state: threshold + 1}), "consumer_reporting_agencies")
    assert notice.applies
    assert notice.reason.startswith(f"{threshold + 1:,} residents of {state} > {threshold:,}")


@pytest.mark.parametrize(
    ("regime", "state", "anchor", "individual_days", "regulator_days"),
    [
        ("us-co", "US-CO", "determined", 30, 30),
        ("us-fl", "US-FL", "determined", 30, 30),
        ("us-wa", "US-WA", "discovered", 30, 30),
        ("us-tx", "US-TX", "determined", 60, 30),
        ("us-me", "US-ME", "aware", 30, None),  # 10 M.R.S. 1348(5): no time for the AG
    ],
)
def test_state_deadlines_and_anchors(
    regime: str, state: str, anchor: str, individual_days: int, regulator_days: int | None
) -> None:
    anchors = {name: T - timedelta(days=5) for name in ALL} | {anchor: T}
    result = run(regime, anchors=anchors, residents={state: 2000})
    assert pick(result, "individuals").deadline == T + timedelta(days=individual_days)
    regulator = pick(result, "regulator").deadline
    assert regulator == (T + timedelta(days=regulator_days) if regulator_days else None)
    assert pick(result, "individuals").deadline_rule.startswith(
        f"{individual_days} calendar days after {anchor}"
    )
    missing = run(regime, anchors=anchors | {anchor: None}, residents={state: 2000})
    assert pick(missing, "individuals").deadline is None
    assert f"anchor '{anchor}' not known yet" in pick(missing, "individuals").deadline_rule


def test_florida_good_cause_extension_is_stated() -> None:
    rule = pick(run("us-fl", residents={"US-FL": 10}), "individuals").deadline_rule
    assert rule == (
        "30 calendar days after determined"
        " — +15 days for good cause given in writing to the Department"
    )


@pytest.mark.parametrize(("residents", "met"), [(1000, "not met"), (1001, "met")])
def test_maine_substitute_notice_above_1000_people(residents: int, met: str) -> None:
    substitute = pick(run("us-me", residents={"US-ME": residents}), "individuals").substitute_notice
    assert substitute is not None
    assert f"> 1,000 people: {met} ({residents:,} residents of US-ME" in substitute


def test_new_york_30_day_rule_since_21_december_2024_local_time() -> None:
    # 04:59 UTC on 21 Dec 2024 is 23:59 on 20 Dec in New York.
    old = run("us-ny", anchors={"discovered": utc(2024, 12, 21, 4, 59)}, residents={"US-NY": 5})
    assert pick(old, "individuals", nth=0).applies
    assert not pick(old, "individuals", nth=1).applies
    assert pick(old, "individuals", nth=1).reason == (
        "not in force on 2024-12-20 (in force from 2024-12-21)"
    )
    new = run("us-ny", anchors={"discovered": utc(2024, 12, 21, 5, 0)}, residents={"US-NY": 5})
    assert not pick(new, "individuals", nth=0).applies
    assert pick(new, "individuals", nth=0).reason.startswith("no longer in force on 2024-12-21")
    assert pick(new, "individuals", nth=1).deadline == utc(2025, 1, 20, 5, 0)


# --- NYDFS and SEC ---------------------------------------------------------------------------


def test_nydfs_72_hours_after_determination_for_regulated_entities() -> None:
    org = OrganisationProfile(sectors={"nydfs-regulated"})
    result = run("us-nydfs", org, residents={"CN": 1})
    regulator = pick(result, "regulator")
    assert regulator.applies
    assert regulator.deadline == T + timedelta(hours=72)
    # The reportability threshold is a U default and says so.
    assert "[U] — unverified default" in regulator.reason
    assert not pick(run("us-nydfs", residents={"US-NY": 1}), "regulator").applies


SEC = OrganisationProfile(sectors={"sec-registrant"})


@pytest.mark.parametrize(
    ("determined", "due"),
    [
        # Thu 19 Nov 21:00 EST: Fri 20, Mon 23, Tue 24, Wed 25 → 23:59:59 EST on the 25th.
        (utc(2026, 11, 20, 2, 0), utc(2026, 11, 26, 4, 59, 59)),
        # Fri 20 Nov 01:00 EST: Mon 23, Tue 24, Wed 25, (Thanksgiving), Fri 27.
        (utc(2026, 11, 20, 6, 0), utc(2026, 11, 28, 4, 59, 59)),
        # Tue 22 Dec: Wed 23, Thu 24, (Christmas), Mon 28, Tue 29.
        (utc(2026, 12, 22, 15, 0), utc(2026, 12, 30, 4, 59, 59)),
        # Fri 3 Jul (Independence Day observed) → Mon 6, Tue 7, Wed 8, Thu 9 (EDT, UTC-4).
        (utc(2026, 7, 2, 23, 0), utc(2026, 7, 10, 3, 59, 59)),
    ],
)
def test_sec_8k_four_business_days_after_materiality(determined: datetime, due: datetime) -> None:
    result = run("us-sec-8k", SEC, anchors={"determined": determined}, material=True)
    filing = pick(result, "regulator")
    assert filing.applies
    assert filing.deadline == due
    assert filing.deadline_rule.startswith(
        "4 business days after determined (America/New_York, US holidays)"
    )


def test_sec_8k_only_when_material_and_registered() -> None:
    undetermined = pick(run("us-sec-8k", SEC), "regulator")
    assert undetermined.applies
    assert "materiality not yet determined: treated as material" in undetermined.reason
    assert not pick(run("us-sec-8k", SEC, material=False), "regulator").applies
    assert pick(run("us-sec-8k", material=True), "regulator").reason == (
        "sector flag sec-registrant not set"
    )
