"""The deadline watchdog: warnings at each level of a deadline's window and when overdue,
each once, to on-call by email, and none for a deadline already met."""

from __future__ import annotations

from datetime import timedelta

import pytest

from breachflow.flows.assess.assessment import assess
from breachflow.flows.report.filing import due, file_reports
from breachflow.flows.report.submission import record_submission
from breachflow.flows.watchdog import deadline_watchdog
from breachflow.models import commands, runtime
from breachflow.models.base import utcnow
from tests.flows.test_incident_flow import timeline_kinds
from tests.testkit.factories import people, seed_incident

pytestmark = pytest.mark.usefixtures("prefect_api")


@pytest.fixture
def oncall(live_smtp, monkeypatch):
    monkeypatch.setenv("BREACH_ONCALL_EMAILS", '["oncall@example.com"]')
    runtime.reset()
    return live_smtp


def _set_aware(db, key: str, hours_ago: float) -> None:
    """Move the clock anchor and re-assess, as `breach update` + `breach assess` would."""
    aware = utcnow().replace(microsecond=0) - timedelta(hours=hours_ago)
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        changes = {"aware_at": aware, "detected_at": aware - timedelta(hours=1)}
        commands.update_incident(session, incident, "alice", changes)
        assess(session, incident, "alice", runtime.settings())


def test_each_level_of_the_gdpr_window_is_warned_once_and_skipped_levels_stay_silent(db, oncall):
    key = seed_incident(db, runtime.settings(), people(4))  # GB residents: the ICO, 72 h
    _set_aware(db, key, hours_ago=40)  # 56% of 72 h gone

    first = deadline_watchdog()
    assert [(a.incident_key, a.deadline, a.level) for a in first.alerts] == [
        (key, "uk-gdpr regulator initial", "50%")
    ]
    assert first.undelivered == []
    mail = oncall.by_recipient()["oncall@example.com"]
    assert len(mail) == 1 and "uk-gdpr regulator initial is 50% gone" in mail[0].get_content()
    assert deadline_watchdog().alerts == []  # nothing new: nothing said again
    assert len(oncall.received) == 1

    _set_aware(db, key, hours_ago=70)  # 97%: 75% was passed meanwhile, 90% is the news
    assert [a.level for a in deadline_watchdog().alerts] == ["90%"]
    assert deadline_watchdog().alerts == []
    assert timeline_kinds(db, key).count("deadline.warning") == 2


def test_overdue_is_warned_once_and_a_met_deadline_is_not_watched(db, oncall):
    key = seed_incident(db, runtime.settings(), people(4))
    _set_aware(db, key, hours_ago=80)  # the ICO's 72 h are over

    assert [(a.deadline, a.level) for a in deadline_watchdog().alerts] == [
        ("uk-gdpr regulator initial", "overdue")
    ]
    assert deadline_watchdog().alerts == []

    with db.unit_of_work() as session:  # the report is filed (late, with its reasons)
        incident = commands.get_incident(session, key)
        file_reports(session, incident, due(session, incident), "alice")
    from breachflow.flows.report.submission import give_delay_reason

    give_delay_reason(key, "uk-gdpr", "initial", "Forensics took longer.", "alice")
    record_submission(key, "uk-gdpr", "initial", reference="ICO-1", at=utcnow(), actor="bob")
    _set_aware(db, key, hours_ago=24 * 27)  # 90% of the 30-day notice window gone
    alerts = deadline_watchdog().alerts
    assert {a.deadline for a in alerts} == {"policy individuals initial"}
