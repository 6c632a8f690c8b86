"""The watchdog pages through PagerDuty and tells the incident channel on Slack (issue 18,
item 5), each through a local server speaking that service's wire format: one alert per
deadline (its levels raise it, never a second alert), resolved with the same key once the
deadline is met; throttling and outages retried; the channel told each stage in order."""

from __future__ import annotations

import pytest

from breachflow.flows.report.filing import due, file_reports
from breachflow.flows.report.submission import give_delay_reason, record_submission
from breachflow.flows.watchdog import deadline_watchdog, dedup_key
from breachflow.models import commands, runtime
from breachflow.models.base import utcnow
from tests.flows.test_watchdog import _set_aware
from tests.testkit.factories import people, seed_incident
from tests.testkit.staff_servers import StaffServers, staff_servers

pytestmark = pytest.mark.usefixtures("prefect_api")


@pytest.fixture
def staff(settings, monkeypatch) -> StaffServers:
    with staff_servers() as servers:
        monkeypatch.setenv("BREACH_PAGERDUTY_ROUTING_KEY", servers.routing_key)
        monkeypatch.setenv("BREACH_PAGERDUTY_URL", servers.pagerduty_url)
        monkeypatch.setenv("BREACH_SLACK_WEBHOOK_URL", servers.slack_url)
        runtime.reset()
        yield servers


def test_a_deadline_pages_once_per_level_on_one_alert_and_resolves_when_met(db, staff):
    key = seed_incident(db, runtime.settings(), people(4))  # GB residents: the ICO, 72 h
    _set_aware(db, key, hours_ago=40)  # 56% of 72 h gone
    staff.pagerduty_script = [429, 503]  # throttled, then down: both retried

    first = deadline_watchdog()
    assert first.undelivered == []
    ico = dedup_key(key, "uk-gdpr regulator initial")
    assert [(e["event_action"], e["dedup_key"]) for e in staff.events] == [("trigger", ico)]
    page = staff.events[0]["payload"]
    assert page["severity"] == "warning" and page["component"] == key
    assert "uk-gdpr regulator initial is 50%" in page["summary"]
    deadline_watchdog()
    assert len(staff.events) == 1  # nothing new: nothing paged again

    _set_aware(db, key, hours_ago=80)  # overdue: the same alert, raised to critical
    deadline_watchdog()
    assert [e["dedup_key"] for e in staff.events] == [ico, ico]
    assert staff.events[-1]["payload"]["severity"] == "critical"
    assert staff.open_alerts() == {ico}

    with db.unit_of_work() as session:  # the report is filed, late, with its reasons
        incident = commands.get_incident(session, key)
        file_reports(session, incident, due(session, incident), "alice")
    give_delay_reason(key, "uk-gdpr", "initial", "Forensics took longer.", "alice")
    record_submission(key, "uk-gdpr", "initial", reference="ICO-1", at=utcnow(), actor="bob")
    deadline_watchdog()
    assert staff.events[-1] == {
        "routing_key": staff.routing_key,
        "event_action": "resolve",
        "dedup_key": ico,
    }
    assert staff.open_alerts() == set() and staff.refused == []
    deadline_watchdog()
    assert staff.events[-1]["event_action"] == "resolve" and len(staff.events) == 3

    # The channel heard the stages and the warnings, in order, each once.
    said = staff.messages
    assert said[0].startswith(f"{key} declared by")
    assert f"{key}: uk-gdpr regulator initial is 50%" in "\n".join(said)
    assert f"{key}: uk-gdpr regulator initial is overdue" in "\n".join(said)
    assert len(said) == len(set(said))
    for person in people(4):
        assert person.email not in "\n".join(said)


