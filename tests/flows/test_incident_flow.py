"""The response flow end to end: a real Prefect run, a real SMTP server, a real database."""

from __future__ import annotations

import json
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from breachflow.flows.incident import incident_response
from breachflow.models import commands, ledger, runtime
from breachflow.models.errors import InvalidInput
from breachflow.models.notification import Notification
from breachflow.models.timeline import TimelineEvent, verify_chain
from tests.testkit.factories import HEADINGS, people, seed_incident

pytestmark = pytest.mark.usefixtures("prefect_api")


def timeline_kinds(db, key: str) -> list[str]:
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        return list(
            session.scalars(
                select(TimelineEvent.kind)
                .where(TimelineEvent.incident_id == incident.id)
                .order_by(TimelineEvent.seq)
            )
        )


def test_every_reachable_person_gets_one_complete_notice_in_their_locale(db, settings, live_smtp):
    """37 reachable people get one notice each, in their language, with every section."""
    persons = people(40, broken_every=13)  # 3 people have an address without '@'
    key = seed_incident(db, settings, persons)

    summary = incident_response(key, requested_by="test")

    reachable = {p.email: p for p in persons if "@" in p.email}
    received = live_smtp.by_recipient()
    assert set(received) == set(reachable)
    for address, messages in received.items():
        assert len(messages) == 1, address
        message, person = messages[0], reachable[address]
        assert message["Content-Language"] == person.locale
        text = message.get_body(("plain",)).get_content()
        html = message.get_body(("html",)).get_content()
        for heading in HEADINGS[person.locale]["text"]:
            assert heading in text
        assert person.name in text
        assert key in text and key in html
        # Times as the person's clocks show them: Beijing time in China, London's in the UK.
        zone = "Asia/Shanghai" if person.country == "CN" else "Europe/London"
        with db.unit_of_work() as session:
            incident = commands.get_incident(session, key)
            detected = incident.detected_at.astimezone(ZoneInfo(zone))
        offset = "UTC+08:00" if person.country == "CN" else "UTC+00:00"
        assert detected.strftime("%H:%M") in text and offset in text, (person.country, text)
        assert message["Message-ID"].endswith("@example.com>")
        # It invites a reply: replies go to the contact point, not the sending mailbox.
        assert message["Reply-To"].addresses[0].addr_spec == settings.contact_point
    assert summary.state == "reporting"  # the reports are for a person to file
    assert f"breach report submitted {key} uk-gdpr --phase initial" in summary.waiting_for
    assert (summary.notified, summary.unreachable) == (37, 3)
    assert list(summary.unreachable_reasons.values()) == [3]
    assert "@-sign" in next(iter(summary.unreachable_reasons))
    # GB residents: the ICO's initial report (counts, F4) and the supplementary one after
    # notification, which says how many were told (F12).
    initial = settings.reports / f"{key}-uk-gdpr-initial.json"
    assert json.loads(initial.read_text(encoding="utf-8"))["fields"]["F4"]["affected"] == 40
    later = json.loads((settings.reports / f"{key}-uk-gdpr-supplementary.json").read_text("utf-8"))
    assert later["fields"]["F12"]["individuals"]["notified"] == 37


def test_the_timeline_tells_the_whole_story_and_verifies(db, settings, live_smtp):
    """Declaration, import, each step's start and end, notices, report and closure."""
    key = seed_incident(db, settings, people(6))
    incident_response(key, requested_by="test")
    kinds = timeline_kinds(db, key)
    expected_in_order = [
        "incident.declared",
        "notice.set",
        "subjects.imported",
        "run.started",
        "step.started",
        "assessment.recorded",
        "step.finished",
        "step.started",
        "notices.queued",
        "notices.batch_sent",
        "notices.finished",
        "step.finished",
        "step.started",
        "report.written",
        "incident.state_changed",
        "step.finished",
        "run.finished",
    ]
    position = 0
    for kind in kinds:  # expected_in_order must appear as a subsequence
        if position < len(expected_in_order) and kind == expected_in_order[position]:
            position += 1
    assert position == len(expected_in_order), kinds
    states = [k for k in kinds if k == "incident.state_changed"]
    assert len(states) == 4  # assessed, notifying, notified, reporting: reports to file
    with db.unit_of_work() as session:
        check = verify_chain(session, commands.get_incident(session, key))
    assert check.ok and check.events == len(kinds)


def test_second_run_sends_nothing_and_says_so(db, settings, live_smtp):
    key = seed_incident(db, settings, people(10))
    incident_response(key, requested_by="test")
    first = len(live_smtp.received)

    before = len(timeline_kinds(db, key))
    again = incident_response(key, requested_by="test")

    assert len(live_smtp.received) == first == 10
    assert again.sent_this_run == 0 and again.notified == 10 and again.state == "reporting"
    added = timeline_kinds(db, key)[before:]
    assert added[0] == "run.started" and added[-1] == "run.finished"
    assert not [kind for kind in added if kind.startswith(("notices.", "report."))]


