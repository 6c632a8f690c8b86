"""US regimes, batch D: SD, TN, UT, VT, VA, WV, WI, WY and the territories PR, GU, VI.

Every count threshold at and either side of its value, every fixed clock to the instant, open
terms without an instant, the encryption (and risk) exemptions, and scope. Dates are counted by
hand in the comments; 2026-11-20 is a Friday, and T (07:00 UTC) is 01:00 in Chicago, 02:00 in
New York, 00:00 in Denver and 03:00 in San Juan. Calendar days are elapsed time (N x 24 h).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from breachflow.rules import IncidentFacts, Obligation, OrganisationProfile, evaluate
from breachflow.rules.loader import load_regime
from breachflow.rules.vocab import RULES_DIR

IDS = ["sd", "tn", "ut", "vt", "va", "wv", "wi", "wy", "pr", "gu", "vi"]
RULES = {f"us-{i}": load_regime(RULES_DIR / f"us-{i}.yaml") for i in IDS}
T = datetime(2026, 11, 20, 7, 0, tzinfo=UTC)
ALL = dict.fromkeys(["detected", "aware", "determined", "assessed", "discovered"], T)
PLACE = {regime: f"US-{regime[3:].upper()}" for regime in RULES}


def run(regime: str, **facts: object) -> list[Obligation]:
    base: dict[str, object] = {"anchors": ALL, "risk": "high", "data_categories": {"national_id"}}
    incident = IncidentFacts.model_validate(base | facts)
    return evaluate(incident, [RULES[regime]], OrganisationProfile())


def residents(regime: str, count: int) -> list[Obligation]:
    return run(regime, residents={PLACE[regime]: count})


def pick(obligations: list[Obligation], audience: str, phase: str = "initial") -> Obligation:
    found = [o for o in obligations if (o.audience, o.phase) == (audience, phase)]
    assert len(found) == 1, (audience, phase, found)
    return found[0]


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


# --- scope -----------------------------------------------------------------------------------


@pytest.mark.parametrize("regime", sorted(RULES))
def test_in_scope_for_residents_only(regime: str) -> None:
    assert pick(residents(regime, 10), "individuals").applies
    elsewhere = run(regime, residents={"US-CA": 900})
    assert not any(o.applies for o in elsewhere)
    assert pick(elsewhere, "individuals").reason.startswith(f"no residents of {PLACE[regime]}")


@pytest.mark.parametrize("regime", sorted(RULES))
def test_contact_data_alone_is_out_of_scope(regime: str) -> None:
    result = run(regime, residents={PLACE[regime]: 10}, data_categories={"email", "phone"})
    assert not any(o.applies for o in result)
    assert pick(result, "individuals").reason.startswith("no data category among")


@pytest.mark.parametrize(
    ("regime", "codes"),
    [("us-pr", ["US-PR", "PR"]), ("us-gu", ["US-GU", "GU"]), ("us-vi", ["US-VI", "VI"])],
)
def test_territories_accept_both_code_forms(regime: str, codes: list[str]) -> None:
    for code in codes:
        individuals = pick(run(regime, residents={code: 3}), "individuals")
        assert individuals.applies, code
        assert f"3 residents of {code}" in individuals.reason


# --- exemptions ------------------------------------------------------------------------------


@pytest.mark.parametrize("regime", sorted(RULES))
def test_encryption_with_the_key_safe_exempts_every_notice(regime: str) -> None:
    result = run(regime, residents={PLACE[regime]: 5000}, encrypted_key_safe=True)
    assert not any(o.applies for o in result)
    for obligation in result:
        assert obligation.reason.startswith("exempt: data encrypted and key not compromised")
        assert obligation.deadline is None


@pytest.mark.parametrize(
    ("regime", "still_due"),
    [
        # South Dakota: the no-harm finding needs notice to the AG first (22-40-20).
        ("us-sd", {("regulator", "initial"), ("consumer_reporting_agencies", "initial")}),
        # Vermont: the "misuse not reasonably possible" finding goes to the AG / Department.
        ("us-vt", {("regulator", "initial"), ("regulator", "supplementary")}),
        ("us-ut", set()),
        ("us-va", set()),
        ("us-wv", set()),
        ("us-wi", set()),
        ("us-wy", set()),
        ("us-gu", set()),
    ],
)
def test_low_risk_exemption(regime: str, still_due: set[tuple[str, str]]) -> None:
    result = run(regime, residents={PLACE[regime]: 5000}, risk="low")
    due = {(o.audience, o.phase) for o in result if o.applies}
    assert due == still_due
    assert pick(result, "individuals").reason.startswith("exempt: risk assessed as low")


@pytest.mark.parametrize("regime", ["us-tn", "us-pr", "us-vi"])
def test_no_risk_of_harm_exception(regime: str) -> None:
    result = run(regime, residents={PLACE[regime]: 5000}, risk="low")
    assert pick(result, "individuals").applies


# --- regulator and consumer-reporting-agency thresholds --------------------------------------


@pytest.mark.parametrize(
    ("regime", "audience", "op", "threshold"),
    [
        ("us-sd", "regulator", ">", 250),
        ("us-ut", "regulator", ">=", 500),
        ("us-tn", "consumer_reporting_agencies", ">", 1000),
        ("us-ut", "consumer_reporting_agencies", ">=", 1000),
        ("us-vt", "consumer_reporting_agencies", ">", 1000),
        ("us-va", "consumer_reporting_agencies", ">", 1000),
        ("us-wv", "consumer_reporting_agencies", ">", 1000),
        ("us-wi", "consumer_reporting_agencies", ">=", 1000),
    ],
)
def test_count_thresholds_on_both_sides(
    regime: str, audience: str, op: str, threshold: int
) -> None:
    state = PLACE[regime]
    first = threshold if op == ">=" else threshold + 1
    for count, expected in [(first - 1, False), (first, True), (first + 1, True)]:
        notice = pick(residents(regime, count), audience)
        assert notice.applies is expected, (regime, audience, count)
        if expected:
            assert notice.reason.startswith(f"{count:,} residents of {state} {op} {threshold:,}")
        else:
            assert notice.reason.startswith(f"{count:,} residents of {state}, not {op}")


@pytest.mark.parametrize(
    ("regime", "audience"),
    [
        # Sources disagree on a > 1,000 threshold; the stricter reading has none.
        ("us-sd", "consumer_reporting_agencies"),
        # Vermont and Virginia: the AG hears of every breach, whatever its size.
        ("us-vt", "regulator"),
        ("us-va", "regulator"),
        ("us-pr", "regulator"),
    ],
)
def test_notices_without_a_head_count_apply_from_one_resident(regime: str, audience: str) -> None:
    assert pick(residents(regime, 1), audience).applies


@pytest.mark.parametrize(
    ("regime", "audiences"),
    [
        ("us-tn", {"individuals", "consumer_reporting_agencies"}),
        ("us-wv", {"individuals", "consumer_reporting_agencies"}),
        ("us-wi", {"individuals", "consumer_reporting_agencies"}),
        ("us-wy", {"individuals"}),
        ("us-pr", {"individuals", "regulator"}),
        ("us-gu", {"individuals"}),
        ("us-vi", {"individuals"}),
    ],
)
def test_no_regulator_or_cra_notice_where_the_law_has_none(
    regime: str, audiences: set[str]
) -> None:
    assert {o.audience for o in residents(regime, 600_000)} == audiences


# --- fixed clocks ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("regime", "audience", "anchor", "days"),
    [
        # T + 60 d = Tue 19 Jan 2027, 07:00 UTC (01:00 CST).
        ("us-sd", "individuals", "discovered", 60),
        ("us-sd", "regulator", "discovered", 60),
        # T + 45 d = Mon 4 Jan 2027, 07:00 UTC.
        ("us-tn", "individuals", "discovered", 45),
        ("us-vt", "individuals", "discovered", 45),
        ("us-wi", "individuals", "discovered", 45),
        # Puerto Rico: 10 days after detection = Mon 30 Nov 2026, 07:00 UTC (03:00 AST).
        ("us-pr", "regulator", "detected", 10),
    ],
)
def test_calendar_day_deadlines(regime: str, audience: str, anchor: str, days: int) -> None:
    anchors = {name: T - timedelta(days=3) for name in ALL} | {anchor: T}
    notice = pick(run(regime, anchors=anchors, residents={PLACE[regime]: 2000}), audience)
    assert notice.applies
    assert notice.deadline == T + timedelta(days=days)
    assert notice.deadline_rule.startswith(f"{days} calendar days after {anchor}")
    missing = run(regime, anchors=anchors | {anchor: None}, residents={PLACE[regime]: 2000})
    assert pick(missing, audience).deadline is None
    assert f"anchor '{anchor}' not known yet" in pick(missing, audience).deadline_rule


def test_hand_counted_calendar_instants() -> None:
    assert T + timedelta(days=60) == utc(2027, 1, 19, 7, 0)
    assert T + timedelta(days=45) == utc(2027, 1, 4, 7, 0)
    assert T + timedelta(days=10) == utc(2026, 11, 30, 7, 0)


@pytest.mark.parametrize(
    ("discovered", "due"),
    [
        # Fri 20 Nov 02:00 EST. Mon 23 (1), Tue 24, Wed 25, (Thanksgiving 26), Fri 27 (4),
        # Mon 30, Tue 1 Dec, Wed 2, Thu 3, Fri 4 (9), Mon 7, Tue 8, Wed 9, Thu 10, Fri 11 (14)
        # -> 23:59:59 EST on Fri 11 Dec = 04:59:59 UTC on 12 Dec.
        (T, utc(2026, 12, 12, 4, 59, 59)),
        # Mon 22 Feb 2027 10:00 EST. Tue 23 (1) .. Fri 26 (4), Mon 1 Mar (5), (Town Meeting Day
        # Tue 2 Mar, a Vermont holiday), Wed 3 (6) .. Fri 5 (8), Mon 8 (9) .. Fri 12 (13),
        # Mon 15 (14) -> 23:59:59 EDT (DST from Sun 14 Mar) = 03:59:59 UTC on 16 Mar.
        (utc(2027, 2, 22, 15, 0), utc(2027, 3, 16, 3, 59, 59)),
    ],
)
def test_vermont_preliminary_notice_14_business_days(discovered: datetime, due: datetime) -> None:
    result = run("us-vt", anchors={"discovered": discovered}, residents={"US-VT": 3})
    preliminary = pick(result, "regulator")
    assert preliminary.applies
    assert preliminary.deadline == due
    assert preliminary.deadline_rule.startswith(
        "14 business days after discovered (America/New_York, US-VT holidays)"
    )
    supplementary = pick(result, "regulator", "supplementary")
    assert supplementary.applies
    assert supplementary.deadline is None
    assert supplementary.deadline_rule.startswith("when notice is provided to consumers")


def test_deadlines_use_the_regime_time_zone() -> None:
    zones = {regime: pick(residents(regime, 5), "individuals").timezone for regime in RULES}
    assert zones == {
        "us-sd": "America/Chicago",
        "us-tn": "America/Chicago",
        "us-ut": "America/Denver",
        "us-vt": "America/New_York",
        "us-va": "America/New_York",
        "us-wv": "America/New_York",
        "us-wi": "America/Chicago",
        "us-wy": "America/Denver",
        "us-pr": "America/Puerto_Rico",
        "us-gu": "Pacific/Guam",
        "us-vi": "America/St_Thomas",
    }


# --- open terms ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("regime", "audience", "term"),
    [
        ("us-sd", "consumer_reporting_agencies", "without unreasonable delay"),
        ("us-tn", "consumer_reporting_agencies", "without unreasonable delay"),
        ("us-ut", "individuals", "in the most expedient time possible without unreasonable delay"),
        ("us-ut", "regulator", "no fixed deadline found"),
        ("us-ut", "consumer_reporting_agencies", "no fixed deadline found"),
        ("us-vt", "consumer_reporting_agencies", "without unreasonable delay"),
        ("us-va", "individuals", "without unreasonable delay"),
        ("us-va", "regulator", "without unreasonable delay"),
        ("us-va", "consumer_reporting_agencies", "without unreasonable delay"),
        ("us-wv", "individuals", "without unreasonable delay"),
        ("us-wv", "consumer_reporting_agencies", "without unreasonable delay"),
        ("us-wi", "consumer_reporting_agencies", "without unreasonable delay"),
        ("us-wy", "individuals", "in the most expedient time possible and without unreasonable"),
        ("us-pr", "individuals", "as expeditiously as possible"),
        ("us-gu", "individuals", "without unreasonable delay"),
        ("us-vi", "individuals", "in the most expedient time possible and without unreasonable"),
    ],
)
def test_open_terms_have_no_instant(regime: str, audience: str, term: str) -> None:
    notice = pick(residents(regime, 5000), audience)
    assert notice.applies
    assert notice.deadline is None
    assert notice.deadline_rule.startswith(term)
    assert "no fixed deadline" in notice.deadline_rule


# --- in force --------------------------------------------------------------------------------


def test_utah_attorney_general_and_cra_duties_start_3_may_2023_local_time() -> None:
    # 05:59 UTC on 3 May 2023 is 23:59 MDT on 2 May in Salt Lake City.
    old = run("us-ut", anchors={"discovered": utc(2023, 5, 3, 5, 59)}, residents={"US-UT": 5000})
    assert pick(old, "individuals").applies
    for audience in ("regulator", "consumer_reporting_agencies"):
        assert pick(old, audience).reason == "not in force on 2023-05-02 (in force from 2023-05-03)"
    new = run("us-ut", anchors={"discovered": utc(2023, 5, 3, 6, 0)}, residents={"US-UT": 5000})
    assert pick(new, "regulator").applies
    assert pick(new, "consumer_reporting_agencies").applies


@pytest.mark.parametrize(
    ("regime", "start"),
    [("us-sd", "2018-07-01"), ("us-va", "2008-07-01"), ("us-gu", "2009-08-10")],
)
def test_not_in_force_before_enactment(regime: str, start: str) -> None:
    before = run(regime, anchors={"discovered": utc(2000, 6, 1, 12)}, residents={PLACE[regime]: 9})
    assert (
        pick(before, "individuals").reason == f"not in force on 2000-06-01 (in force from {start})"
    )


# --- substitute notice -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("regime", "people"),
    [("us-sd", 500_000), ("us-tn", 500_000), ("us-pr", 100_000), ("us-va", 100_000)],
)
def test_substitute_notice_people_threshold(regime: str, people: int) -> None:
    state = PLACE[regime]
    for count, met in [(people, "not met"), (people + 1, "met")]:
        text = pick(residents(regime, count), "individuals").substitute_notice
        assert text is not None
        assert f"> {people:,} people: {met} ({count:,} residents of {state}" in text


def test_puerto_rico_substitute_notice_is_the_statutory_two_step() -> None:
    text = pick(residents("us-pr", 10), "individuals").substitute_notice
    assert text is not None
    assert text.startswith("prominent announcement at the premises")
    assert "notice cost > $100,000 (operator to judge)" in text
    assert "10 L.P.R.A. 4053(2)" in text


def test_unverified_substitute_thresholds_say_so() -> None:
    for regime in ("us-tn", "us-vt", "us-va", "us-wv", "us-wy", "us-gu", "us-vi"):
        text = pick(residents(regime, 10), "individuals").substitute_notice
        assert text is not None
        assert "[U] — unverified default, operator may override" in text, regime


def test_every_regime_cites_a_source_with_an_access_date() -> None:
    for regime in RULES.values():
        for spec in regime.obligations:
            assert "2026-12-06" in spec.citation.text or spec.citation.confidence == "U", (
                regime.id,
                spec.audience,
            )
