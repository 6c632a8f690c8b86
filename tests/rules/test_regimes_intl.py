"""China, EU/UK, Asia-Pacific, Canada, Brazil and India, at and either side of each threshold.

Dates are counted by hand in the comments; 2026-11-20 is a Friday (and a holiday in Brazil).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from breachflow.rules import IncidentFacts, Obligation, OrganisationProfile, evaluate, load_rules

RULES = {r.id: r for r in load_rules()}
T = datetime(2026, 11, 20, 7, 0, tzinfo=UTC)
ALL = dict.fromkeys(["detected", "aware", "determined", "assessed", "discovered"], T)


def run(regime: str, org: OrganisationProfile | None = None, **facts: object) -> list[Obligation]:
    base: dict[str, object] = {"anchors": ALL, "risk": "high", "data_categories": {"email"}}
    incident = IncidentFacts.model_validate(base | facts)
    return evaluate(incident, [RULES[regime]], org or OrganisationProfile())


#: GDPR's path for a controller without an EU establishment (one report per member state):
#: these tests are about the lead-authority path; ``tests/rules/test_engine_clocks.py`` and
#: ``test_gdpr_without_an_eu_establishment_*`` below cover the other.
EACH_MEMBER_STATE = "the supervisory authority of each member state with affected residents"


def pick(obligations: list[Obligation], audience: str, phase: str = "initial") -> Obligation:
    found = [
        o
        for o in obligations
        if (o.audience, o.phase) == (audience, phase) and o.recipient != EACH_MEMBER_STATE
    ]
    assert len(found) == 1, found
    return found[0]


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


# --- China -----------------------------------------------------------------------------------

CN_HOME = OrganisationProfile(home_jurisdictions=["CN"])


def test_pipl_applies_to_any_resident_of_china_without_threshold() -> None:
    result = run("cn-pipl", residents={"CN": 1})
    regulator = pick(result, "regulator")
    assert regulator.applies and regulator.deadline is None
    assert regulator.deadline_rule.startswith("immediately, from aware: no fixed deadline")
    assert regulator.reason.startswith("1 resident of CN (scope [U]")
    assert regulator.timezone == "Asia/Shanghai"
    assert regulator.content_fields == ["F1", "F3", "F5", "F6", "F7", "F9"]
    none = run("cn-pipl", residents={"US-CA": 10})
    assert not any(o.applies for o in none)
    assert pick(none, "individuals").reason == "no residents of CN and not established there"


def test_pipl_applies_to_an_operator_established_in_china() -> None:
    result = run("cn-pipl", CN_HOME, residents={"JP": 10})
    assert pick(result, "individuals").reason.startswith("established in CN")


def test_pipl_encryption_waives_individual_notice_never_the_regulators() -> None:
    result = run("cn-pipl", residents={"CN": 50}, encrypted_key_safe=True)
    assert pick(result, "regulator").applies
    individuals = pick(result, "individuals")
    assert not individuals.applies
    assert individuals.reason.startswith("exempt: data encrypted and key not compromised")
    assert "regulator may still order it" in individuals.reason


@pytest.mark.parametrize(
    ("total", "applies"), [(999_999, False), (1_000_000, True), (1_000_001, True)]
)
def test_cac_2025_reports_from_one_million_people(total: int, applies: bool) -> None:
    result = run("cn-cac-2025", CN_HOME, residents={"CN": total})
    initial = pick(result, "regulator", "initial")
    assert initial.applies is applies
    if applies:
        assert initial.reason.startswith(f"{total:,} affected >= 1,000,000 (relatively major")
        assert initial.deadline == T + timedelta(hours=4)
    else:
        assert initial.reason == "999,999 affected, not >= 1,000,000 (relatively major or above)"


@pytest.mark.parametrize(
    ("sectors", "hours"),
    [
        (set(), 4),
        ({"cn-cii-operator"}, 1),
        ({"central-organ"}, 2),
        ({"cn-cii-operator", "central-organ"}, 1),
    ],
)
def test_cac_2025_deadline_by_operator_type(sectors: set[str], hours: int) -> None:
    org = OrganisationProfile(home_jurisdictions=["CN"], sectors=sectors)
    initial = pick(run("cn-cac-2025", org, residents={"CN": 2_000_000}), "regulator", "initial")
    assert initial.deadline == T + timedelta(hours=hours)
    if sectors:
        assert f": {hours} hour" in initial.reason


def test_cac_2025_summary_report_waits_for_handling_to_end() -> None:
    result = run("cn-cac-2025", CN_HOME, residents={"CN": 2_000_000})
    final = pick(result, "regulator", "final")
    assert final.applies and final.deadline is None
    assert final.deadline_rule.endswith("anchor 'handling_ended' not known yet")
    ended = utc(2026, 12, 1, 10)
    anchors = ALL | {"handling_ended": ended}
    final = pick(
        run("cn-cac-2025", CN_HOME, anchors=anchors, residents={"CN": 2_000_000}),
        "regulator",
        "final",
    )
    assert final.deadline == ended + timedelta(days=30)
    assert pick(result, "regulator", "supplementary").deadline is None


def test_cac_2025_in_force_from_1_november_2025_in_beijing_time() -> None:
    before = {"discovered": utc(2025, 10, 31, 15, 59, 59)}  # 23:59:59 on 31 Oct in Beijing
    result = run("cn-cac-2025", CN_HOME, anchors=before, residents={"CN": 2_000_000})
    assert pick(result, "regulator", "initial").reason == (
        "not in force on 2025-10-31 (in force from 2025-11-01)"
    )
    start = {"discovered": utc(2025, 10, 31, 16, 0)}  # 00:00 on 1 Nov in Beijing
    result = run("cn-cac-2025", CN_HOME, anchors=start, residents={"CN": 2_000_000})
    assert pick(result, "regulator", "initial").deadline == utc(2025, 10, 31, 20, 0)


def test_cac_2025_needs_an_operator_in_china() -> None:
    result = run("cn-cac-2025", residents={"CN": 2_000_000})
    assert pick(result, "regulator", "initial").reason == "not established in CN"


def test_gbt35273_is_cited_as_secondary_and_offers_a_public_warning() -> None:
    result = run("cn-gbt35273", CN_HOME, residents={"CN": 5})
    individuals = pick(result, "individuals")
    assert individuals.applies
    assert individuals.deadline_rule.startswith("in time, from aware")
    assert "[~]" in individuals.citation
    assert individuals.content_fields == ["F1", "F5", "F6", "F7", "F8", "F9"]
    assert individuals.substitute_notice is not None
    assert "public warning" in individuals.substitute_notice


# --- EU and UK GDPR --------------------------------------------------------------------------


def test_gdpr_72_hours_after_awareness_in_the_lead_authoritys_zone() -> None:
    result = run("eu-gdpr", residents={"IE": 3})
    regulator = pick(result, "regulator")
    assert regulator.deadline == T + timedelta(hours=72)
    assert regulator.deadline_rule.startswith("72 hours after aware")
    assert regulator.timezone == "Europe/Brussels"
    # Art 33(3)(a)-(d): nature, categories of data and of people, consequences, measures, DPO
    assert regulator.content_fields == ["F1", "F3", "F4", "F5", "F6", "F9"]
    dublin = OrganisationProfile(gdpr_lead_authority_timezone="Europe/Dublin")
    assert pick(run("eu-gdpr", dublin, residents={"IE": 3}), "regulator").timezone == (
        "Europe/Dublin"
    )


@pytest.mark.parametrize(
    ("risk", "regulator", "individuals"),
    [("low", False, False), ("medium", True, False), ("high", True, True), (None, True, True)],
)
def test_gdpr_risk_tiers(risk: str | None, regulator: bool, individuals: bool) -> None:
    result = run("eu-gdpr", residents={"DE": 40}, risk=risk)
    assert pick(result, "regulator").applies is regulator
    assert pick(result, "individuals").applies is individuals
    if risk == "low":
        assert pick(result, "regulator").reason.startswith("exempt: risk assessed as low")
    if risk == "medium":
        assert pick(result, "individuals").reason == "risk medium, below high"
    if risk is None:
        assert "risk not assessed" in pick(result, "individuals").reason


def test_gdpr_encryption_waives_individual_notice_only() -> None:
    result = run("eu-gdpr", residents={"FR": 40}, encrypted_key_safe=True)
    assert pick(result, "regulator").applies
    individuals = pick(result, "individuals")
    assert not individuals.applies
    assert "Art 34(3)(a)" in individuals.reason


def test_gdpr_territory_is_the_eea() -> None:
    assert pick(run("eu-gdpr", residents={"NO": 1}), "regulator").applies
    assert not pick(run("eu-gdpr", residents={"CH": 1, "GB": 1}), "regulator").applies
    home = OrganisationProfile(home_jurisdictions=["IE"])
    assert pick(run("eu-gdpr", home, residents={"US-CA": 10}), "regulator").reason.startswith(
        "established in IE"
    )


def test_gdpr_processor_tells_the_controller() -> None:
    assert not pick(run("eu-gdpr", residents={"IE": 1}), "controller").applies
    processor = OrganisationProfile(sectors={"gdpr-processor"})
    controller = pick(run("eu-gdpr", processor, residents={"IE": 1}), "controller")
    assert controller.applies
    assert "[U]" in controller.citation


def test_uk_gdpr_reports_to_the_ico_in_london_time() -> None:
    result = run("uk-gdpr", residents={"GB": 2})
    regulator = pick(result, "regulator")
    assert regulator.applies and regulator.timezone == "Europe/London"
    assert regulator.deadline == T + timedelta(hours=72)
    assert "Information Commissioner" in regulator.reason
    assert not pick(run("uk-gdpr", residents={"IE": 2}), "regulator").applies


# --- Singapore, Australia, Hong Kong, Japan, Canada --------------------------------------------


@pytest.mark.parametrize(("total", "applies"), [(499, False), (500, True), (501, True)])
def test_pdpa_significant_scale_from_500(total: int, applies: bool) -> None:
    result = run("sg-pdpa", residents={"SG": total}, risk="low")
    regulator = pick(result, "regulator")
    assert regulator.applies is applies
    assert not pick(result, "individuals").applies
    if applies:
        assert regulator.reason.startswith(f"{total} affected >= 500 (significant scale)")
        assert regulator.deadline == T + timedelta(days=3)
        assert regulator.deadline_rule.startswith("3 calendar days after assessed")
        assert regulator.timezone == "Asia/Singapore"
    else:
        assert regulator.reason == (
            "none of: risk low, below high; 499 affected, not >= 500 (significant scale)"
        )


def test_pdpa_significant_harm_at_any_scale_and_assessment_anchor() -> None:
    result = run("sg-pdpa", residents={"SG": 3}, risk="high")
    assert pick(result, "regulator").applies
    assert pick(result, "individuals").applies
    assert "[U] — unverified default" in pick(result, "regulator").citation
    unassessed = run("sg-pdpa", anchors=ALL | {"assessed": None}, residents={"SG": 3})
    assert pick(unassessed, "regulator").deadline is None
    assert pick(unassessed, "regulator").deadline_rule.endswith("anchor 'assessed' not known yet")


@pytest.mark.parametrize(("risk", "applies"), [("medium", False), ("high", True)])
def test_australia_needs_likely_serious_harm(risk: str, applies: bool) -> None:
    result = run("au-ndb", residents={"AU": 10}, risk=risk)
    assert pick(result, "regulator").applies is applies
    assert pick(result, "individuals").applies is applies
    assert pick(result, "regulator").deadline is None
    assert pick(result, "regulator").timezone == "Australia/Sydney"


def test_hong_kong_is_voluntary() -> None:
    regulator = pick(run("hk-pdpo", residents={"HK": 10}, risk="medium"), "regulator")
    assert regulator.applies
    assert regulator.reason.startswith("voluntary: ")
    assert not pick(run("hk-pdpo", residents={"HK": 10}, risk="low"), "regulator").applies


@pytest.mark.parametrize(("people", "applies"), [(1000, False), (1001, True)])
def test_appi_more_than_1000_people(people: int, applies: bool) -> None:
    result = run("jp-appi", residents={"JP": people})
    assert pick(result, "regulator", "initial").applies is applies
    final = pick(result, "regulator", "final")
    assert final.applies is applies
    if applies:
        assert final.deadline == T + timedelta(days=30)
        assert pick(result, "regulator", "initial").deadline_rule.startswith("promptly")


def test_appi_sensitive_data_and_improper_purpose() -> None:
    sensitive = run("jp-appi", residents={"JP": 1}, data_categories={"health"})
    assert pick(sensitive, "regulator", "final").deadline == T + timedelta(days=30)
    assert pick(sensitive, "regulator", "final").reason.startswith("data includes health")
    hacked = run("jp-appi", residents={"JP": 1}, improper_purpose=True)
    final = pick(hacked, "regulator", "final")
    assert final.deadline == T + timedelta(days=60)
    assert "improper purpose suspected: 60 calendar days" in final.reason


def test_pipeda_is_canada_not_california() -> None:
    assert not pick(run("ca-pipeda", residents={"US-CA": 100}), "regulator").applies
    regulator = pick(run("ca-pipeda", residents={"CA": 1}), "regulator")
    assert regulator.applies
    assert regulator.deadline_rule.startswith("as soon as feasible, from determined")
    assert not pick(run("ca-pipeda", residents={"CA": 1}, risk="medium"), "regulator").applies


# --- Brazil ----------------------------------------------------------------------------------

RELEVANT = {"data_categories": {"financial"}, "risk": "medium", "residents": {"BR": 10}}


def test_lgpd_three_business_days_skipping_the_weekend() -> None:
    # Thu 12 Nov 12:00 in São Paulo: Fri 13, Mon 16, Tue 17 → 23:59:59 (UTC-3).
    result = run("br-lgpd", anchors={"aware": utc(2026, 11, 12, 15)}, **RELEVANT)
    initial = pick(result, "regulator", "initial")
    assert initial.deadline == utc(2026, 11, 18, 2, 59, 59)
    assert initial.deadline_rule == "3 business days after aware (America/Sao_Paulo, BR holidays)"
    assert pick(result, "individuals").deadline == utc(2026, 11, 18, 2, 59, 59)
    # 20 business days after Tue 17 Nov, skipping Fri 20 Nov (holiday): Wed 16 Dec.
    assert pick(result, "regulator", "supplementary").deadline == utc(2026, 12, 17, 2, 59, 59)


def test_lgpd_skips_a_public_holiday() -> None:
    # Thu 19 Nov: Fri 20 Nov is Black Awareness Day → Mon 23, Tue 24, Wed 25.
    result = run("br-lgpd", anchors={"aware": utc(2026, 11, 19, 15)}, **RELEVANT)
    assert pick(result, "regulator", "initial").deadline == utc(2026, 11, 26, 2, 59, 59)


def test_lgpd_counts_from_the_local_date() -> None:
    # 02:00 UTC on Fri 13 Nov is 23:00 on Thu 12 Nov in São Paulo.
    late_thursday = run("br-lgpd", anchors={"aware": utc(2026, 11, 13, 2)}, **RELEVANT)
    assert pick(late_thursday, "regulator", "initial").deadline == utc(2026, 11, 18, 2, 59, 59)
    friday = run("br-lgpd", anchors={"aware": utc(2026, 11, 13, 3)}, **RELEVANT)
    assert pick(friday, "regulator", "initial").deadline == utc(2026, 11, 19, 2, 59, 59)


def test_lgpd_small_agents_get_double_time() -> None:
    small = OrganisationProfile(sectors={"br-small-agent"})
    result = run("br-lgpd", small, anchors={"aware": utc(2026, 11, 12, 15)}, **RELEVANT)
    # Fri 13, Mon 16, Tue 17, Wed 18, Thu 19, (Fri 20 holiday), Mon 23.
    initial = pick(result, "regulator", "initial")
    assert initial.deadline == utc(2026, 11, 24, 2, 59, 59)
    assert "sector flag br-small-agent: 6 business days" in initial.reason


def test_lgpd_needs_relevant_risk_and_a_listed_data_category() -> None:
    low = run("br-lgpd", **(RELEVANT | {"risk": "low"}))
    assert pick(low, "regulator", "initial").reason == "risk low, below medium"
    contact = run("br-lgpd", **(RELEVANT | {"data_categories": {"email", "phone"}}))
    assert pick(contact, "regulator", "initial").reason.startswith("no data category among")
    individuals = pick(run("br-lgpd", **RELEVANT), "individuals")
    assert individuals.min_public_notice_days == 90


# --- India -----------------------------------------------------------------------------------


def test_dpdp_not_in_force_before_13_may_2027_in_india() -> None:
    before = utc(2027, 5, 12, 18, 29, 59)  # 23:59:59 on 12 May in India
    result = run("in-dpdp", anchors={"aware": before}, residents={"IN": 5})
    assert not any(o.applies for o in result)
    assert pick(result, "individuals").reason == (
        "not in force on 2027-05-12 (in force from 2027-05-13)"
    )
    start = utc(2027, 5, 12, 18, 30)  # 00:00 on 13 May in India
    result = run("in-dpdp", anchors={"aware": start}, residents={"IN": 5})
    assert all(o.applies for o in result)
    details = pick(result, "regulator", "supplementary")
    assert details.deadline == start + timedelta(hours=72)
    assert details.timezone == "Asia/Kolkata"
    assert pick(result, "regulator", "initial").deadline_rule.startswith("without delay")


def test_dpdp_has_no_threshold_and_no_encryption_waiver() -> None:
    aware = {"aware": utc(2027, 6, 1, 9)}
    result = run("in-dpdp", anchors=aware, residents={"IN": 1}, risk="low", encrypted_key_safe=True)
    assert all(o.applies for o in result)


# --- GDPR for a controller without an EU establishment (EDPB Guidelines 9/2022 para 73) ---

OUTSIDE_THE_EEA = OrganisationProfile(home_jurisdictions=["US"])


def test_gdpr_without_an_eu_establishment_one_report_per_member_state() -> None:
    result = run("eu-gdpr", OUTSIDE_THE_EEA, residents={"DE": 120, "FR": 7, "IE": 1, "US-CA": 900})
    reports = [o for o in result if o.audience == "regulator" and o.applies]
    initial = [o for o in reports if o.phase == "initial"]
    assert sorted(o.place or "" for o in initial) == ["DE", "FR", "IE"]
    assert len({o.recipient for o in initial}) == 3
    by_place = {o.place: o for o in initial}
    assert by_place["FR"].recipient.startswith("Commission Nationale de l")
    assert by_place["FR"].contact is not None and by_place["FR"].contact.url
    assert by_place["DE"].timezone == "Europe/Berlin"
    # 72 hours after awareness, whatever the zone: the same instant for each.
    assert {o.deadline for o in initial} == {T + timedelta(hours=72)}
    # The lead-authority path is set aside, with the reason.
    lead = [o for o in result if o.audience == "regulator" and o.place is None]
    assert lead and not any(o.applies for o in lead)
    assert all(o.reason == "no establishment in EEA" for o in lead)
    # Each report is as sure as its authority's contact data.
    assert all(o.confidence in ("~", "U") for o in initial)


def test_gdpr_with_an_eu_establishment_reports_to_the_lead_authority_only() -> None:
    result = run("eu-gdpr", OrganisationProfile(home_jurisdictions=["IE"]), residents={"DE": 5})
    reports = [o for o in result if o.audience == "regulator" and o.applies]
    assert {o.recipient for o in reports} == {"lead supervisory authority"}
    assert all(o.place is None for o in reports)


def test_gdpr_digital_omnibus_proposal_is_listed_never_applied() -> None:
    gdpr = RULES["eu-gdpr"]
    (proposal,) = gdpr.versions
    assert proposal.status == "proposed" and proposal.in_force_from is None
    assert proposal.obligations[0].deadline.amount == 96
    late = run("eu-gdpr", residents={"DE": 5}, anchors={"aware": utc(2031, 1, 1, 0, 0)})
    assert pick(late, "regulator").deadline == utc(2031, 1, 4, 0, 0)  # still 72 hours
