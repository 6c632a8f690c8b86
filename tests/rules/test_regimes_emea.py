"""Switzerland, Türkiye, Saudi Arabia, UAE, Israel, South Africa, Nigeria and Kenya.

None of these regimes has a head-count threshold: every notice turns on residence, risk,
encryption and (for processors) a sector flag, so those are what is tested on both sides.
Dates are counted by hand in the comments; 2026-11-20 is a Friday and every clock here runs
in hours or is an open term, so no holiday calendar is involved.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from breachflow.rules import IncidentFacts, Obligation, OrganisationProfile, evaluate
from breachflow.rules.loader import load_regime
from breachflow.rules.vocab import RULES_DIR

HOME = {
    "ch-fadp": "CH",
    "tr-kvkk": "TR",
    "sa-pdpl": "SA",
    "ae-pdpl": "AE",
    "il-privacy": "IL",
    "za-popia": "ZA",
    "ng-ndpa": "NG",
    "ke-dpa": "KE",
}
RULES = {name: load_regime(RULES_DIR / f"{name}.yaml") for name in HOME}
T = datetime(2026, 11, 20, 7, 0, tzinfo=UTC)
ALL = dict.fromkeys(["detected", "aware", "determined", "assessed", "discovered"], T)
PROCESSOR = OrganisationProfile(sectors={"gdpr-processor"})


def run(regime: str, org: OrganisationProfile | None = None, **facts: object) -> list[Obligation]:
    base: dict[str, object] = {
        "anchors": ALL,
        "risk": "high",
        "data_categories": {"email"},
        "residents": {HOME[regime]: 10},
    }
    incident = IncidentFacts.model_validate(base | facts)
    return evaluate(incident, [RULES[regime]], org or OrganisationProfile())


def pick(obligations: list[Obligation], audience: str, phase: str = "initial") -> Obligation:
    found = [o for o in obligations if (o.audience, o.phase) == (audience, phase)]
    assert len(found) == 1, found
    return found[0]


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# --- scope -----------------------------------------------------------------------------------


@pytest.mark.parametrize("regime", sorted(HOME))
def test_out_of_scope_for_non_residents_unless_established_there(regime: str) -> None:
    country = HOME[regime]
    elsewhere = run(regime, PROCESSOR, residents={"US-CA": 10})
    assert not any(o.applies for o in elsewhere)
    assert pick(elsewhere, "individuals").reason == (
        f"no residents of {country} and not established there"
    )
    established = OrganisationProfile(home_jurisdictions=[country])
    result = run(regime, established, residents={"US-CA": 10})
    assert pick(result, "regulator").applies
    assert f"established in {country}" in pick(result, "regulator").reason


@pytest.mark.parametrize(
    ("regime", "zone", "recipient"),
    [
        (
            "ch-fadp",
            "Europe/Zurich",
            "Federal Data Protection and Information Commissioner (FDPIC)",
        ),
        ("tr-kvkk", "Europe/Istanbul", "Personal Data Protection Board (KVKK)"),
        ("sa-pdpl", "Asia/Riyadh", "Saudi Data and Artificial Intelligence Authority (SDAIA)"),
        ("ae-pdpl", "Asia/Dubai", "UAE Data Office"),
        ("il-privacy", "Asia/Jerusalem", "Privacy Protection Authority (PPA)"),
        ("za-popia", "Africa/Johannesburg", "Information Regulator (South Africa)"),
        ("ng-ndpa", "Africa/Lagos", "Nigeria Data Protection Commission (NDPC)"),
        ("ke-dpa", "Africa/Nairobi", "Office of the Data Protection Commissioner (ODPC)"),
    ],
)
def test_regulator_notice_goes_to_the_named_authority(
    regime: str, zone: str, recipient: str
) -> None:
    regulator = pick(run(regime), "regulator")
    assert regulator.applies
    assert regulator.timezone == zone
    assert regulator.recipient == recipient
    assert regulator.contact is not None
    assert regulator.contact.name == recipient
    assert RULES[regime].regulators == [recipient]


@pytest.mark.parametrize(
    ("regime", "url", "email"),
    [
        ("ch-fadp", "https://www.edoeb.admin.ch/edoeb/en/home/meldeportale/databreach.html", None),
        ("tr-kvkk", "https://ihlalbildirim.kvkk.gov.tr/", None),
        ("sa-pdpl", "https://dgp.sdaia.gov.sa/", None),
        ("ae-pdpl", None, None),  # Data Office not publicly operational: no portal found
        ("il-privacy", None, None),  # no breach-report address found
        ("za-popia", "https://eservices.inforegulator.org.za/compromises/default.aspx", None),
        ("ng-ndpa", "https://services.ndpc.gov.ng/breach", None),
        ("ke-dpa", "https://www.odpc.go.ke/", "info@odpc.go.ke"),
    ],
)
def test_authority_contact_data(regime: str, url: str | None, email: str | None) -> None:
    contact = pick(run(regime), "regulator").contact
    assert contact is not None
    assert (contact.url, contact.email) == (url, email)


# --- fixed clocks ----------------------------------------------------------------------------


@pytest.mark.parametrize("regime", ["tr-kvkk", "sa-pdpl", "ng-ndpa", "ke-dpa"])
def test_regulator_72_hours_after_awareness(regime: str) -> None:
    # Fri 20 Nov 07:00 UTC + 72 h = Mon 23 Nov 07:00 UTC (10:00 in Istanbul, Riyadh and
    # Nairobi, UTC+3; 08:00 in Lagos, UTC+1): hours are hours, whatever the local zone.
    anchors = {name: T - timedelta(days=2) for name in ALL} | {"aware": T}
    regulator = pick(run(regime, anchors=anchors), "regulator")
    assert regulator.deadline == utc(2026, 11, 23, 7, 0)
    assert regulator.deadline_rule.startswith("72 hours after aware")
    missing = pick(run(regime, anchors=anchors | {"aware": None}), "regulator")
    assert missing.deadline is None
    assert "anchor 'aware' not known yet" in missing.deadline_rule


def test_israel_immediately_without_an_unsourced_72_hour_cap() -> None:
    regulator = pick(run("il-privacy"), "regulator")
    assert regulator.applies
    # "immediately" has no instant; the 72 hours only secondary pages claim is not encoded.
    assert regulator.deadline is None
    assert regulator.deadline_rule.startswith("immediately, from aware: no fixed deadline")
    assert "severe security incident" in regulator.deadline_rule
    assert "72 hours" not in regulator.deadline_rule


def test_kenya_processor_tells_the_controller_within_48_hours() -> None:
    # Fri 20 Nov 07:00 UTC + 48 h = Sun 22 Nov 07:00 UTC (10:00 in Nairobi).
    notice = pick(run("ke-dpa", PROCESSOR), "controller")
    assert notice.applies
    assert notice.deadline == utc(2026, 11, 22, 7, 0)
    assert notice.deadline_rule.startswith("48 hours after aware")
    unflagged = pick(run("ke-dpa"), "controller")
    assert not unflagged.applies
    assert unflagged.reason == "sector flag gdpr-processor not set"


# --- open terms ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("regime", "audience", "phase", "term"),
    [
        ("ch-fadp", "regulator", "initial", "as soon as possible, from aware"),
        ("ch-fadp", "regulator", "supplementary", "as quickly as possible"),
        ("ch-fadp", "individuals", "initial", "when required for their protection"),
        ("ch-fadp", "controller", "initial", "as soon as possible, from aware"),
        ("tr-kvkk", "regulator", "supplementary", "without delay, in phases"),
        ("tr-kvkk", "individuals", "initial", "within the shortest reasonable time"),
        ("sa-pdpl", "individuals", "initial", "without undue delay, from aware"),
        ("sa-pdpl", "controller", "initial", "on becoming aware"),
        ("ae-pdpl", "regulator", "initial", "immediately upon becoming aware"),
        ("ae-pdpl", "individuals", "initial", "no fixed deadline found"),
        ("ae-pdpl", "controller", "initial", "immediately, from aware"),
        ("il-privacy", "regulator", "supplementary", "after the initial notice"),
        ("il-privacy", "individuals", "initial", "only when the PPA orders it"),
        ("za-popia", "regulator", "initial", "as soon as reasonably possible after"),
        ("za-popia", "individuals", "initial", "as soon as reasonably possible after"),
        ("za-popia", "controller", "initial", "immediately, from aware"),
        ("ng-ndpa", "individuals", "initial", "immediately, from aware"),
        ("ng-ndpa", "controller", "initial", "on becoming aware"),
        ("ke-dpa", "individuals", "initial", "in writing within a reasonably practical period"),
    ],
)
def test_open_terms_have_no_fixed_instant(
    regime: str, audience: str, phase: str, term: str
) -> None:
    notice = pick(run(regime, PROCESSOR), audience, phase)
    assert notice.applies
    assert notice.deadline is None
    assert notice.deadline_rule.startswith(term)
    assert "no fixed deadline" in notice.deadline_rule


def test_uae_says_the_executive_regulations_are_missing() -> None:
    regulator = pick(run("ae-pdpl"), "regulator")
    assert "Executive Regulations, not issued as far as found" in regulator.deadline_rule
    assert "scope [U]" in regulator.reason


# --- risk ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("risk", "regulator", "individuals"),
    [("low", False, False), ("medium", False, True), ("high", True, True)],
)
def test_switzerland_fdpic_only_for_high_risk(
    risk: str, regulator: bool, individuals: bool
) -> None:
    result = run("ch-fadp", risk=risk)
    assert pick(result, "regulator").applies is regulator
    assert pick(result, "regulator", "supplementary").applies is regulator
    assert pick(result, "individuals").applies is individuals
    if not regulator:
        assert pick(result, "regulator").reason.startswith(f"risk {risk}, below high")


@pytest.mark.parametrize(
    ("risk", "regulator", "individuals"),
    [("low", False, False), ("medium", True, False), ("high", True, True)],
)
def test_nigeria_commission_for_risk_data_subjects_for_high_risk(
    risk: str, regulator: bool, individuals: bool
) -> None:
    result = run("ng-ndpa", risk=risk)
    assert pick(result, "regulator").applies is regulator
    assert pick(result, "individuals").applies is individuals
    if risk == "low":
        assert pick(result, "regulator").reason.startswith("exempt: risk assessed as low")


@pytest.mark.parametrize("regime", ["sa-pdpl", "ke-dpa"])
def test_no_notice_without_harm_in_saudi_arabia_and_kenya(regime: str) -> None:
    low = run(regime, risk="low")
    assert not any(o.applies for o in low)
    assert pick(low, "regulator").reason.startswith("exempt: risk assessed as low")
    assert all(o.applies for o in run(regime, PROCESSOR, risk="medium"))


@pytest.mark.parametrize("regime", ["tr-kvkk", "za-popia", "ae-pdpl", "il-privacy"])
def test_no_risk_threshold_every_breach_is_notified(regime: str) -> None:
    result = run(regime, risk="low")
    assert pick(result, "regulator").applies
    assert pick(result, "individuals").applies


# --- encryption ------------------------------------------------------------------------------


def test_kenya_encryption_spares_the_data_subjects_not_the_commissioner() -> None:
    result = run("ke-dpa", encrypted_key_safe=True)
    assert pick(result, "regulator").applies
    individuals = pick(result, "individuals")
    assert not individuals.applies
    assert individuals.reason.startswith("exempt: data encrypted and key not compromised")


@pytest.mark.parametrize(
    "regime", ["ch-fadp", "tr-kvkk", "sa-pdpl", "ae-pdpl", "il-privacy", "za-popia", "ng-ndpa"]
)
def test_no_encryption_safe_harbour_elsewhere(regime: str) -> None:
    result = run(regime, encrypted_key_safe=True)
    assert pick(result, "regulator").applies
    assert pick(result, "individuals").applies


# --- dates in force, content, substitute notice ----------------------------------------------


@pytest.mark.parametrize(
    ("regime", "last_before", "first_on"),
    [
        # 2023-09-01 00:00 in Zurich (CEST, UTC+2) is 2023-08-31 22:00 UTC.
        ("ch-fadp", utc(2023, 8, 31, 21, 59), utc(2023, 8, 31, 22, 0)),
        # 2023-09-14 00:00 in Riyadh (UTC+3) is 2023-09-13 21:00 UTC.
        ("sa-pdpl", utc(2023, 9, 13, 20, 59), utc(2023, 9, 13, 21, 0)),
        # 2018-05-08 00:00 in Jerusalem (IDT, UTC+3) is 2018-05-07 21:00 UTC.
        ("il-privacy", utc(2018, 5, 7, 20, 59), utc(2018, 5, 7, 21, 0)),
    ],
)
def test_in_force_from_the_local_date(
    regime: str, last_before: datetime, first_on: datetime
) -> None:
    before = pick(run(regime, anchors={"aware": last_before}), "regulator")
    assert not before.applies
    assert before.reason.startswith("not in force on")
    assert pick(run(regime, anchors={"aware": first_on}), "regulator").applies


@pytest.mark.parametrize(
    ("regime", "fields"),
    [
        ("ch-fadp", ["F1", "F2", "F3", "F4", "F5", "F6", "F9"]),
        ("tr-kvkk", ["F1", "F2", "F3", "F4", "F5", "F6", "F9"]),
        ("sa-pdpl", ["F1", "F2", "F3", "F4", "F5", "F6", "F9", "F12"]),
        ("ng-ndpa", ["F1", "F3", "F4", "F5", "F6", "F9"]),
    ],
)
def test_regulator_report_content(regime: str, fields: list[str]) -> None:
    assert pick(run(regime), "regulator").content_fields == fields


@pytest.mark.parametrize(
    ("regime", "method", "condition"),
    [
        ("ch-fadp", "public announcement", "disproportionate effort (Art 24(5)(b))"),
        ("tr-kvkk", "publication on the data controller's own website", "> 0 unreachable people"),
        ("za-popia", "s22(4): prominent display", "written notice by mail"),
        ("ng-ndpa", "public communication in one or more widely used media", "not feasible"),
    ],
)
def test_substitute_notice(regime: str, method: str, condition: str) -> None:
    substitute = pick(run(regime), "individuals").substitute_notice
    assert substitute is not None
    assert substitute.startswith(method)
    assert condition in substitute
