"""Reports to regulators: every required field, on time, by email with the PDF or by a
person on a portal, and never filed late without the reasons for the delay."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from breachflow.flows.assess.assessment import assess
from breachflow.flows.incident import incident_response
from breachflow.flows.report.filing import due, file_reports, start_waiting
from breachflow.flows.report.submission import (
    give_delay_reason,
    record_acknowledgement,
    record_submission,
)
from breachflow.models import commands, runtime
from breachflow.models.base import utcnow
from breachflow.models.errors import InvalidInput
from breachflow.models.regulator_report import ReportState, SubmissionMode, reports
from breachflow.rules import RULES_DIR
from tests.conftest import SQLITE_ONLY
from tests.testkit.factories import EXAMPLE_NOTICE, Person, people, seed_incident

EU_AND_CHINA = [
    Person(f"S{n:04d}", f"Person {n}", f"person{n}@example.de", "en", "DE") for n in range(1, 6)
] + [Person(f"S{n:04d}", f"张{n}", f"person{n}@example.cn", "zh-CN", "CN") for n in range(6, 11)]


@pytest.fixture
def cac_for_ten(settings, tmp_path, monkeypatch):
    """An operator established in China, under the CAC measures with the "relatively
    major" line at 10 people, not 1,000,000, so a test population reaches it (the rule is
    otherwise the shipped one)."""
    overrides = tmp_path / "rules"
    overrides.mkdir()
    data = yaml.safe_load((RULES_DIR / "cn-cac-2025.yaml").read_text(encoding="utf-8"))
    for obligation in data["obligations"]:
        obligation["when"]["count"]["value"] = 10
    (overrides / "cn-cac-2025.yaml").write_text(yaml.safe_dump(data, allow_unicode=True))
    monkeypatch.setenv("BREACH_RULES_OVERRIDES", str(overrides))
    monkeypatch.setenv("BREACH_HOME_JURISDICTIONS", '["CN"]')
    runtime.reset()
    return runtime.settings()


def _assess(db, config, key: str) -> None:
    with db.unit_of_work() as session:
        assess(session, commands.get_incident(session, key), "test", config)


def _reports(db, key: str):
    with db.unit_of_work() as session:
        found = reports(session, commands.get_incident(session, key).id)
        session.expunge_all()
    return {(r.regime, r.phase): r for r in found}


@pytest.mark.usefixtures("prefect_api")
def test_eu_and_chinese_residents_get_gdpr_pipl_and_cac_reports_by_email_with_their_pdf(
    db, cac_for_ten, live_smtp, monkeypatch
):
    monkeypatch.setenv(
        "BREACH_REGULATOR_EMAILS",
        # Established in China, not the EU: GDPR's report goes to the authority of each
        # member state with residents (here Germany), addressed by regime:PLACE.
        json.dumps({"eu-gdpr:DE": "dpa@authority.example.eu", "cn-pipl": "report@cac.example.cn"}),
    )
    runtime.reset()
    config = runtime.settings()
    key = seed_incident(db, config, EU_AND_CHINA)

    summary = incident_response(key, requested_by="test")
    # The CAC's summary report runs from the end of handling: the incident stays open.
    assert summary.state == "reporting" and "--handling-ended-at" in summary.waiting_for

    filed = _reports(db, key)
    for wanted in [
        ("eu-gdpr", "initial"),
        ("eu-gdpr", "supplementary"),
        ("cn-pipl", "initial"),
        ("cn-cac-2025", "initial"),
        ("cn-cac-2025", "supplementary"),
    ]:
        assert wanted in filed, sorted(filed)
    # The CAC's summary report runs from the end of handling, which is not known yet.
    assert filed["cn-cac-2025", "final"].state == ReportState.WAITING

    for (regime, phase), report in filed.items():
        if report.state == ReportState.WAITING:
            continue
        document = json.loads(Path(report.files["json"]).read_text(encoding="utf-8"))
        html = Path(report.files["html"]).read_text(encoding="utf-8")
        assert Path(report.files["pdf"]).read_bytes().startswith(b"%PDF")
        assert document["required_fields"], (regime, phase)
        for code in document["required_fields"]:
            assert document["fields"][code] not in (None, "", {}), (regime, phase, code)
            assert f'data-field="{code}"' in html, (regime, phase, code)
        assert document["fields"]["F4"]["affected"] == 10
        # Each person once in the residence table: its countries add up to everyone.
        rows = document["fields"]["F4"]["by_residence"]
        assert sum(row["people"] for row in rows if row["level"] == 0) == 10, rows
    # Chinese regimes are written in Chinese, from the Chinese notice texts.
    pipl = Path(filed["cn-pipl", "initial"].files["html"]).read_text(encoding="utf-8")
    assert 'lang="zh-CN"' in pipl
    assert "德国 (DE)" in pipl and "中国 (CN)" in pipl  # places named in the pack's language
    # After notification, the supplementary report carries its outcome (F12).
    supplementary = json.loads(
        Path(filed["eu-gdpr", "supplementary"].files["json"]).read_text(encoding="utf-8")
    )
    assert supplementary["fields"]["F12"]["individuals"]["notified"] == 10

    by_recipient = live_smtp.by_recipient()
    gdpr_mail = by_recipient["dpa@authority.example.eu"]
    assert len(gdpr_mail) == 2  # initial and supplementary, once each
    for message in gdpr_mail + by_recipient["report@cac.example.cn"]:
        attachments = list(message.iter_attachments())
        assert [a.get_content_type() for a in attachments] == ["application/pdf"]
        assert attachments[0].get_content().startswith(b"%PDF")
    assert filed["eu-gdpr", "initial"].state == ReportState.SUBMITTED
    assert filed["eu-gdpr", "initial"].reference == gdpr_mail[0]["Message-ID"]
    # The CAC's 4 hours from discovery (two days ago) are over: its pack is held, marked
    # late, until someone gives the reasons; it has no address, so a person files it.
    cac = filed["cn-cac-2025", "initial"]
    assert (cac.state, cac.late, cac.mode) == (ReportState.HELD_LATE, True, "manual")
    assert "已逾期" in Path(cac.files["html"]).read_text(encoding="utf-8")  # LATE, in Chinese
    assert filed["cn-cac-2025", "supplementary"].state == ReportState.AWAITING_SUBMISSION


def test_a_late_report_is_held_until_the_reasons_for_the_delay_are_given(db, settings):
    key = seed_incident(db, settings, people(4), aware_days_ago=5)  # GDPR's 72 h are over
    _assess(db, settings, key)
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        owed = [o for o in due(session, incident) if o.regime == "uk-gdpr"]
        file_reports(session, incident, owed, "test")
    report = _reports(db, key)["uk-gdpr", "initial"]
    assert report.state == ReportState.HELD_LATE and report.late
    assert "LATE" in Path(report.files["html"]).read_text(encoding="utf-8")

    with pytest.raises(InvalidInput, match="reasons for the delay"):
        record_submission(key, "uk-gdpr", "initial", reference="ICO-1", at=utcnow(), actor="bob")

    give_delay_reason(key, "uk-gdpr", "initial", "The forensic image took 4 days.", "alice")
    report = _reports(db, key)["uk-gdpr", "initial"]
    assert report.state == ReportState.AWAITING_SUBMISSION
    document = json.loads(Path(report.files["json"]).read_text(encoding="utf-8"))
    assert document["fields"]["F11"] == "The forensic image took 4 days."
    assert "The forensic image took 4 days." in Path(report.files["html"]).read_text("utf-8")

    # Times that could not have happened are refused: filed before the report was written,
    # acknowledged before it was filed, anything in the future.
    written = report.created_at
    for at, refused in [
        (written - timedelta(days=12), "cannot have been filed before"),
        (utcnow() + timedelta(hours=1), "in the future"),
    ]:
        with pytest.raises(InvalidInput, match=refused):
            record_submission(key, "uk-gdpr", "initial", reference="ICO-0", at=at, actor="bob")
    filed_at = utcnow()
    record_submission(key, "uk-gdpr", "initial", reference="ICO-2026-77", at=filed_at, actor="bob")
    with pytest.raises(InvalidInput, match="cannot have been acknowledged before"):
        record_acknowledgement(
            key, "uk-gdpr", "initial", at=filed_at - timedelta(seconds=1), actor="bob"
        )
    record_acknowledgement(key, "uk-gdpr", "initial", at=utcnow(), actor="bob")
    report = _reports(db, key)["uk-gdpr", "initial"]
    assert report.state == ReportState.ACKNOWLEDGED
    assert (report.reference, report.submitted_by) == ("ICO-2026-77", "bob")
    from tests.flows.test_incident_flow import timeline_kinds

    kinds = timeline_kinds(db, key)
    for kind in [
        "report.held_late",
        "report.delay_reason_given",
        "report.submitted",
        "report.acknowledged",
    ]:
        assert kind in kinds


def test_with_two_phases_open_a_filing_without_phase_is_refused_and_they_are_listed(db, settings):
    """Without --phase, a filing went to whichever report came first (the README's example
    filed the initial report, the next call the supplementary); with both awaiting
    submission it is refused, naming both."""
    key = seed_incident(db, settings, people(4))
    _assess(db, settings, key)
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        file_reports(session, incident, due(session, incident), "test")
    for phase in ("initial", "supplementary"):  # GDPR's report in phases: both owed now
        assert _reports(db, key)["uk-gdpr", phase].state == ReportState.AWAITING_SUBMISSION
    with pytest.raises(InvalidInput, match="more than one uk-gdpr report") as refused:
        record_submission(key, "uk-gdpr", None, reference="ICO-9", at=utcnow(), actor="bob")
    assert "uk-gdpr initial" in str(refused.value)
    assert "uk-gdpr supplementary" in str(refused.value) and "--phase" in str(refused.value)
    assert _reports(db, key)["uk-gdpr", "initial"].state == ReportState.AWAITING_SUBMISSION

    filed = record_submission(
        key, "uk-gdpr", "supplementary", reference="ICO-9", at=utcnow(), actor="bob"
    )
    assert (filed.phase, filed.state) == ("supplementary", ReportState.SUBMITTED)
    assert _reports(db, key)["uk-gdpr", "initial"].state == ReportState.AWAITING_SUBMISSION


@SQLITE_ONLY
def test_reports_cli_lists_deadlines_and_states_and_records_the_portal_filing(breach, db, settings):
    key = seed_incident(db, settings, people(4))
    _assess(db, settings, key)
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        file_reports(session, incident, due(session, incident), "test")

    listed = breach("reports", key)
    assert listed.returncode == 0, listed.stderr
    assert "uk-gdpr" in listed.stdout and "awaiting submission" in listed.stdout

    filed = breach(
        "report", "submitted", key, "uk-gdpr", "--phase", "initial", "--reference", "ICO-123"
    )
    assert filed.returncode == 0, filed.stderr
    assert "ICO-123" in filed.stdout
    shown = breach("show", key)
    assert "ICO-123" in shown.stdout and "submitted" in shown.stdout

    again = breach("report", "submitted", key, "uk-gdpr", "--phase", "initial", "--reference", "x")
    assert again.returncode == 1
    assert "nothing to submit" in again.stderr and "Traceback" not in again.stderr
    unknown = breach("report", "acknowledged", key, "us-hipaa")
    assert unknown.returncode == 1 and "has no us-hipaa" in unknown.stderr


def test_a_report_waits_for_its_clock_and_is_written_when_a_reassessment_starts_it(db, cac_for_ten):
    key = seed_incident(db, cac_for_ten, EU_AND_CHINA)
    _assess(db, cac_for_ten, key)
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        file_reports(session, incident, due(session, incident), "test")
    final = _reports(db, key)["cn-cac-2025", "final"]
    assert (final.state, final.deadline, final.files) == (ReportState.WAITING, None, {})

    ended = utcnow().replace(microsecond=0) - timedelta(days=1)
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        commands.update_incident(session, incident, "alice", {"handling_ended_at": ended})
        assess(session, incident, "alice", cac_for_ten)
        start_waiting(session, incident, "alice")
    final = _reports(db, key)["cn-cac-2025", "final"]
    assert final.state == ReportState.AWAITING_SUBMISSION
    assert final.deadline == ended + timedelta(days=30)
    assert Path(final.files["pdf"]).read_bytes().startswith(b"%PDF")


class _VisibleText(HTMLParser):
    """The words a reader sees: text outside <style>, and the title."""

    def __init__(self) -> None:
        super().__init__()
        self.words: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: object) -> None:
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if not self._in_style:
            self.words.append(data)


def _english_left(html: str, allowed: list[str]) -> list[str]:
    """Latin words in the visible text once names, codes and the organisation's own texts
    are taken out: what would be an English sentence of ours."""
    parser = _VisibleText()
    parser.feed(html)
    text = " ".join(parser.words)
    for phrase in sorted(allowed, key=len, reverse=True):
        text = text.replace(phrase, " ")
    codes = r"\b(F\d{1,2}|UTC|Breachflow|GB/T|INC-\d{4}-\d{4}|[A-Z]{2}(-[A-Z0-9]{1,3})?)\b"
    text = re.sub(codes, " ", text)
    return re.findall(r"[A-Za-z]{2,}", text)


def test_chinese_and_japanese_packs_are_wholly_in_the_regulators_language_and_zone(
    db, cac_for_ten, monkeypatch
):
    """PIPL, CAC and GB/T 35273 packs in Chinese, the APPI pack in Japanese: no English
    sentence of ours (the regime, the recipient, deadlines, data categories, the rights
    sentence), and every time in the regulator's zone with its offset."""
    config = cac_for_ten
    chinese = [
        Person(f"C{n:02d}", f"张{n}", f"c{n}@example.cn", "zh-CN", "CN") for n in range(1, 11)
    ]
    japanese = [
        Person(f"J{n:02d}", f"佐藤{n}", f"j{n}@example.jp", "en", "JP") for n in range(1, 4)
    ]
    key = seed_incident(
        db, config, chinese + japanese, data_categories=("email", "name", "financial")
    )
    _assess(db, config, key)
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        file_reports(session, incident, due(session, incident), "test")
        title, description = incident.title, incident.description
    filed = _reports(db, key)
    allowed = [config.organisation_name, config.contact_point, title, description, "example.cn"]
    packs = {
        (regime, phase): report
        for (regime, phase), report in filed.items()
        if regime in {"cn-pipl", "cn-cac-2025", "cn-gbt35273", "jp-appi"}
        and report.state != ReportState.WAITING
    }
    assert {regime for regime, _ in packs} == {"cn-pipl", "cn-cac-2025", "cn-gbt35273", "jp-appi"}
    for (regime, phase), report in packs.items():
        html = Path(report.files["html"]).read_text(encoding="utf-8")
        language = "ja" if regime == "jp-appi" else "zh-CN"
        assert f'<html lang="{language}">' in html, (regime, phase)
        # The Japanese pack quotes the organisation's English notice text (no ja one).
        texts = allowed + ([] if language == "zh-CN" else _notice_texts("en"))
        assert _english_left(html, texts) == [], (regime, phase)
        document = json.loads(Path(report.files["json"]).read_text(encoding="utf-8"))
        zone = "+09:00" if language == "ja" else "+08:00"
        assert document["fields"]["F2"]["aware_at"].endswith(zone), (regime, phase)
        assert f"(UTC{zone})" in html and " UTC<" not in html, (regime, phase)
    pipl = Path(packs["cn-pipl", "initial"].files["html"]).read_text(encoding="utf-8")
    assert "国家网信部门和履行个人信息保护职责的部门" in pipl  # the recipient, in Chinese
    assert "账户、银行卡或支付信息" in pipl  # the data category "financial"
    appi = Path(packs["jp-appi", "initial"].files["html"]).read_text(encoding="utf-8")
    assert "個人情報保護委員会（速報）" in appi and "速報" in appi