def test_temporary_refusals_are_retried_and_a_permanent_one_spares_the_rest(
    db, settings, live_smtp
):
    """451 twice then accepted: sent on the 3rd attempt. 550: failed, others unaffected."""
    persons = people(8)
    busy, gone = persons[0].email, persons[1].email
    live_smtp.script[busy] = [451, 451]
    live_smtp.always[gone] = 550
    key = seed_incident(db, settings, persons)

    summary = incident_response(key, requested_by="test")

    keys = runtime.vault()
    received = live_smtp.by_recipient()
    assert set(received) == {p.email for p in persons} - {gone}
    assert all(len(m) == 1 for m in received.values())
    assert live_smtp.attempts[busy] == 3
    with db.unit_of_work() as session:
        rows = {
            keys.decrypt("email", row.subject.email_enc): row
            for row in session.scalars(select(Notification).join(Notification.subject))
        }
    assert rows[busy].state == "sent" and rows[busy].attempts == 3
    assert rows[gone].state == "failed_permanent" and rows[gone].last_error.startswith("email: 550")
    assert gone not in rows[gone].last_error  # the server echoed it; the ledger must not
    assert summary.unreachable == 1


def test_a_mail_server_that_keeps_deferring_ends_in_give_up_not_a_hang(
    db, settings, live_smtp, monkeypatch
):
    monkeypatch.setenv("BREACH_MAX_ATTEMPTS", "3")
    from breachflow.models import runtime

    runtime.reset()
    persons = people(3)
    live_smtp.always[persons[0].email] = 421
    key = seed_incident(db, settings, persons)
    summary = incident_response(key, requested_by="test")
    assert live_smtp.attempts[persons[0].email] == 3
    assert summary.unreachable == 1
    assert next(iter(summary.unreachable_reasons)).startswith(
        "email: gave up after 3 attempts: 421"
    )


def test_running_without_notice_texts_fails_with_instructions_and_changes_nothing(
    db, settings, live_smtp
):
    key = seed_incident(db, settings, people(3), with_notice=False)
    with pytest.raises(InvalidInput, match="breach notice set"):
        incident_response(key, requested_by="test")
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        assert incident.state == "declared"
        assert ledger.counts(session, incident) == {}
    assert timeline_kinds(db, key)[-1] == "run.failed"
    assert live_smtp.received == []


def test_a_mail_server_outage_stops_the_run_loses_nobody_and_a_rerun_finishes(
    db, settings, smtp_server, monkeypatch
):
    """Server down: the run stops with the reason, nobody is written off or charged an
    attempt; once the server is back, the next run sends to everyone exactly once."""
    from breachflow.models import runtime
    from breachflow.models.errors import ProviderUnavailable
    from tests.conftest import free_port

    controller, handler = smtp_server
    monkeypatch.setenv("BREACH_NOTIFIER_MODE", "live")
    monkeypatch.setenv("BREACH_SMTP_URL", f"smtp://127.0.0.1:{free_port()}")  # nobody there
    runtime.reset()
    persons = people(5)
    key = seed_incident(db, settings, persons)

    with pytest.raises(ProviderUnavailable, match="Nothing was lost"):
        incident_response(key, requested_by="test")
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        assert incident.state == "notifying"
        assert ledger.counts(session, incident) == {"failed_temporary": 5}
        attempts = set(session.scalars(select(Notification.attempts)))
    assert attempts == {0}
    assert timeline_kinds(db, key)[-1] == "run.failed"

    monkeypatch.setenv("BREACH_SMTP_URL", f"smtp://127.0.0.1:{controller.port}")
    runtime.reset()
    summary = incident_response(key, requested_by="test")
    assert summary.state == "reporting" and summary.notified == 5
    assert sorted(handler.by_recipient()) == sorted(p.email for p in persons)


def test_closing_schedules_the_purge_and_purge_deletes_contacts_keeps_the_record(
    db, settings, monkeypatch
):
    """Retention 0 days: `breach purge` deletes every contact detail and the sandbox copies;
    counts, ledger states and a verifiable timeline remain."""
    from breachflow.flows.close.step import close_early, purge_due
    from breachflow.models.subject import Subject

    monkeypatch.setenv("BREACH_RETENTION_DAYS", "0")
    runtime.reset()
    key = seed_incident(db, settings, people(6))
    incident_response(key, requested_by="test")
    outbox = settings.outbox / "email"
    assert len(list(outbox.glob("*.eml"))) == 6
    assert purge_due("test:cron") == {}  # not closed yet: reports are still to file
    close_early(key, "cli:dpo", "Reports filed on paper; references in ticket DPO-9.")

    assert purge_due("test:cron") == {key: 6}
    assert purge_due("test:cron") == {}  # once only

    assert list(outbox.glob("*.eml")) == []
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        subjects = session.scalars(select(Subject)).all()
        assert all(
            s.name_enc is s.email_enc is s.phone_enc is s.email_index is s.phone_index is None
            for s in subjects
        )
        assert len(subjects) == 6 and ledger.counts(session, incident) == {"sent": 6}
        assert incident.purged_at is not None
        assert verify_chain(session, incident).ok
    assert timeline_kinds(db, key)[-3:] == [
        "incident.state_changed",
        "contacts.purge_scheduled",
        "contacts.purged",
    ]
