"""Asia-Pacific regimes: Korea, Thailand, Vietnam, Indonesia, Malaysia, Philippines, Taiwan, NZ.

Thresholds at and either side of each value, every fixed clock to the instant. Dates are
counted by hand in the comments: T = Friday 2026-11-20 07:00 UTC, which is 16:00 in Seoul,
14:00 in Bangkok, Ho Chi Minh City and Jakarta, 15:00 in Kuala Lumpur, Manila and Taipei,
and 20:00 in Auckland (NZDT, UTC+13). Hour clocks are elapsed time, so 72 hours after T is
Monday 2026-11-23 07:00 UTC in every zone (16:00 KST, 14:00 ICT/WIB, 15:00 MYT/PHT).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from breachflow.rules import IncidentFacts, Obligation, OrganisationProfile, evaluate
from breachflow.rules.loader import load_regime
from breachflow.rules.schema import Regime
from breachflow.rules.vocab import RULES_DIR

IDS = ["kr-pipa", "th-pdpa", "vn-pdpd", "id-pdp", "my-pdpa", "ph-dpa", "tw-pdpa", "nz-privacy"]
RULES: dict[str, Regime] = {i: load_regime(RULES_DIR / f"{i}.yaml") for i in IDS}
HOME = {i: i[:2].upper() for i in IDS}
T = datetime(2026, 11, 20, 7, 0, tzinfo=UTC)
ALL = dict.fromkeys(["detected", "aware", "determined", "assessed", "discovered"], T)
H72 = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)


def run(regime: str, org: OrganisationProfile | None = None, **facts: object) -> list[Obligation]:
    base: dict[str, object] = {"anchors": ALL, "risk": "high", "data_categories": {"email"}}
    incident = IncidentFacts.model_validate(base | facts)
    return evaluate(incident, [RULES[regime]], org or OrganisationProfile())


def pick(obligations: list[Obligation], audience: str, phase: str = "initial") -> Obligation:
    found = [o for o in obligations if (o.audience, o.phase) == (audience, phase)]
    assert len(found) == 1, found
    return found[0]


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# --- every regime --------------------------------------------------------------------------


@pytest.mark.parametrize("regime", IDS)
def test_out_of_scope_for_non_residents(regime: str) -> None:
    result = run(regime, residents={"US-CA": 50})
    assert result
    assert not any(o.applies for o in result)
    code = HOME[regime]
    why = f"no residents of {code} and not established there"
    assert all(o.reason.startswith(why) for o in result)


@pytest.mark.parametrize("regime", IDS)
def test_in_scope_for_an_organisation_established_there(regime: str) -> None:
    org = OrganisationProfile(home_jurisdictions=[HOME[regime]])
    result = run(regime, org, residents={"US-CA": 5000}, data_categories={"health"})
    assert any(o.applies for o in result)
    assert all(f"established in {HOME[regime]}" in o.reason for o in result if o.applies)


@pytest.mark.parametrize("regime", IDS)
def test_no_encryption_safe_harbour_was_found(regime: str) -> None:
    plain = run(regime, residents={HOME[regime]: 5000}, data_categories={"health"})
    encrypted = run(
        regime, residents={HOME[regime]: 5000}, data_categories={"health"}, encrypted_key_safe=True
    )
    assert [o.applies for o in encrypted] == [o.applies for o in plain]
    assert not any("encrypted" in o.reason for o in encrypted)


# --- South Korea -----------------------------------------------------------------------------


@pytest.mark.parametrize(("total", "report"), [(999, False), (1000, True), (1001, True)])
def test_korea_reports_from_1000_data_subjects(total: int, report: bool) -> None:
    result = run("kr-pipa", residents={"KR": total})
    regulator = pick(result, "regulator")
    assert regulator.applies is report
    if report:
        # 16:00 KST Fri 20 Nov + 72 h = 16:00 KST Mon 23 Nov = 07:00 UTC.
        assert regulator.deadline == H72
        assert regulator.timezone == "Asia/Seoul"
        assert regulator.reason.startswith(f"{total:,} affected >= 1,000 (1,000 or more")
        assert regulator.contact is not None
        assert regulator.contact.url == "https://www.privacy.go.kr"
    else:
        assert regulator.deadline is None
        assert regulator.reason.startswith("none of: 999 affected, not >= 1,000")
    individuals = pick(result, "individuals")
    assert individuals.applies and individuals.deadline == H72
    assert individuals.deadline_rule.startswith("72 hours after aware")


def test_korea_counts_every_data_subject_not_only_residents() -> None:
    result = run("kr-pipa", residents={"KR": 600, "JP": 400})
    assert pick(result, "regulator").reason.startswith("1,000 affected >= 1,000")


@pytest.mark.parametrize(
    ("facts", "why"),
    [
        ({"data_categories": {"national_id"}}, "data includes national_id"),
        ({"data_categories": {"sensitive"}}, "data includes sensitive"),
        ({"improper_purpose": True}, "improper purpose suspected"),
    ],
)
def test_korea_reports_sensitive_unique_id_or_hacking_below_1000(
    facts: dict[str, object], why: str
) -> None:
    regulator = pick(run("kr-pipa", None, residents={"KR": 3}, **facts), "regulator")
    assert regulator.applies and regulator.deadline == H72
    assert regulator.reason.startswith(why)


def test_korea_retrieved_data_waives_the_report_never_the_notice() -> None:
    result = run("kr-pipa", residents={"KR": 5000}, risk="low")
    assert not pick(result, "regulator").applies
    assert pick(result, "regulator").reason.startswith("exempt: risk assessed as low")
    assert pick(result, "individuals").applies


def test_korea_not_in_force_before_15_september_2023() -> None:
    # 14:59 UTC on 14 Sep 2023 is 23:59 KST, still 14 Sep in Seoul.
    early = {"aware": utc(2023, 9, 14, 14, 59)}
    result = run("kr-pipa", anchors=early, residents={"KR": 5000})
    assert pick(result, "individuals").reason == (
        "not in force on 2023-09-14 (in force from 2023-09-15)"
    )
    on_time = run("kr-pipa", anchors={"aware": utc(2023, 9, 14, 15, 0)}, residents={"KR": 5000})
    assert pick(on_time, "individuals").applies


# --- Thailand -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("risk", "regulator", "individuals"),
    [("low", False, False), ("medium", True, False), ("high", True, True)],
)
def test_thailand_pdpc_72_hours_unless_no_risk_people_when_high_risk(
    risk: str, regulator: bool, individuals: bool
) -> None:
    result = run("th-pdpa", residents={"TH": 10}, risk=risk)
    office, people = pick(result, "regulator"), pick(result, "individuals")
    assert office.applies is regulator
    assert people.applies is individuals
    if regulator:
        # 14:00 ICT Fri 20 Nov + 72 h = 14:00 ICT Mon 23 Nov = 07:00 UTC.
        assert office.deadline == H72
        assert office.timezone == "Asia/Bangkok"
        assert office.contact is not None
    else:
        assert office.reason.startswith("exempt: risk assessed as low")
    if individuals:
        assert people.deadline is None
        assert people.deadline_rule == "without delay, from aware: no fixed deadline"


# --- Vietnam --------------------------------------------------------------------------------


def test_vietnam_decree_13_until_31_december_2025_then_the_2025_law() -> None:
    # 16:59 UTC on 31 Dec 2025 is 23:59 ICT: Decree 13; 17:00 UTC is 00:00 ICT on 1 Jan 2026.
    old_at, new_at = utc(2025, 12, 31, 16, 59), utc(2025, 12, 31, 17, 0)
    old = run("vn-pdpd", anchors={"detected": old_at}, residents={"VN": 10})
    assert [o.audience for o in old] == ["regulator"]
    decree = pick(old, "regulator")
    assert decree.applies and decree.deadline == old_at + timedelta(hours=72)
    assert "version in force" not in decree.reason
    assert (
        decree.title
        == "notification of violation of personal data protection regulations (Form 03)"
    )
    new = run("vn-pdpd", anchors={"detected": new_at}, residents={"VN": 10})
    law = pick(new, "regulator")
    # 00:00 ICT Thu 1 Jan 2026 + 72 h = 00:00 ICT Sun 4 Jan = 17:00 UTC Sat 3 Jan.
    assert law.deadline == utc(2026, 1, 3, 17, 0)
    assert law.reason.endswith("version in force from 2026-01-01")
    people = pick(new, "individuals")
    assert people.applies and people.deadline is None
    assert people.deadline_rule.startswith("no fixed deadline found, from detected")
    assert "unverified default, operator may override" in people.citation


def test_vietnam_clock_runs_from_detection_not_awareness() -> None:
    anchors = {"detected": T, "aware": T + timedelta(hours=30)}
    result = run("vn-pdpd", anchors=anchors, residents={"VN": 1})
    assert pick(result, "regulator").deadline == H72
    assert pick(result, "regulator").timezone == "Asia/Ho_Chi_Minh"


def test_vietnam_not_in_force_before_1_july_2023() -> None:
    result = run("vn-pdpd", anchors={"detected": utc(2023, 6, 30, 16, 59)}, residents={"VN": 1})
    assert pick(result, "regulator").reason == (
        "not in force on 2023-06-30 (in force from 2023-07-01)"
    )


# --- Indonesia ------------------------------------------------------------------------------


@pytest.mark.parametrize("risk", ["low", "medium", "high"])
def test_indonesia_3_x_24_hours_to_people_and_agency_whatever_the_risk(risk: str) -> None:
    result = run("id-pdp", residents={"ID": 1}, risk=risk)
    for audience in ("regulator", "individuals"):
        notice = pick(result, audience)
        # 14:00 WIB Fri 20 Nov + 72 h = 14:00 WIB Mon 23 Nov = 07:00 UTC.
        assert notice.applies and notice.deadline == H72
        assert notice.timezone == "Asia/Jakarta"
    assert pick(result, "regulator").recipient == "Personal Data Protection Agency (Lembaga PDP)"
    public = pick(result, "media")
    assert public.applies is (risk == "high")
    if public.applies:
        assert public.deadline is None
        assert public.deadline_rule.startswith("no fixed deadline found, from aware")


def test_indonesia_not_enforceable_before_17_october_2024() -> None:
    # 16:59 UTC on 16 Oct 2024 is 23:59 WIB.
    result = run("id-pdp", anchors={"aware": utc(2024, 10, 16, 16, 59)}, residents={"ID": 9})
    assert pick(result, "individuals").reason == (
        "not in force on 2024-10-16 (in force from 2024-10-17)"
    )


# --- Malaysia --------------------------------------------------------------------------------


@pytest.mark.parametrize(("total", "report"), [(1000, False), (1001, True)])
def test_malaysia_significant_scale_above_1000_reports_to_the_commissioner_only(
    total: int, report: bool
) -> None:
    result = run("my-pdpa", residents={"MY": total}, risk="medium")
    commissioner = pick(result, "regulator")
    assert commissioner.applies is report
    assert pick(result, "regulator", "supplementary").applies is report
    assert not pick(result, "individuals").applies
    if report:
        # 15:00 MYT Fri 20 Nov + 72 h = 15:00 MYT Mon 23 Nov = 07:00 UTC.
        assert commissioner.deadline == H72
        assert commissioner.reason.startswith(f"{total:,} affected > 1,000 (significant scale)")
        # Further information: 20 Nov + 30 days = Sun 20 Dec 2026, 07:00 UTC.
        assert pick(result, "regulator", "supplementary").deadline == utc(2026, 12, 20, 7, 0)
    else:
        assert "1,000 affected, not > 1,000 (significant scale)" in commissioner.reason


def test_malaysia_significant_harm_reaches_commissioner_and_data_subjects() -> None:
    result = run("my-pdpa", residents={"MY": 3})
    assert pick(result, "regulator").deadline == H72
    people = pick(result, "individuals")
    assert people.applies
    # 7 days after the Commissioner's latest permissible notice: Mon 30 Nov 2026, 07:00 UTC.
    assert people.deadline == utc(2026, 11, 30, 7, 0)
    assert people.deadline_rule.startswith("without unnecessary delay, from detected")
    assert "the earliest applies: 7 calendar days after the regulator notice" in (
        people.deadline_rule
    )
    assert "unverified default" in people.citation


def test_malaysia_clock_starts_on_detection_and_law_from_1_june_2025() -> None:
    anchors = {"detected": T, "aware": T + timedelta(hours=20)}
    assert pick(run("my-pdpa", anchors=anchors, residents={"MY": 3}), "regulator").deadline == H72
    # 15:59 UTC on 31 May 2025 is 23:59 MYT; 16:00 UTC is 00:00 MYT on 1 June.
    before = run("my-pdpa", anchors={"detected": utc(2025, 5, 31, 15, 59)}, residents={"MY": 3})
    assert pick(before, "regulator").reason == (
        "not in force on 2025-05-31 (in force from 2025-06-01)"
    )
    after = run("my-pdpa", anchors={"detected": utc(2025, 5, 31, 16, 0)}, residents={"MY": 3})
    assert pick(after, "regulator").applies


# --- Philippines --------------------------------------------------------------------------


def test_philippines_72_hours_to_npc_and_people_then_full_report_in_5_days() -> None:
    result = run("ph-dpa", residents={"PH": 1}, data_categories={"financial"})
    npc, people = pick(result, "regulator"), pick(result, "individuals")
    # 15:00 PHT Fri 20 Nov + 72 h = 15:00 PHT Mon 23 Nov = 07:00 UTC.
    assert npc.applies and npc.deadline == H72 and people.deadline == H72
    assert npc.timezone == "Asia/Manila"
    # 20 Nov + 5 days = Wed 25 Nov 2026, 07:00 UTC.
    assert pick(result, "regulator", "supplementary").deadline == utc(2026, 11, 25, 7, 0)
    assert npc.contact is not None
    assert npc.contact.email == "admindbnms@privacy.gov.ph"
    assert npc.contact.url == "https://dbnms.privacy.gov.ph"


@pytest.mark.parametrize(
    ("categories", "risk", "why"),
    [
        ({"email", "name"}, "high", "no data category among sensitive, health"),
        ({"credentials"}, "medium", "risk medium, below high"),
    ],
)
def test_philippines_needs_sensitive_or_fraud_data_and_real_risk_of_serious_harm(
    categories: set[str], risk: str, why: str
) -> None:
    result = run("ph-dpa", residents={"PH": 900}, data_categories=categories, risk=risk)
    assert not any(o.applies for o in result)
    assert pick(result, "regulator").reason.startswith(why)


# --- Taiwan --------------------------------------------------------------------------------


def test_taiwan_notifies_people_after_investigation_with_no_regulator_report() -> None:
    result = run("tw-pdpa", residents={"TW": 1}, risk="low")
    assert [o.audience for o in result] == ["individuals"]
    people = result[0]
    assert people.applies and people.deadline is None
    assert people.deadline_rule == (
        "after ascertaining the facts, promptly and by appropriate means,"
        " from discovered: no fixed deadline"
    )
    assert people.timezone == "Asia/Taipei"
    assert "[✓]" in people.citation
    assert people.substitute_notice is not None
    assert "cost too much" in people.substitute_notice


def test_taiwan_2025_amendment_is_listed_but_never_applied() -> None:
    version = RULES["tw-pdpa"].versions[0]
    assert version.status == "proposed"
    assert {s.audience for s in version.obligations} == {"individuals", "regulator"}
    later = run("tw-pdpa", anchors={"aware": utc(2027, 6, 1)}, residents={"TW": 5000})
    assert [o.audience for o in later] == ["individuals"]
    assert "version in force" not in later[0].reason


# --- New Zealand ---------------------------------------------------------------------------


@pytest.mark.parametrize(("risk", "notifiable"), [("medium", False), ("high", True)])
def test_new_zealand_serious_harm_as_soon_as_practicable(risk: str, notifiable: bool) -> None:
    result = run("nz-privacy", residents={"NZ": 2}, risk=risk)
    for audience in ("regulator", "individuals"):
        notice = pick(result, audience)
        assert notice.applies is notifiable
        assert notice.deadline is None
        assert notice.deadline_rule.startswith("as soon as practicable, from aware")
    commissioner = pick(result, "regulator")
    assert "72 hours" in commissioner.deadline_rule  # guidance only, no fixed instant
    assert commissioner.timezone == "Pacific/Auckland"
    assert commissioner.contact is not None
    assert commissioner.contact.url == "https://www.privacy.org.nz/tools"


def test_new_zealand_not_in_force_before_1_december_2020() -> None:
    # 10:59 UTC on 30 Nov 2020 is 23:59 NZDT.
    result = run("nz-privacy", anchors={"aware": utc(2020, 11, 30, 10, 59)}, residents={"NZ": 2})
    assert pick(result, "regulator").reason == (
        "not in force on 2020-11-30 (in force from 2020-12-01)"
    )
