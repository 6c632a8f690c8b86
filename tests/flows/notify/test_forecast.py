"""The forecast against the deadline: from the ledger's pending rows and the rates, on the
timeline when its verdict changes, and on-call warned once when it says late."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from breachflow.flows.notify.forecast import Verdict, forecast, span
from breachflow.flows.watchdog import FORECAST_LATE, deadline_watchdog
from breachflow.models import commands, runtime
from breachflow.models.base import utcnow
from breachflow.models.timeline import EventKind, TimelineEvent
from tests.flows.notify.test_fallback import person, queue, seed

PEOPLE = [person(f"S{n}", phone=f"+4474001234{n:02d}") for n in range(30)]


def _forecast(db, key: str):
    with db.unit_of_work() as session:
        return forecast(session, commands.get_incident(session, key), runtime.settings())


def _due_in(db, key: str, hours: float) -> None:
    with db.unit_of_work() as session:
        commands.get_incident(session, key).notice_deadline = utcnow() + timedelta(hours=hours)


def _verdicts_on_the_timeline(db, key: str) -> list[str]:
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        payloads = session.scalars(
            select(TimelineEvent.payload)
            .where(
                TimelineEvent.incident_id == incident.id,
                TimelineEvent.kind == EventKind.FORECAST_CHANGED,
            )
            .order_by(TimelineEvent.seq)
        ).all()
    return [p["verdict"] for p in payloads]


def test_the_forecast_flips_to_late_when_a_rate_is_lowered(db, settings, tmp_path, monkeypatch):
    key = seed(db, settings, tmp_path, PEOPLE)
    assert _forecast(db, key).verdict is Verdict.NOT_STARTED
    queue(db, key)  # thirty people on SMS, the only contact they gave
    _due_in(db, key, hours=1)

    ahead = _forecast(db, key)
    assert ahead.verdict is Verdict.ON_TRACK  # 100 SMS a second: under a second
    [sms] = ahead.channels
    assert (sms.channel, sms.pending, sms.rate_from) == ("sms", 30, "configured")
    assert ahead.text().endswith(": on track")

    monkeypatch.setenv("BREACH_SMS_RATE_PER_SECOND", "0.001")  # 3.6 an hour
    runtime.reset()
    ahead = _forecast(db, key)
    assert ahead.verdict is Verdict.LATE
    assert ahead.finishes_at - ahead.at == timedelta(hours=30 / 3.6)
    assert (
        ahead.text() == "30 to send, finishes in 8 h 20 min; deadline in 59 min: late by 7 h 20 min"
    )


def test_the_watchdog_warns_once_when_the_forecast_goes_late(db, settings, tmp_path, monkeypatch):
    monkeypatch.setenv("BREACH_ONCALL_EMAILS", '["oncall@example.com"]')
    runtime.reset()
    key = seed(db, settings, tmp_path, PEOPLE)
    queue(db, key)
    _due_in(db, key, hours=1)

    assert [a for a in deadline_watchdog().alerts if a.level == FORECAST_LATE] == []
    assert _verdicts_on_the_timeline(db, key) == ["on track"]

    monkeypatch.setenv("BREACH_SMS_RATE_PER_SECOND", "0.001")
    runtime.reset()
    [alert] = [a for a in deadline_watchdog().alerts if a.level == FORECAST_LATE]
    assert alert.incident_key == key and "late by" in alert.deadline
    assert [a for a in deadline_watchdog().alerts if a.level == FORECAST_LATE] == []  # once
    assert _verdicts_on_the_timeline(db, key) == ["on track", "late"]
    warning = list(settings.outbox.glob("email/*.eml"))
    assert any("forecast late" in path.read_text() for path in warning)

    monkeypatch.setenv("BREACH_SMS_RATE_PER_SECOND", "100")
    runtime.reset()
    deadline_watchdog()
    assert _verdicts_on_the_timeline(db, key) == ["on track", "late", "on track"]


def test_durations_read_at_the_precision_that_matters() -> None:
    assert span(timedelta(days=3, hours=4, minutes=10)) == "3 d 4 h"
    assert span(timedelta(days=12)) == "12 d"
    assert span(timedelta(hours=5, minutes=10)) == "5 h 10 min"
    assert span(timedelta(minutes=12, seconds=30)) == "12 min"
    assert span(timedelta(seconds=-5)) == "0 min"