def _notice_texts(locale: str) -> list[str]:
    data = yaml.safe_load(EXAMPLE_NOTICE.read_text(encoding="utf-8"))[locale]
    return [str(value).strip() for value in data.values() if value]


@SQLITE_ONLY
def test_a_controller_outside_the_eu_reports_to_each_member_states_authority(
    breach, db, settings, monkeypatch
):
    """EDPB Guidelines 9/2022 para 73: no one-stop shop without an EU establishment. People
    in Germany, France and Ireland: three initial reports, each to its own authority, with
    where to file it; recording a filing must name which one."""
    monkeypatch.setenv("BREACH_HOME_JURISDICTIONS", '["US"]')
    # An address for the regime is not one for each of its member states' authorities.
    emails = {"eu-gdpr": "lead@dpa.example", "eu-gdpr:FR": "notifications@cnil.example"}
    monkeypatch.setenv("BREACH_REGULATOR_EMAILS", json.dumps(emails))
    runtime.reset()
    config = runtime.settings()
    persons = [
        Person(f"S{n:04d}", f"Person {n}", f"p{n}@example.eu", "en", country)
        for n, country in enumerate(["DE", "DE", "FR", "IE", "US"], start=1)
    ]
    key = seed_incident(db, config, persons)
    _assess(db, config, key)
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        owed = [o for o in due(session, incident) if (o.regime, o.phase) == ("eu-gdpr", "initial")]
        file_reports(session, incident, owed, "test")  # the initial ones: three packs
        filed = [r for r in reports(session, incident.id) if r.regime == "eu-gdpr"]
        session.expunge_all()
    initial = {r.recipient: r for r in filed if r.phase == "initial"}
    assert len(initial) == 3, sorted(initial)
    assert not any("lead supervisory authority" in name for name in initial)
    assert len({r.files["json"] for r in initial.values()}) == 3  # a pack each, none overwritten
    france = next(r for name, r in initial.items() if "CNIL" in name)
    document = json.loads(Path(france.files["json"]).read_text(encoding="utf-8"))
    assert document["place"] == "FR" and document["contact"]["url"].startswith("https://")
    assert document["confidence"] in ("~", "U")
    modes = {name: r.mode for name, r in initial.items()}
    assert [m for name, m in modes.items() if "CNIL" in name] == [SubmissionMode.EMAIL]
    assert sorted(modes.values()).count(SubmissionMode.MANUAL) == 2
    html = Path(france.files["html"]).read_text(encoding="utf-8")
    assert "Submit to" in html and document["contact"]["url"] in html
    assert "for counsel to review" in html
    # Each person counted in their own member state's report.
    assert {r.deadline for r in initial.values()} == {france.deadline}

    # Which authority a portal reference belongs to is the person's to say.
    with pytest.raises(InvalidInput, match="say which with --to") as refused:
        record_submission(key, "eu-gdpr", "initial", reference="X", at=utcnow(), actor="bob")
    assert all(name in str(refused.value) for name in initial)
    recorded = breach(
        "report", "submitted", key, "eu-gdpr", "--phase", "initial", "--to", "cnil",
        "--reference", "CNIL-2026-42", BREACH_HOME_JURISDICTIONS='["US"]',
    )  # fmt: skip
    assert recorded.returncode == 0, recorded.stderr
    states = {r.recipient: r.state for r in _all_reports(db, key) if r.phase == "initial"}
    assert [state for name, state in states.items() if "CNIL" in name] == [ReportState.SUBMITTED]
    assert sorted(states.values()).count(ReportState.AWAITING_SUBMISSION) == 2
    ambiguous = breach(
        "report", "submitted", key, "eu-gdpr", "--phase", "initial", "--to", "zz-nowhere",
        "--reference", "X", BREACH_HOME_JURISDICTIONS='["US"]',
    )  # fmt: skip
    assert ambiguous.returncode == 1 and "no eu-gdpr recipient matching" in ambiguous.stderr
    assert "Traceback" not in ambiguous.stderr


