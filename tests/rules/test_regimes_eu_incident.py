"""EU incident-reporting regimes: NIS2 Art 23, DORA Art 19 (+ RTS 2025/301), CRA Art 14.

Dates are counted by hand in the comments. T = Friday 2026-11-20 07:00 UTC (08:00 in
Brussels); hours and calendar days are elapsed time from the anchor (or from the deadline of
the notice it is chained to); "one month" is a calendar month: the same date and local time
in Brussels a month on.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest

from breachflow.rules import (
    RULES_DIR,
    IncidentFacts,
    Obligation,
    OrganisationProfile,
    Regime,
    evaluate,
    load_regime,
)

REGIMES: dict[str, Regime] = {
    name: load_regime(RULES_DIR / f"{name}.yaml") for name in ("eu-nis2", "eu-dora", "eu-cra")
}
T = datetime(2026, 11, 20, 7, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)

NIS2_ESSENTIAL = OrganisationProfile(sectors={"nis2-essential"})
NIS2_IMPORTANT = OrganisationProfile(sectors={"nis2-important"})
FINANCIAL = OrganisationProfile(sectors={"dora-financial-entity"})
MANUFACTURER = OrganisationProfile(sectors={"cra-manufacturer"})
SRP = "https://www.enisa.europa.eu/topics/product-security-and-certification/single-reporting-platform-srp"


def run(
    regime: str, org: OrganisationProfile, anchors: Mapping[str, datetime | None], **facts: object
) -> list[Obligation]:
    base: dict[str, object] = {"anchors": anchors, "risk": "high", "residents": {"DE": 3}}
    incident = IncidentFacts.model_validate(base | facts)
    return evaluate(incident, [REGIMES[regime]], org)


def pick(obligations: list[Obligation], audience: str, phase: str = "initial") -> Obligation:
    found = [o for o in obligations if (o.audience, o.phase) == (audience, phase)]
    assert len(found) == 1, found
    return found[0]


def titled(obligations: list[Obligation], title: str) -> Obligation:
    found = [o for o in obligations if o.title == title]
    assert len(found) == 1, found
    return found[0]


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


# --- NIS2 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("org", [NIS2_ESSENTIAL, NIS2_IMPORTANT])
def test_nis2_clocks_24_hours_72_hours_and_one_month_after_the_notification(
    org: OrganisationProfile,
) -> None:
    result = run("eu-nis2", org, {"aware": T})
    early = pick(result, "regulator", "initial")
    notification = pick(result, "regulator", "supplementary")
    final = pick(result, "regulator", "final")
    assert (early.title, notification.title, final.title) == (
        "early warning",
        "incident notification",
        "final report",
    )
    assert early.deadline == utc(2026, 11, 21, 7)  # 20 Nov 07:00 + 24 h
    assert notification.deadline == utc(2026, 11, 23, 7)  # 20 Nov 07:00 + 72 h
    # one month after the notification's deadline: 23 Nov 08:00 CET -> 23 Dec 08:00 CET
    assert final.deadline == utc(2026, 12, 23, 7)
    assert final.deadline_rule.startswith("1 calendar month after the regulator notice")
    assert "one month" in final.citation
    assert early.timezone == "Europe/Brussels"
    assert early.recipient == "CSIRT or competent authority of the Member State"
    assert early.contact is not None and early.contact.url == "https://csirtsnetwork.eu/"
    assert early.confidence == "~"  # the territorial scope is a secondary reading
    assert "trust service providers: within 24 hours" in notification.deadline_rule


def test_nis2_needs_an_essential_or_important_entity() -> None:
    result = run("eu-nis2", OrganisationProfile(), {"aware": T})
    assert not any(o.applies for o in result)
    assert pick(result, "regulator").reason == (
        "none of: sector flag nis2-essential not set; sector flag nis2-important not set"
    )
    both = OrganisationProfile(sectors={"nis2-essential", "nis2-important"})
    assert pick(run("eu-nis2", both, {"aware": T}), "regulator").applies


@pytest.mark.parametrize(
    ("risk", "applies"), [("low", False), ("medium", False), ("high", True), (None, True)]
)
def test_nis2_significant_incident_is_risk_high(risk: str | None, applies: bool) -> None:
    result = run("eu-nis2", NIS2_ESSENTIAL, {"aware": T}, risk=risk)
    for obligation in result:
        assert obligation.applies is applies
    if risk in ("low", "medium"):
        assert pick(result, "regulator").reason == f"risk {risk}, below high"
    if risk is None:
        assert "risk not assessed" in pick(result, "regulator").reason


def test_nis2_territory_is_eu_residents_or_an_eu_establishment() -> None:
    outside = run("eu-nis2", NIS2_ESSENTIAL, {"aware": T}, residents={"US-CA": 5, "CH": 2})
    assert not any(o.applies for o in outside)
    assert pick(outside, "regulator").reason == "no residents of EU and not established there"
    home = OrganisationProfile(sectors={"nis2-essential"}, home_jurisdictions=["FR"])
    established = run("eu-nis2", home, {"aware": T}, residents={"US-CA": 5})
    assert pick(established, "regulator").applies
    assert "established in FR" in pick(established, "regulator").reason


def test_nis2_recipients_of_services_without_undue_delay_and_no_encryption_waiver() -> None:
    result = run("eu-nis2", NIS2_IMPORTANT, {"aware": T}, encrypted_key_safe=True)
    recipients = pick(result, "individuals")
    assert recipients.applies and recipients.deadline is None
    assert recipients.deadline_rule.startswith("without undue delay, from aware: no fixed")
    assert recipients.title == "notice to recipients of services"
    assert all(o.applies for o in result)  # NIS2 has no encryption safe harbour


def test_nis2_applies_from_18_october_2024_in_brussels_time() -> None:
    before = {"aware": utc(2024, 10, 17, 21, 59, 59)}  # 23:59:59 CEST on 17 Oct
    early = pick(run("eu-nis2", NIS2_ESSENTIAL, before), "regulator")
    assert early.reason == "not in force on 2024-10-17 (in force from 2024-10-18)"
    start = {"aware": utc(2024, 10, 17, 22)}  # 00:00 CEST on 18 Oct
    early = pick(run("eu-nis2", NIS2_ESSENTIAL, start), "regulator")
    assert early.applies and early.deadline == utc(2024, 10, 18, 22)


# --- DORA ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("classified", "due"),
    [
        (T + 2 * HOUR, T + 6 * HOUR),  # 09:00 + 4 h = 13:00 on 20 Nov, before the 24 h bound
        (T + 22 * HOUR, T + 24 * HOUR),  # 05:00 on 21 Nov + 4 h = 09:00; 24 h bound 07:00
        (None, T + 24 * HOUR),  # not classified yet: the 24-hour bound alone
        # Art 5(2): classified at 13:00 on 21 Nov, after the 24 h bound had passed (07:00):
        # 4 hours from the classification, not a deadline already in the past.
        (T + 30 * HOUR, T + 34 * HOUR),
    ],
)
def test_dora_initial_notification_is_the_earlier_of_4_hours_and_24_hours(
    classified: datetime | None, due: datetime
) -> None:
    anchors = {"aware": T, "classified_major": classified}
    initial = pick(run("eu-dora", FINANCIAL, anchors), "regulator", "initial")
    assert initial.applies and initial.title == "initial notification"
    assert initial.deadline == due
    assert initial.deadline_rule.startswith("4 hours after classified_major")
    assert "Art 5(2)" in initial.deadline_rule  # the late-classification case is named
    late = classified is not None and classified > T + 24 * HOUR
    if late:
        assert "came after the bound of 24 hours after aware had passed" in initial.deadline_rule
    else:
        assert "no later than 24 hours after aware" in initial.deadline_rule


def test_dora_intermediate_72_hours_and_final_one_month_chained() -> None:
    result = run("eu-dora", FINANCIAL, {"aware": T, "classified_major": T + 2 * HOUR})
    intermediate = pick(result, "regulator", "supplementary")
    final = pick(result, "regulator", "final")
    assert intermediate.title == "intermediate report"
    # initial due 20 Nov 13:00 (classified 09:00 + 4 h) + 72 h = 23 Nov 13:00
    assert intermediate.deadline == utc(2026, 11, 23, 13)
    # 23 Nov 14:00 CET + 1 month = 23 Dec 14:00 CET
    assert final.deadline == utc(2026, 12, 23, 13)
    assert final.title == "final report"
    assert "noon of the next working day" in final.deadline_rule
    assert intermediate.contact is not None
    assert intermediate.contact.name == "relevant competent authority (DORA Art 46)"


def test_dora_clients_without_undue_delay() -> None:
    clients = pick(run("eu-dora", FINANCIAL, {"aware": T}), "individuals")
    assert clients.applies and clients.deadline is None
    assert clients.deadline_rule.startswith("without undue delay, from aware: no fixed")
    assert "financial interests of clients" in clients.deadline_rule


@pytest.mark.parametrize(("risk", "applies"), [("medium", False), ("high", True), (None, True)])
def test_dora_major_incident_is_risk_high(risk: str | None, applies: bool) -> None:
    result = run("eu-dora", FINANCIAL, {"aware": T}, risk=risk)
    assert all(o.applies is applies for o in result)


def test_dora_needs_a_financial_entity_and_ignores_residence() -> None:
    result = run("eu-dora", NIS2_ESSENTIAL, {"aware": T})
    assert not any(o.applies for o in result)
    assert pick(result, "regulator").reason == "sector flag dora-financial-entity not set"
    anywhere = run("eu-dora", FINANCIAL, {"aware": T}, residents={"US-NY": 4})
    assert pick(anywhere, "regulator").applies


def test_dora_applies_from_17_january_2025_in_brussels_time() -> None:
    before = utc(2025, 1, 16, 22, 59, 59)  # 23:59:59 CET on 16 Jan
    result = run("eu-dora", FINANCIAL, {"aware": before, "classified_major": before})
    assert pick(result, "regulator").reason == (
        "not in force on 2025-01-16 (in force from 2025-01-17)"
    )
    start = utc(2025, 1, 16, 23)  # 00:00 CET on 17 Jan
    initial = pick(
        run("eu-dora", FINANCIAL, {"aware": start, "classified_major": start}), "regulator"
    )
    assert initial.applies and initial.deadline == utc(2025, 1, 17, 3)


# --- CRA -------------------------------------------------------------------------------------


def test_cra_early_warning_24_hours_and_notification_72_hours_via_the_srp() -> None:
    result = run("eu-cra", MANUFACTURER, {"aware": T})
    early = pick(result, "regulator", "initial")
    notification = pick(result, "regulator", "supplementary")
    assert early.title == "early warning notification"
    assert early.deadline == utc(2026, 11, 21, 7)  # + 24 h
    assert notification.title == "vulnerability or incident notification"
    assert notification.deadline == utc(2026, 11, 23, 7)  # + 72 h
    assert early.contact is not None and early.contact.url == SRP
    assert (
        early.recipient == "CSIRT designated as coordinator and ENISA (single reporting platform)"
    )
    assert early.confidence == "✓"


def test_cra_vulnerability_final_report_14_days_after_the_corrective_measure() -> None:
    waiting = titled(
        run("eu-cra", MANUFACTURER, {"aware": T}), "final report (actively exploited vulnerability)"
    )
    assert waiting.applies and waiting.deadline is None
    assert waiting.deadline_rule.endswith("anchor 'corrective_measure' not known yet")
    fixed = utc(2026, 12, 1, 10)
    anchors = {"aware": T, "corrective_measure": fixed}
    final = titled(
        run("eu-cra", MANUFACTURER, anchors), "final report (actively exploited vulnerability)"
    )
    assert final.deadline == utc(2026, 12, 15, 10)  # 1 Dec 10:00 + 14 days


def test_cra_severe_incident_final_report_one_month_after_the_notification() -> None:
    final = titled(run("eu-cra", MANUFACTURER, {"aware": T}), "final report (severe incident)")
    assert final.phase == "final"
    assert final.deadline == utc(2026, 12, 23, 7)  # 23 Nov 08:00 CET + 1 month
    assert "1 calendar month after" in final.deadline_rule


def test_cra_users_informed_without_a_fixed_deadline_whatever_the_risk() -> None:
    result = run("eu-cra", MANUFACTURER, {"aware": T}, risk="low", encrypted_key_safe=True)
    users = pick(result, "individuals")
    assert users.applies and users.deadline is None
    assert users.deadline_rule.startswith("no fixed deadline (after becoming aware")
    assert all(o.applies for o in result)  # no risk test, no encryption safe harbour


def test_cra_needs_a_manufacturer() -> None:
    result = run("eu-cra", FINANCIAL, {"aware": T})
    assert not any(o.applies for o in result)
    assert pick(result, "regulator").reason == "sector flag cra-manufacturer not set"


def test_cra_article_14_applies_from_11_september_2026_in_brussels_time() -> None:
    before = {"aware": utc(2026, 9, 10, 21, 59, 59)}  # 23:59:59 CEST on 10 Sep
    early = pick(run("eu-cra", MANUFACTURER, before), "regulator")
    assert early.reason == "not in force on 2026-09-10 (in force from 2026-09-11)"
    start = {"aware": utc(2026, 9, 10, 22)}  # 00:00 CEST on 11 Sep
    early = pick(run("eu-cra", MANUFACTURER, start), "regulator")
    assert early.applies and early.deadline == utc(2026, 9, 11, 22)


def test_nis2_steps_aside_for_a_dora_financial_entity() -> None:
    """NIS2 Art 4: DORA is the sector-specific act for financial entities; an entity with
    both flags reports under DORA, and NIS2 says why it does not apply."""
    both = OrganisationProfile(sectors={"nis2-essential", "dora-financial-entity"})
    nis2 = run("eu-nis2", both, {"aware": T})
    early = pick(nis2, "regulator", "initial")
    assert not early.applies
    assert early.reason == "sector flag dora-financial-entity set: another act applies"
    assert pick(run("eu-dora", both, {"aware": T}), "regulator", "initial").applies
