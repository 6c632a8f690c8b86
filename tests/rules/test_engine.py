"""The engine's public contract: inputs, output shape, policy profiles, missing anchors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from breachflow import shipped
from breachflow.rules import (
    IncidentFacts,
    Obligation,
    OrganisationProfile,
    evaluate,
    load_policy,
    load_rules,
    notification_window,
)

EXAMPLES = shipped("examples") / "policies"
RULES = {r.id: r for r in load_rules()}
T = datetime(2026, 11, 20, 7, 0, tzinfo=UTC)
ALL = dict.fromkeys(["detected", "aware", "determined", "assessed", "discovered"], T)
OUTPUT_KEYS = {
    "title",
    "place",
    "contact",
    "confidence",
    "regime",
    "audience",
    "phase",
    "recipient",
    "deadline",
    "starts_at",
    "deadline_rule",
    "applies",
    "reason",
    "content_fields",
    "citation",
    "timezone",
    "substitute_notice",
    "min_public_notice_days",
}


def facts(**overrides: object) -> IncidentFacts:
    base: dict[str, object] = {
        "anchors": ALL,
        "risk": "high",
        "data_categories": {"email", "phone"},
        "residents": {"CN": 300},
    }
    return IncidentFacts.model_validate(base | overrides)


def pick(obligations: list[Obligation], regime: str, audience: str) -> Obligation:
    found = [o for o in obligations if o.regime == regime and o.audience == audience]
    assert len(found) == 1, found
    return found[0]


def test_the_documented_example_runs_and_considers_every_regime() -> None:
    example = IncidentFacts(
        anchors={"detected": T, "aware": T, "determined": None, "assessed": T, "discovered": T},
        risk="high",
        data_categories={"email", "phone"},
        encrypted_key_safe=False,
        improper_purpose=False,
        residents={"US": 700, "US-CA": 600, "US-TX": 100, "CN": 300},
        unknown_residence=5,
        affected_total=1005,
    )
    obligations = evaluate(example, load_rules(), OrganisationProfile(), policy=None)
    assert {o.regime for o in obligations} == set(RULES)
    for obligation in obligations:
        assert set(obligation.model_dump(mode="json")) == OUTPUT_KEYS
        assert obligation.reason
        assert obligation.deadline_rule
        assert obligation.citation.count("[") >= 1
        if not obligation.applies:
            assert obligation.deadline is None
    policy = pick(obligations, "policy", "individuals")
    assert policy.model_dump(mode="json")["deadline"] == "2026-12-20T07:00:00Z"
    assert notification_window(obligations) == T + timedelta(days=30)


def test_anchors_with_any_offset_give_utc_deadlines() -> None:
    anchors = {"aware": datetime.fromisoformat("2026-11-20T15:00:00+08:00")}
    incident = facts(anchors=anchors)
    assert incident.anchors["aware"] == T
    result = evaluate(incident, [RULES["policy"]], OrganisationProfile())
    due = pick(result, "policy", "individuals").deadline
    assert due == datetime(2026, 12, 20, 7, 0, tzinfo=UTC)
    assert due is not None and due.utcoffset() == timedelta(0)


def test_naive_anchor_times_are_refused() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        facts(anchors={"aware": datetime(2026, 11, 20, 7, 0)})


def test_unknown_data_category_and_sector_are_refused() -> None:
    with pytest.raises(ValidationError, match="unknown data categories"):
        facts(data_categories={"emails"})
    with pytest.raises(ValidationError, match="unknown sector flags"):
        OrganisationProfile(sectors={"hipaa"})
    with pytest.raises(ValidationError, match="time zone"):
        OrganisationProfile(gdpr_lead_authority_timezone="Europe/Dublinn")
    with pytest.raises(ValidationError, match="ISO 3166"):
        facts(residents={"California": 3})


def test_residence_codes_and_totals() -> None:
    incident = facts(residents={"us-ca": 600, "US-TX": 100, "CN": 300}, unknown_residence=5)
    assert incident.residents_of("US-CA") == 600
    # No "US" count given: the country sums its subdivisions.
    assert incident.residents_of("US") == 700
    assert incident.affected_total == 1005


def test_notification_window_is_the_earliest_applicable_individual_deadline() -> None:
    def obligation(audience: str, deadline: datetime | None, applies: bool) -> Obligation:
        return Obligation(
            regime="x",
            audience=audience,
            phase="initial",
            deadline=deadline,
            deadline_rule="r",
            applies=applies,
            reason="r",
            content_fields=[],
            citation="c [✓]",
            timezone="UTC",
        )

    early, mid, late = T, T + timedelta(days=1), T + timedelta(days=2)
    obligations = [
        obligation("regulator", early, True),
        obligation("individuals", early, False),
        obligation("individuals", late, True),
        obligation("individuals", None, True),
        obligation("individuals", mid, True),
    ]
    assert notification_window(obligations) == mid
    assert notification_window(obligations[:2]) is None


def test_missing_anchor_gives_null_deadline_naming_the_anchor() -> None:
    anchors = {"aware": T, "determined": None}
    org = OrganisationProfile(sectors={"nydfs-regulated"})
    result = evaluate(facts(anchors=anchors), [RULES["us-nydfs"]], org)
    nydfs = pick(result, "us-nydfs", "regulator")
    assert nydfs.applies
    assert nydfs.deadline is None
    assert nydfs.deadline_rule == "72 hours after determined; anchor 'determined' not known yet"


def test_no_anchor_at_all_assumes_in_force() -> None:
    result = evaluate(facts(anchors={}), [RULES["policy"]], OrganisationProfile())
    policy = pick(result, "policy", "individuals")
    assert policy.applies and policy.deadline is None
    assert "assumed in force" in policy.reason
    assert "anchor 'aware' not known yet" in policy.deadline_rule


def test_open_terms_for_individuals_carry_the_policy_working_limit() -> None:
    result = evaluate(facts(), [RULES["policy"], RULES["cn-pipl"]], OrganisationProfile())
    individuals = pick(result, "cn-pipl", "individuals")
    assert individuals.deadline is None
    assert individuals.deadline_rule.startswith("immediately, from aware: no fixed deadline")
    assert individuals.deadline_rule.endswith("working limit: policy deadline 2026-12-20T07:00:00Z")
    regulator = pick(result, "cn-pipl", "regulator")
    assert "working limit" not in regulator.deadline_rule


def test_policy_given_without_policy_regime_is_an_error() -> None:
    with pytest.raises(ValueError, match="no policy regime"):
        evaluate(
            facts(),
            [RULES["cn-pipl"]],
            OrganisationProfile(),
            load_policy(EXAMPLES / "operator-a.yaml"),
        )


def test_nobody_affected_means_no_policy_notice() -> None:
    result = evaluate(facts(residents={}), [RULES["policy"]], OrganisationProfile())
    assert not pick(result, "policy", "individuals").applies
    assert pick(result, "policy", "individuals").reason == "nobody affected"


# --- the operators' policy profiles ----------------------------------------------------------


def test_operator_a_keeps_its_30_day_promise_and_channels() -> None:
    policy = load_policy(EXAMPLES / "operator-a.yaml")
    result = evaluate(facts(), [RULES["policy"]], OrganisationProfile(), policy)
    individuals = pick(result, "policy", "individuals")
    assert individuals.deadline == T + timedelta(days=30)
    assert "push → email → phone → letter" in individuals.reason
    assert individuals.content_fields == ["F1", "F5", "F6", "F7", "F8"]
    assert "Operator A privacy policy §VI.5" in individuals.citation
    assert individuals.substitute_notice is not None
    assert "public announcement" in individuals.substitute_notice
    assert pick(result, "policy", "regulator").applies


def test_a_configured_window_moves_the_policy_deadline(tmp_path: Path) -> None:
    path = tmp_path / "seven.yaml"
    path.write_text("window_days: 7\nannouncement_fallback: false\n", encoding="utf-8")
    result = evaluate(facts(), [RULES["policy"]], OrganisationProfile(), load_policy(path))
    individuals = pick(result, "policy", "individuals")
    assert individuals.deadline == T + timedelta(days=7)
    assert individuals.deadline_rule == "7 calendar days after aware"
    assert individuals.substitute_notice is None


def test_operator_b_promises_promptly_without_a_fixed_instant() -> None:
    policy = load_policy(EXAMPLES / "operator-b.yaml")
    result = evaluate(facts(), [RULES["policy"], RULES["cn-pipl"]], OrganisationProfile(), policy)
    individuals = pick(result, "policy", "individuals")
    assert individuals.applies and individuals.deadline is None
    assert individuals.deadline_rule == "promptly, from aware: no fixed deadline"
    assert "push → email → sms → phone → letter" in individuals.reason
    # No policy instant, so no working limit for the open legal terms either.
    assert "working limit" not in pick(result, "cn-pipl", "individuals").deadline_rule
    assert notification_window(result) is None


def test_operator_c_does_not_promise_regulator_reporting() -> None:
    policy = load_policy(EXAMPLES / "operator-c.yaml")
    result = evaluate(facts(), [RULES["policy"]], OrganisationProfile(), policy)
    regulator = pick(result, "policy", "regulator")
    assert not regulator.applies
    assert regulator.reason == "the operator-c policy does not promise reporting to regulators"
    individuals = pick(result, "policy", "individuals")
    assert individuals.content_fields == []
    assert "channels email)" in individuals.reason


def test_policy_uses_the_operators_time_zone() -> None:
    org = OrganisationProfile(timezone="Asia/Shanghai")
    result = evaluate(facts(), [RULES["policy"]], org)
    assert pick(result, "policy", "individuals").timezone == "Asia/Shanghai"
