"""Closing: an incident is closed only when nothing it owes is open, or early by a named
person with a reason; every way there is on the timeline."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from breachflow.flows.approve import runbook as runbooks
from breachflow.flows.close.obligations import open_obligations
from breachflow.flows.close.step import close_early
from breachflow.flows.incident import incident_response
from breachflow.flows.report.submission import record_submission
from breachflow.flows.watchdog import deadline_watchdog
from breachflow.models import commands, runtime
from breachflow.models.announcement import Announcement
from breachflow.models.apikey import Role, create_key
from breachflow.models.base import utcnow
from breachflow.models.errors import InvalidInput
from breachflow.models.regulator_report import ReportState, reports
from breachflow.models.timeline import EventKind, TimelineEvent
from tests.api.test_callbacks import AppServer
from tests.conftest import free_port
from tests.testkit.factories import people, seed_incident

pytestmark = pytest.mark.usefixtures("prefect_api")
#: UK residents only: the ICO's reports are filed by a person and none waits for a clock.
UK = [p for p in people(8) if p.country == "GB"]


def _awaiting(db, key: str) -> list[tuple[str, str]]:
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        return [
            (r.regime, r.phase)
            for r in reports(session, incident.id)
            if r.state == ReportState.AWAITING_SUBMISSION
        ]


def _state_changes(db, key: str) -> list[tuple[str, dict]]:
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        events = session.scalars(
            select(TimelineEvent)
            .where(
                TimelineEvent.incident_id == incident.id,
                TimelineEvent.kind == EventKind.STATE_CHANGED,
            )
            .order_by(TimelineEvent.seq)
        )
        return [(e.actor, e.payload) for e in events]


def _file(key: str, regime: str, phase: str) -> None:
    record_submission(key, regime, phase, reference=f"REF-{phase}", at=utcnow(), actor="cli:dpo")


def test_notified_is_not_closed_while_a_report_is_unfiled_the_last_filing_closes_it(db, settings):
    key = seed_incident(db, settings, UK)
    summary = incident_response(key, requested_by="test")
    awaiting = _awaiting(db, key)
    assert len(awaiting) >= 2 and summary.notified == len(UK)
    assert summary.state == "reporting"
    for regime, phase in awaiting:
        assert f"breach report submitted {key} {regime} --phase {phase}" in summary.waiting_for
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        assert incident.closed_at is None and incident.purge_after is None

    again = incident_response(key, requested_by="test")  # a rerun does not close it either
    assert again.state == "reporting" and again.sent_this_run == 0

    for regime, phase in awaiting[:-1]:
        _file(key, regime, phase)
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        assert incident.state == "reporting"
        assert len(open_obligations(session, incident)) == 1
    _file(key, *awaiting[-1])
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        assert incident.state == "closed" and incident.purge_after is not None
    actor, change = _state_changes(db, key)[-1]
    assert (actor, change["from"], change["to"]) == ("cli:dpo", "reporting", "closed")


def test_the_closure_sign_off_gates_closing_when_it_is_on(db, settings, monkeypatch):
    monkeypatch.setenv("BREACH_APPROVAL_GATES", '["close"]')
    runtime.reset()
    key = seed_incident(db, settings, UK)
    incident_response(key, requested_by="test")
    for regime, phase in _awaiting(db, key):
        _file(key, regime, phase)
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        assert incident.state == "reporting"
        assert open_obligations(session, incident) == [
            "Verify the record and sign off the closure: a compliance or admin approves it"
            f" with `breach approve {key} closure`"
        ]
        runbooks.approve(
            session, incident, "closure", "cli:compliance-lead", "compliance", "verified"
        )
    assert incident_response(key, requested_by="test").state == "closed"


def test_an_announcement_still_up_keeps_it_open_and_the_watchdog_closes_it_after(db, settings):
    key = seed_incident(db, settings, UK)
    incident_response(key, requested_by="test")
    for regime, phase in _awaiting(db, key)[:-1]:
        _file(key, regime, phase)
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        session.add(
            Announcement(
                incident_id=incident.id, version=1, notice_version=1, locales=["en"],
                reason="test", sha256="0" * 64, ends_at=utcnow() + timedelta(days=90),
                created_by="test",
            )
        )  # fmt: skip
    _file(key, *_awaiting(db, key)[-1])
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        assert incident.state == "reporting"
        [still] = open_obligations(session, incident)
        assert still.startswith("the public announcement: stays up until")
        session.execute(
            Announcement.__table__.update().values(ends_at=utcnow() - timedelta(seconds=1))
        )
    deadline_watchdog()
    with db.unit_of_work() as session:
        assert commands.get_incident(session, key).state == "closed"
    assert _state_changes(db, key)[-1][0] == "watchdog"


def test_closing_early_needs_a_named_person_a_reason_and_records_what_was_open(db, settings):
    key = seed_incident(db, settings, UK)
    with pytest.raises(InvalidInput, match="only once everyone is notified"):
        close_early(key, "cli:dpo", "the regulator told us to stop")  # still declared
    incident_response(key, requested_by="test")
    with pytest.raises(InvalidInput, match="needs a reason"):
        close_early(key, "cli:dpo", "  done ")
    awaiting = _awaiting(db, key)

    with db.unit_of_work() as session:
        token = {
            role: create_key(session, f"{role}-key", role, "test")
            for role in (Role.RESPONDER, Role.ONCALL, Role.COMPLIANCE)
        }
    body = {"reason": "Filed on paper by the DPO on 2026-12-01; see ticket DPO-17."}
    with AppServer(free_port()) as server:
        url = f"{server.url}/api/v1/incidents/{key}/close"
        for role in (Role.RESPONDER, Role.ONCALL):
            refused = httpx.post(url, json=body, headers={"Authorization": f"Bearer {token[role]}"})
            assert refused.status_code == 403, role
        compliance = {"Authorization": f"Bearer {token[Role.COMPLIANCE]}"}
        page = httpx.Client(base_url=server.url)
        page.post("/ui/login", data={"key": token[Role.COMPLIANCE], "next": "/ui/"})
        shown = page.get(f"/ui/incidents/{key}").text
        assert "Open before it closes" in shown
        for regime, phase in awaiting:
            assert f"breach report submitted {key} {regime} --phase {phase}" in shown
        listed = httpx.get(f"{server.url}/api/v1/incidents/{key}", headers=compliance).json()
        assert listed["state"] == "reporting"
        assert len(listed["open_before_closing"]) == len(awaiting)
        short = httpx.post(url, json={"reason": "ok"}, headers=compliance)
        assert short.status_code == 422
        closed = httpx.post(url, json=body, headers=compliance)
        assert closed.status_code == 200, closed.text
        assert len(closed.json()["open_when_closed"]) == len(awaiting)
        again = httpx.post(url, json=body, headers=compliance)
        assert again.status_code == 422 and "closed" in again.json()["detail"]

    actor, change = _state_changes(db, key)[-1]
    assert actor == "api-key:compliance-key" and change["to"] == "closed"
    assert change["early"] is True and change["reason"] == body["reason"]
    assert len(change["open"]) == len(awaiting)
