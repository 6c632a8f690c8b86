"""Loading the rule files: the shipped set is complete and cited, broken files are named."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from breachflow import shipped
from breachflow.rules import (
    RULES_DIR,
    Regime,
    RuleFileError,
    load_policy,
    load_rules,
    ruleset_fingerprint,
)
from breachflow.rules.policy import default_policy

#: Every US state, DC, Puerto Rico, Guam and the US Virgin Islands (issue 19).
US_JURISDICTIONS = [
    "al", "ak", "az", "ar", "ca", "co", "ct", "de", "dc", "fl", "ga", "hi", "id", "il", "in",
    "ia", "ks", "ky", "la", "me", "md", "ma", "mi", "mn", "ms", "mo", "mt", "ne", "nv", "nh",
    "nj", "nm", "ny", "nc", "nd", "oh", "ok", "or", "pa", "ri", "sc", "sd", "tn", "tx", "ut",
    "vt", "va", "wa", "wv", "wi", "wy", "pr", "gu", "vi",
]  # fmt: skip
REQUIRED = {
    "policy",
    *(f"us-{code}" for code in US_JURISDICTIONS),
    "us-hipaa",
    "us-nydfs",
    "us-sec-8k",
    # the EU and Europe
    "eu-gdpr",
    "eu-nis2",
    "eu-dora",
    "eu-cra",
    "uk-gdpr",
    "ch-fadp",
    "tr-kvkk",
    # Asia-Pacific
    "cn-pipl",
    "cn-cac-2025",
    "cn-gbt35273",
    "hk-pdpo",
    "tw-pdpa",
    "jp-appi",
    "kr-pipa",
    "sg-pdpa",
    "my-pdpa",
    "th-pdpa",
    "vn-pdpd",
    "id-pdp",
    "ph-dpa",
    "in-dpdp",
    "au-ndb",
    "nz-privacy",
    # the Middle East and Africa
    "sa-pdpl",
    "ae-pdpl",
    "il-privacy",
    "za-popia",
    "ng-ndpa",
    "ke-dpa",
    # the Americas
    "ca-pipeda",
    "br-lgpd",
    "mx-lfpdppp",
    "ar-pdpa",
    "co-habeas",
    "cl-pdp",
}
EXAMPLES = shipped("examples") / "policies"


@pytest.fixture(scope="module")
def regimes() -> list[Regime]:
    return load_rules()


def test_every_required_regime_ships_one_file_named_after_it(regimes: list[Regime]) -> None:
    assert len(US_JURISDICTIONS) == 54
    assert len(REQUIRED) - 1 >= 90  # the "at least 90 regimes", the policy aside
    assert {r.id for r in regimes} == REQUIRED
    assert regimes[0].id == "policy"
    for regime in regimes:
        assert (RULES_DIR / f"{regime.id}.yaml").is_file()


def test_every_fact_is_cited_with_a_confidence_mark(regimes: list[Regime]) -> None:
    for regime in regimes:
        citations = [regime.citation, regime.applicability.citation]
        citations += [o.citation for o in regime.obligations]
        citations += [e.citation for e in regime.exemptions]
        citations += [
            o.substitute_notice.citation for o in regime.obligations if o.substitute_notice
        ]
        for citation in citations:
            assert citation.confidence in {"✓", "~", "U"}, regime.id
            assert citation.text.strip(), regime.id
        for spec in regime.obligations:
            assert spec.content_fields or spec.audience == "controller", regime.id


def test_a_u_fact_is_rendered_as_an_overridable_default(regimes: list[Regime]) -> None:
    nydfs = next(r for r in regimes if r.id == "us-nydfs")
    assert nydfs.applicability.citation.render().endswith(
        "[U] — unverified default, operator may override"
    )
    assert nydfs.citation.render() == "23 NYCRR 500.17 [✓]"


def test_groups_used_by_a_file_travel_with_its_regime(regimes: list[Regime]) -> None:
    gdpr = next(r for r in regimes if r.id == "eu-gdpr")
    assert set(gdpr.groups) == {"EEA"}
    assert {"IE", "DE", "NO", "IS", "LI"} <= set(gdpr.groups["EEA"])
    assert len(gdpr.groups["EEA"]) == 30
    assert "GB" not in gdpr.groups["EEA"]


def test_regimes_round_trip_through_json(regimes: list[Regime]) -> None:
    for regime in regimes:
        dumped = regime.model_dump(mode="json")
        assert Regime.model_validate(dumped) == regime


def test_fingerprint_is_stable_and_order_independent(regimes: list[Regime]) -> None:
    fingerprint = ruleset_fingerprint(regimes)
    assert len(fingerprint) == 64
    assert int(fingerprint, 16) >= 0
    assert ruleset_fingerprint(load_rules()) == fingerprint
    assert ruleset_fingerprint(reversed(regimes)) == fingerprint
    snapshot = [Regime.model_validate(r.model_dump(mode="json")) for r in regimes]
    assert ruleset_fingerprint(snapshot) == fingerprint


def _copy_rules(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(RULES_DIR, target, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return target


def _edit(path: Path, change: Callable[[dict], object]) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")


def test_changing_a_rule_changes_the_fingerprint(tmp_path: Path, regimes: list[Regime]) -> None:
    directory = _copy_rules(tmp_path)

    def shorten(data: dict) -> None:
        data["obligations"][0]["deadline"]["amount"] = 48

    _edit(directory / "eu-gdpr.yaml", shorten)
    assert ruleset_fingerprint(load_rules(directory)) != ruleset_fingerprint(regimes)


def test_an_override_directory_replaces_a_file_and_adds_regimes(tmp_path: Path) -> None:
    overrides = tmp_path / "overrides"
    overrides.mkdir()
    shutil.copy(RULES_DIR / "us-nydfs.yaml", overrides / "us-nydfs.yaml")

    def narrow(data: dict) -> None:
        data["obligations"][0]["when"] = {"risk_at_least": "medium"}
        data["applicability"]["citation"] = {"text": "counsel's memo 12", "confidence": "~"}

    _edit(overrides / "us-nydfs.yaml", narrow)
    shutil.copy(RULES_DIR / "us-nydfs.yaml", overrides / "us-nydfs2.yaml")
    _edit(overrides / "us-nydfs2.yaml", lambda d: d.update(id="us-nydfs2"))
    regimes = {r.id: r for r in load_rules(overrides=overrides)}
    assert regimes["us-nydfs"].obligations[0].when is not None
    assert regimes["us-nydfs"].applicability.citation.confidence == "~"
    assert "us-nydfs2" in regimes
    assert len(regimes) == len(REQUIRED) + 1


def _broken(tmp_path: Path, name: str, change: Callable[[dict], object]) -> RuleFileError:
    directory = _copy_rules(tmp_path)
    _edit(directory / name, change)
    with pytest.raises(RuleFileError) as caught:
        load_rules(directory)
    assert caught.value.file == directory / name
    return caught.value


def test_unknown_unit_names_the_field(tmp_path: Path) -> None:
    def bad(data: dict) -> None:
        data["obligations"][0]["deadline"]["unit"] = "fortnights"

    error = _broken(tmp_path, "eu-gdpr.yaml", bad)
    assert error.field == "obligations.0.deadline.unit"
    assert "fortnights" in str(error)
    assert str(error).startswith(f"{error.file}: obligations.0.deadline.unit: ")


def test_misspelt_key_is_an_error_not_ignored(tmp_path: Path) -> None:
    def bad(data: dict) -> None:
        data["obligations"][0]["deadlnie"] = data["obligations"][0].pop("deadline")

    error = _broken(tmp_path, "us-wa.yaml", bad)
    assert error.field == "obligations.0.deadlnie"
    assert error.msg.startswith("Extra inputs are not permitted")
    assert "1 more error(s) at: obligations.0.deadline" in error.msg


def test_bare_tilde_confidence_is_refused(tmp_path: Path) -> None:
    # In YAML an unquoted ~ is null: the mark must be quoted.
    error = _broken(tmp_path, "us-co.yaml", lambda d: d["citation"].update(confidence=None))
    assert error.field == "citation.confidence"


def test_missing_citation_is_refused(tmp_path: Path) -> None:
    error = _broken(tmp_path, "sg-pdpa.yaml", lambda d: d["obligations"][1].pop("citation"))
    assert error.field == "obligations.1.citation"
    assert error.msg.startswith("Field required")


def test_unknown_content_code_is_refused(tmp_path: Path) -> None:
    error = _broken(
        tmp_path, "jp-appi.yaml", lambda d: d["obligations"][0].update(content_fields=["F15"])
    )
    assert error.field == "obligations.0.content_fields.0"


def test_unknown_sector_flag_is_refused(tmp_path: Path) -> None:
    error = _broken(
        tmp_path, "us-hipaa.yaml", lambda d: d["applicability"].update(sectors=["hipaa_covered"])
    )
    assert error.field == "applicability.sectors"
    assert "hipaa_covered" in error.msg


def test_unknown_place_or_group_is_refused(tmp_path: Path) -> None:
    error = _broken(
        tmp_path, "eu-gdpr.yaml", lambda d: d["applicability"].update(residence=["Europe"])
    )
    assert "'Europe' is neither an ISO 3166 code nor a known group" in error.msg


def test_unknown_time_zone_is_refused(tmp_path: Path) -> None:
    error = _broken(tmp_path, "jp-appi.yaml", lambda d: d.update(timezone="Asia/Tokio"))
    assert error.field == "timezone"
    assert "Asia/Tokio" in error.msg


def test_unknown_holiday_subdivision_is_refused(tmp_path: Path) -> None:
    calendar = {"country": "US", "subdivision": "XX"}
    error = _broken(tmp_path, "us-sec-8k.yaml", lambda d: d.update(holidays=calendar))
    assert error.field == "holidays"
    assert "XX" in error.msg


def test_business_days_without_holidays_are_refused(tmp_path: Path) -> None:
    error = _broken(tmp_path, "br-lgpd.yaml", lambda d: d.pop("holidays"))
    assert "business days need holidays" in error.msg


def test_amount_without_unit_is_refused(tmp_path: Path) -> None:
    error = _broken(tmp_path, "us-tx.yaml", lambda d: d["obligations"][0]["deadline"].pop("unit"))
    assert error.field == "obligations.0.deadline"
    assert "amount and unit" in error.msg


def test_after_must_name_an_obligation_of_the_regime(tmp_path: Path) -> None:
    def bad(data: dict) -> None:
        data["obligations"][1]["deadline"]["after"] = {"audience": "media"}

    error = _broken(tmp_path, "br-lgpd.yaml", bad)
    assert "after media/initial not found" in error.msg


def test_id_must_match_the_file_name(tmp_path: Path) -> None:
    error = _broken(tmp_path, "us-me.yaml", lambda d: d.update(id="us-maine"))
    assert error.field == "id"


def test_invalid_yaml_names_line_and_column(tmp_path: Path) -> None:
    directory = _copy_rules(tmp_path)
    (directory / "hk-pdpo.yaml").write_text("id: hk-pdpo\nname: [unclosed\n", encoding="utf-8")
    with pytest.raises(RuleFileError, match=r"hk-pdpo.yaml: \(file\): invalid YAML: line 3"):
        load_rules(directory)


def test_a_file_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    directory = _copy_rules(tmp_path)
    (directory / "au-ndb.yaml").write_text("- just\n- a list\n", encoding="utf-8")
    with pytest.raises(RuleFileError, match="expected a mapping"):
        load_rules(directory)


def test_a_missing_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RuleFileError, match="not a directory"):
        load_rules(tmp_path / "nowhere")


# --- policy profiles -----------------------------------------------------------------------


def test_default_policy_is_30_calendar_days_from_aware() -> None:
    policy = default_policy()
    assert (policy.window_days, policy.anchor) == (30, "aware")
    assert policy.announcement_fallback and policy.regulator_reporting
    assert policy.channels == ["push", "email", "sms", "phone", "letter"]


def test_operator_profiles_load_with_their_promises() -> None:
    a = load_policy(EXAMPLES / "operator-a.yaml")
    b = load_policy(EXAMPLES / "operator-b.yaml")
    c = load_policy(EXAMPLES / "operator-c.yaml")
    assert (a.window_days, a.channels) == (30, ["push", "email", "phone", "letter"])
    assert a.regulator_reporting and a.announcement_fallback
    assert "§VI.5" in a.citation.text
    assert (b.window_days, b.window_term) == (None, "promptly")
    assert b.channels == ["push", "email", "sms", "phone", "letter"]
    assert (c.channels, c.regulator_reporting, c.content_fields) == (["email"], False, [])


def test_a_profile_overrides_only_what_it_sets(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("name: short\nwindow_days: 10\n", encoding="utf-8")
    policy = load_policy(path)
    assert (policy.name, policy.window_days) == ("short", 10)
    assert policy.channels == default_policy().channels
    assert policy.citation == default_policy().citation


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("window_dayz: 10\n", "window_dayz"),
        ("window_days: 0\n", "window_days"),
        ("channels: [email, pigeon]\n", "channels.1"),
        ("channels: [email, email]\n", "channels"),
        ("channels: []\n", "channels"),
        ("citation: {text: my policy}\n", "citation.confidence"),
        ("anchor: lunchtime\n", "anchor"),
    ],
)
def test_a_bad_profile_names_file_and_field(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RuleFileError) as caught:
        load_policy(path)
    assert (caught.value.file, caught.value.field) == (path, field)


def test_a_missing_profile_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RuleFileError, match="cannot read"):
        load_policy(tmp_path / "absent.yaml")


def test_a_regime_in_its_authoritys_language_must_name_every_recipient_and_phase(
    tmp_path: Path,
) -> None:
    """Otherwise its pack would fall back to English for part of the page."""
    error = _broken(
        tmp_path,
        "cn-cac-2025.yaml",
        lambda d: d["in_language"]["phases"].pop("final"),
    )
    assert "in_language.phases has no 'final'" in error.msg
    error = _broken(
        tmp_path / "second",
        "jp-appi.yaml",
        lambda d: d["in_language"]["recipients"].pop("PPC (final report)"),
    )
    assert "no name for 'PPC (final report)'" in error.msg