def _all_reports(db, key: str):
    with db.unit_of_work() as session:
        found = reports(session, commands.get_incident(session, key).id)
        session.expunge_all()
    return found


def test_a_financial_entitys_major_incident_gets_doras_initial_report_on_the_earlier_clock(
    db, monkeypatch
):
    """DORA Art 19 with RTS 2025/301 Art 5: 4 hours after classification as major and no
    later than 24 hours after awareness. Classified 22 hours after awareness, the 24-hour
    bound comes first; the report is filed with that deadline and says both clocks."""
    monkeypatch.setenv("BREACH_ORGANISATION_SECTORS", '["dora-financial-entity"]')
    monkeypatch.setenv("BREACH_HOME_JURISDICTIONS", '["DE"]')
    runtime.reset()
    config = runtime.settings()
    key = seed_incident(db, config, people(3), aware_days_ago=2)
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        aware = incident.aware_at
        classified = aware + timedelta(hours=2)  # 2 h + 4 h = 6 h, before the 24 h bound
        commands.update_incident(
            session, incident, "test", {"classified_major_at": classified, "risk": "high"}
        )
    _assess(db, config, key)
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        owed = [o for o in due(session, incident) if (o.regime, o.phase) == ("eu-dora", "initial")]
        initial = owed[0]
        assert initial.deadline == classified + timedelta(hours=4)
        assert "no later than 24 hours after aware" in initial.deadline_rule
        assert initial.title == "initial notification"
        file_reports(session, incident, owed, "test")
    filed = _reports(db, key)
    report = filed["eu-dora", "initial"]
    assert report.deadline == classified + timedelta(hours=4)
    assert len(report.deadline_rule) > 300  # the whole rule is kept, on either database
    assert report.deadline_rule == initial.deadline_rule

    # Reclassified later (22 h after awareness): re-assessed, the 24-hour bound governs.
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        late = aware + timedelta(hours=22)
        commands.update_incident(session, incident, "test", {"classified_major_at": late})
    _assess(db, config, key)
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        again = next(
            o for o in due(session, incident) if (o.regime, o.phase) == ("eu-dora", "initial")
        )
    assert again.deadline == aware + timedelta(hours=24)
    assert "the earliest applies: 24 hours after aware" in again.deadline_rule
