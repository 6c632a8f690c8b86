"""What the engine can express since issue 19, on small regimes written here for the purpose:
several clocks on one notice (the earliest wins), one report per member state with its own
authority, establishment tests, versions of an amended law, and the confidence of an answer.

The shipped regimes that use them (DORA, GDPR without an EU establishment) are tested with
their own files in ``test_regimes_eu_incident.py`` and ``test_regimes_intl.py``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from breachflow.rules import IncidentFacts, Obligation, OrganisationProfile, Regime, evaluate
from breachflow.rules.vocab import groups

T = datetime(2026, 11, 20, 7, 0, tzinfo=UTC)  # a Friday, 08:00 in Brussels
CHECKED = {"text": "made up for this test", "confidence": "✓"}


def regime(**changes: Any) -> Regime:
    """A minimal regime with one 72-hour regulator report; ``changes`` replace its keys."""
    base: dict[str, Any] = {
        "id": "test-regime",
        "name": "Test regime",
        "source": "this test",
        "citation": CHECKED,
        "regulators": ["the authority"],
        "timezone": "Europe/Brussels",
        "applicability": {"residence": ["EU"], "citation": CHECKED},
        "obligations": [
            {
                "audience": "regulator",
                "deadline": {"anchor": "aware", "amount": 72, "unit": "hours"},
                "content_fields": ["F1"],
                "citation": CHECKED,
            }
        ],
        "groups": {"EU": groups()["EU"], "EEA": groups()["EEA"]},
    }
    return Regime.model_validate(base | changes)


def report(**spec: Any) -> dict[str, Any]:
    """One regulator obligation with ``spec`` over a 72-hour default."""
    base: dict[str, Any] = {
        "audience": "regulator",
        "deadline": {"anchor": "aware", "amount": 72, "unit": "hours"},
        "content_fields": ["F1"],
        "citation": CHECKED,
    }
    return base | spec


def run(rules: Regime, org: OrganisationProfile | None = None, **facts: object) -> list[Obligation]:
    base: dict[str, object] = {"anchors": {"aware": T}, "risk": "high", "residents": {"DE": 5}}
    incident = IncidentFacts.model_validate(base | facts)
    return evaluate(incident, [rules], org or OrganisationProfile())


# --- several clocks: the earliest fixed instant wins ------------------------------------------

TWO_CLOCKS = regime(
    obligations=[
        report(
            title="initial notification",
            deadline={"anchor": "classified_major", "amount": 4, "unit": "hours"},
            no_later_than=[{"anchor": "aware", "amount": 24, "unit": "hours"}],
        )
    ]
)


@pytest.mark.parametrize(
    ("classified_after", "due_after"),
    [
        (timedelta(hours=2), timedelta(hours=6)),  # 2 h + 4 h comes first
        (timedelta(hours=20), timedelta(hours=24)),  # 20 h + 4 h = 24 h: both clocks agree
        (timedelta(hours=21), timedelta(hours=24)),  # 21 h + 4 h = 25 h: the 24 h bound wins
        (None, timedelta(hours=24)),  # not classified yet: the 24 h bound already runs
    ],
)
def test_the_earlier_of_two_clocks_is_the_deadline(
    classified_after: timedelta | None, due_after: timedelta
) -> None:
    anchors = {"aware": T, "classified_major": T + classified_after if classified_after else None}
    (obligation,) = run(TWO_CLOCKS, anchors=anchors)
    assert obligation.applies
    assert obligation.deadline == T + due_after
    assert obligation.title == "initial notification"
    assert "4 hours after classified_major" in obligation.deadline_rule
    assert "no later than 24 hours after aware" in obligation.deadline_rule
    four_hours = classified_after is not None and classified_after <= timedelta(hours=20)
    governing = "4 hours after classified_major" if four_hours else "24 hours after aware"
    assert f"the earliest applies: {governing}" in obligation.deadline_rule
    if classified_after is None:
        assert obligation.starts_at == T
        assert "anchor 'classified_major' not known yet" in obligation.deadline_rule
    elif four_hours:  # a tie goes to the first clock; the instant is the same
        assert obligation.starts_at == T + classified_after


def test_no_later_than_takes_only_fixed_clocks() -> None:
    with pytest.raises(ValueError, match="no_later_than needs fixed clocks"):
        regime(obligations=[report(no_later_than=[{"anchor": "aware", "term": "without delay"}])])


# --- one report per place, each to its own authority ------------------------------------------

AUTHORITIES = [
    {
        "name": "Authority of Germany",
        "place": "DE",
        "url": "https://example.de/breach",
        "email": "breach@example.de",
        "timezone": "Europe/Berlin",
        "citation": CHECKED,
    },
    {
        "name": "Authority of France",
        "place": "FR",
        "url": "https://example.fr/notifier",
        "timezone": "Europe/Paris",
        "citation": {"text": "a secondary source", "confidence": "~"},
    },
]
PER_PLACE = regime(
    authorities=AUTHORITIES,
    obligations=[
        report(
            recipient="the authority of each member state with residents",
            when={"not_established_in": ["EEA"]},
            per_place=["EEA"],
        )
    ],
)
OUTSIDE = OrganisationProfile(home_jurisdictions=["US"])


def test_one_report_per_member_state_with_residents_each_to_its_authority() -> None:
    result = run(PER_PLACE, OUTSIDE, residents={"DE": 10, "FR": 1, "IT": 3, "US-CA": 50})
    assert [(o.place, o.recipient) for o in result] == [
        ("FR", "Authority of France"),
        ("DE", "Authority of Germany"),
        ("IT", "the supervisory authority of IT"),  # no contact data: named, not invented
    ]
    france, germany, italy = result
    assert all(o.applies and o.deadline == T + timedelta(hours=72) for o in result)
    assert germany.contact is not None and germany.contact.email == "breach@example.de"
    assert germany.timezone == "Europe/Berlin" and italy.timezone == "Europe/Brussels"
    assert "10 residents of DE; notify Authority of Germany" in germany.reason
    assert "1 resident of FR" in france.reason
    assert italy.contact is None
    # The French contact data comes from a secondary source: the answer says so.
    assert (germany.confidence, france.confidence) == ("✓", "~")
    assert len({o.name for o in result}) == 3  # each its own deadline for the watchdog


def test_an_established_controller_gets_no_per_place_reports() -> None:
    inside = OrganisationProfile(home_jurisdictions=["IE"])
    (obligation,) = run(PER_PLACE, inside, residents={"DE": 10, "FR": 1})
    assert not obligation.applies
    assert obligation.reason == "established in IE"
    assert obligation.place is None


def test_a_profile_without_home_jurisdictions_is_assumed_established() -> None:
    (obligation,) = run(PER_PLACE, OrganisationProfile(), residents={"DE": 10})
    assert not obligation.applies
    assert obligation.reason == "establishment not stated in the profile: assumed in EEA"


def test_established_in_and_not_established_in_are_complements() -> None:
    pair = regime(
        obligations=[
            report(recipient="lead", when={"established_in": ["EEA"]}),
            report(recipient="each", when={"not_established_in": ["EEA"]}),
        ]
    )
    for homes in ([], ["IE"], ["US"], ["US-CA", "NO"], ["CN"]):
        lead, each = run(pair, OrganisationProfile(home_jurisdictions=homes))
        assert lead.applies is not each.applies, homes


def test_per_place_without_residents_there_is_set_aside_once() -> None:
    (obligation,) = run(PER_PLACE, OUTSIDE, residents={"DE": 0, "US-CA": 5})
    assert not obligation.applies
    assert obligation.reason.startswith("no residents of EU")  # the regime's territory


# --- versions of an amended law ---------------------------------------------------------------

AMENDED = regime(
    obligations=[report(deadline={"anchor": "aware", "term": "without undue delay"})],
    versions=[
        {
            "in_force_from": "2026-11-20",
            "citation": CHECKED,
            "obligations": [report()],
        },
        {
            "status": "proposed",
            "note": "a proposal",
            "citation": CHECKED,
            "obligations": [report(deadline={"anchor": "aware", "amount": 96, "unit": "hours"})],
        },
    ],
)


@pytest.mark.parametrize(
    ("aware", "deadline", "version_note"),
    [
        # 2026-11-19 23:30 UTC is 00:30 on the 20th in Brussels: the new text applies.
        (datetime(2026, 11, 19, 23, 30, tzinfo=UTC), timedelta(hours=72), True),
        # 22:30 UTC is 23:30 on the 19th in Brussels: still the old text.
        (datetime(2026, 11, 19, 22, 30, tzinfo=UTC), None, False),
    ],
)
def test_the_version_in_force_on_the_local_anchor_date_applies(
    aware: datetime, deadline: timedelta | None, version_note: bool
) -> None:
    (obligation,) = run(AMENDED, anchors={"aware": aware})
    assert obligation.deadline == (aware + deadline if deadline else None)
    assert ("version in force from 2026-11-20" in obligation.reason) is version_note


def test_a_proposed_version_is_never_applied() -> None:
    (obligation,) = run(AMENDED, anchors={"aware": datetime(2030, 1, 1, tzinfo=UTC)})
    assert obligation.deadline == datetime(2030, 1, 4, tzinfo=UTC)  # 72 h, not 96 h
    assert AMENDED.obligations_on(date(2030, 1, 1))[1] == AMENDED.versions[0]


def test_versions_must_be_in_date_order_and_dated_when_in_force() -> None:
    later = {"in_force_from": "2027-01-01", "citation": CHECKED, "obligations": [report()]}
    earlier = later | {"in_force_from": "2026-01-01"}
    with pytest.raises(ValueError, match="in order of in_force_from"):
        regime(versions=[later, earlier])
    with pytest.raises(ValueError, match="needs in_force_from"):
        regime(versions=[{"citation": CHECKED, "obligations": [report()]}])


# --- confidence on every answer ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("regime_mark", "scope_mark", "obligation_mark", "answer"),
    [
        ("✓", "✓", "✓", "✓"),
        ("✓", "~", "✓", "~"),
        ("✓", "✓", "U", "U"),
        ("~", "U", "✓", "U"),
    ],
)
def test_an_answer_is_as_sure_as_its_least_sure_fact(
    regime_mark: str, scope_mark: str, obligation_mark: str, answer: str
) -> None:
    rules = regime(
        citation={"text": "regime", "confidence": regime_mark},
        applicability={
            "residence": ["EU"],
            "citation": {"text": "scope", "confidence": scope_mark},
        },
        obligations=[report(citation={"text": "duty", "confidence": obligation_mark})],
    )
    (obligation,) = run(rules)
    assert obligation.confidence == answer
    assert rules.facts_confidence() == answer


def test_contact_data_is_checked_at_load() -> None:
    bad = AUTHORITIES[0] | {"email": "not an address"}
    with pytest.raises(ValueError, match="email"):
        regime(authorities=[bad])
    with pytest.raises(ValueError, match="listed twice"):
        regime(authorities=[AUTHORITIES[0], AUTHORITIES[0]])