def test_a_refused_page_is_reported_and_slack_waits_in_order(db, staff):
    key = seed_incident(db, runtime.settings(), people(2))
    _set_aware(db, key, hours_ago=40)
    staff.routing_key = "another-service-key-000000000000"  # ours is now wrong: 400
    staff.slack_script = [500, 500, 500, 500]  # Slack down for all four attempts

    run = deadline_watchdog()
    assert any(
        "PagerDuty answered 400" in line and "Invalid routing key" in line
        for line in run.undelivered
    )
    assert any("Slack answered 500" in line for line in run.undelivered)
    assert staff.messages == []

    run = deadline_watchdog()  # Slack is back: the channel catches up, oldest first
    assert staff.messages and staff.messages[0].startswith(f"{key} declared by")


def test_opsgenie_teams_and_the_signed_webhook_hear_the_same(db, staff, monkeypatch):
    monkeypatch.setenv("BREACH_OPSGENIE_API_KEY", staff.genie_key)
    monkeypatch.setenv("BREACH_OPSGENIE_URL", staff.opsgenie_url)
    monkeypatch.setenv("BREACH_TEAMS_WEBHOOK_URL", staff.teams_url)
    monkeypatch.setenv("BREACH_WEBHOOK_URL", staff.webhook_url)
    monkeypatch.setenv("BREACH_WEBHOOK_SECRET", staff.webhook_secret)
    runtime.reset()
    key = seed_incident(db, runtime.settings(), people(2))
    _set_aware(db, key, hours_ago=80)  # overdue at once

    assert deadline_watchdog().undelivered == []
    ico = dedup_key(key, "uk-gdpr regulator initial")
    assert staff.genie_alerts == {ico: "open"}
    assert staff.cards == staff.messages  # Teams hears the Slack lines, as cards
    events = staff.cloud_events
    seqs = [int(e.get_id().removeprefix(f"{key}/")) for e in events]  # the timeline's seq
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert {e.get_type() for e in events} >= {
        "io.breachflow.incident.declared",
        "io.breachflow.deadline.warning",
    }
    assert all(e.get_subject() == key and e.get_source() == "breachflow" for e in events)

    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        file_reports(session, incident, due(session, incident), "alice")
    give_delay_reason(key, "uk-gdpr", "initial", "Forensics took longer.", "alice")
    record_submission(key, "uk-gdpr", "initial", reference="ICO-1", at=utcnow(), actor="bob")
    deadline_watchdog()
    assert staff.genie_alerts == {ico: "closed"}


def test_an_outbound_webhook_is_never_sent_unsigned(settings, monkeypatch):
    monkeypatch.setenv("BREACH_WEBHOOK_URL", "http://127.0.0.1:9/hook")
    runtime.reset()
    with pytest.raises(ValueError, match="needs BREACH_WEBHOOK_SECRET"):
        runtime.settings()


def test_a_forecast_going_late_pages_on_one_alert_keyed_as_it_resolves(
    db, settings, staff, tmp_path, monkeypatch
):
    """The forecast's warning carries its text ("late by 7 h 20 min"), which changes; the
    page is keyed by the deadline's own name, the one its resolution looks for."""
    from sqlalchemy import select

    from breachflow.flows.watchdog import FORECAST_LATE
    from breachflow.models.watchdog import DeadlineWarning
    from tests.flows.notify.test_fallback import person, queue, seed
    from tests.flows.notify.test_forecast import _due_in

    key = seed(
        db, settings, tmp_path, [person(f"S{n}", phone=f"+4474001234{n:02d}") for n in range(30)]
    )
    queue(db, key)
    _due_in(db, key, hours=1)
    monkeypatch.setenv("BREACH_SMS_RATE_PER_SECOND", "0.001")  # 3.6 an hour: late
    runtime.reset()
    [alert] = [a for a in deadline_watchdog().alerts if a.level == FORECAST_LATE]
    [page] = [e for e in staff.events if e["payload"]["custom_details"]["level"] == FORECAST_LATE]
    assert page["payload"]["severity"] == "error" and "late by" in page["payload"]["summary"]
    with db.unit_of_work() as session:
        stored = session.scalars(select(DeadlineWarning.deadline)).all()
    assert page["dedup_key"] == alert.key == dedup_key(key, f"individual notice {FORECAST_LATE}")
    assert f"individual notice {FORECAST_LATE}" in stored  # what _resolved() matches on
