"""Runbooks for on-call: the checklist with owners and due times, steps done with
evidence, and the approval gate that holds notification back until a named person
approves the notice, across processes."""

from __future__ import annotations

import pytest
import yaml

from breachflow.flows.approve import runbook as runbooks
from breachflow.flows.incident import incident_response
from breachflow.models import commands, runtime
from breachflow.models.apikey import Role
from breachflow.models.base import utcnow
from breachflow.models.errors import Forbidden
from breachflow.models.incident import Severity
from breachflow.models.notice import parse_notice_texts
from tests.conftest import SQLITE_ONLY
from tests.flows.test_incident_flow import timeline_kinds
from tests.testkit.factories import EXAMPLE_NOTICE, people, seed_incident

pytestmark = pytest.mark.usefixtures("prefect_api")


@pytest.fixture
def gated(settings, monkeypatch):
    monkeypatch.setenv("BREACH_APPROVAL_GATES", '["notify"]')
    runtime.reset()
    return runtime.settings()


def test_notification_waits_for_the_approval_and_continues_once_approved_elsewhere(
    db, gated, live_smtp, breach
):
    persons = people(6)
    key = seed_incident(db, runtime.settings(), persons)

    first = incident_response(key, requested_by="test")
    assert first.state == "assessed" and live_smtp.received == []
    assert f"breach approve {key} notice" in first.waiting_for
    shown = breach("runbook", key)
    assert (
        "notification-approve-notice" in shown.stdout and "Notification waits for" in shown.stdout
    )
    again = incident_response(key, requested_by="test")  # a restart changes nothing
    assert again.state == "assessed" and live_smtp.received == []

    approved = breach("approve", key, "notice", "--note", "v1 checked against the facts")
    assert approved.returncode == 0, approved.stderr
    assert f"{key} is reporting" in approved.stdout  # the approval continued the response
    assert "People notified:   6" in approved.stdout
    assert len(live_smtp.received) == len(persons)
    kinds = timeline_kinds(db, key)
    assert kinds.count("approval.awaited") == 2 and kinds.count("approval.given") == 1
    assert kinds.index("approval.given") < kinds.index("notices.queued")


def test_new_notice_texts_need_a_new_approval(db, gated):
    key = seed_incident(db, gated, people(2))
    from breachflow.flows.approve import runbook

    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        runbook.approve(session, incident, "notice", "carol", "oncall", "v1 approved")
        assert runbook.waiting_for(session, incident, "notify") is None
        texts = yaml.safe_load(EXAMPLE_NOTICE.read_text(encoding="utf-8"))
        texts["en"]["remedies"] = "24 months of identity monitoring."
        commands.set_notice(session, incident, parse_notice_texts(texts), "dave")
        waiting = runbook.waiting_for(session, incident, "notify")
    assert waiting and "changed since the last approval" in waiting


#: Who gives each approval: the role that owns its step, and admins.
APPROVERS = {"notice": {Role.ADMIN, Role.ONCALL}, "closure": {Role.ADMIN, Role.COMPLIANCE}}


@SQLITE_ONLY
def test_an_approval_is_given_only_by_its_roles_and_its_step_never_marked_done(db, gated):
    """The role matrix of the gates, below every path (API, CLI, pages): a gated step is
    refused as a step to anyone, and its approval to every role outside the gate."""
    key = seed_incident(db, gated, people(1))
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        for gate in APPROVERS:
            step = runbooks.gate_step(runbooks.GATES[gate])
            assert step is not None
            with pytest.raises(Forbidden, match=f"breach approve {key} {gate}"):
                runbooks.mark_done(session, incident, step.id, "cli:root", note="done")
            for role in Role:
                if role in APPROVERS[gate]:
                    continue
                with pytest.raises(Forbidden, match=f"a {role} may not approve {gate}"):
                    runbooks.approve(session, incident, gate, f"key:{role}", role, None)
        assert runbooks.waiting_for(session, incident, "notify") is not None
        runbooks.approve(session, incident, "notice", "key:oncall", Role.ONCALL, None)
        assert runbooks.waiting_for(session, incident, "notify") is None
    assert timeline_kinds(db, key).count("approval.given") == 1


@SQLITE_ONLY
def test_whoever_set_the_notice_texts_cannot_also_approve_them(db, gated, monkeypatch):
    key = seed_incident(db, gated, people(1))
    texts = parse_notice_texts(yaml.safe_load(EXAMPLE_NOTICE.read_text(encoding="utf-8")))
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        texts["en"] = texts["en"].model_copy(update={"remedies": "Two years of monitoring."})
        commands.set_notice(session, incident, texts, "api-key:dana")
        with pytest.raises(Forbidden, match="four eyes"):
            runbooks.approve(session, incident, "notice", "api-key:dana", Role.ADMIN, None)
        assert runbooks.waiting_for(session, incident, "notify") is not None
    monkeypatch.setenv("BREACH_FOUR_EYES", "false")  # a team of one
    runtime.reset()
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        runbooks.approve(session, incident, "notice", "api-key:dana", Role.ADMIN, None)
        assert runbooks.waiting_for(session, incident, "notify") is None


@SQLITE_ONLY
def test_the_checklist_shows_owners_due_times_overdue_steps_and_kept_evidence(
    db, settings, breach, tmp_path
):
    key = seed_incident(db, settings, people(2), aware_days_ago=5)
    listed = breach("runbook", key)
    assert listed.returncode == 0, listed.stderr
    for phase in ("triage", "containment", "notification", "regulator-reporting", "closure"):
        assert phase in listed.stdout
    assert "OVERDUE" in listed.stdout  # e.g. the notice approval was due 2 days after aware

    refused = breach("step", key, "containment-preserve-evidence", "--done")
    assert refused.returncode == 1 and "needs evidence" in refused.stderr
    record = tmp_path / "custody.txt"
    record.write_text("disk image sha256 …, sealed by Erin")
    done = breach(
        "step", key, "containment-preserve-evidence", "--done", "--note", "imaged", "--evidence",
        str(record),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    kept = next((settings.home / "evidence" / key).iterdir())
    assert kept.read_text() == record.read_text()
    assert "done" in breach("runbook", key).stdout
    twice = breach(
        "step", key, "containment-preserve-evidence", "--done", "--evidence", str(record)
    )
    assert twice.returncode == 1 and "was done by" in twice.stderr
    assert "runbook.step_done" in timeline_kinds(db, key)


def _items(db, key: str) -> dict[str, runbooks.ChecklistItem]:
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        found = {item.step.id: item for item in runbooks.checklist(session, incident)}
        session.expunge_all()
        return found


def test_the_system_ticks_what_it_did_and_triage_does_not_apply_to_a_declared_incident(
    db, gated, breach
):
    """Once, right after declaring, 9 steps were OVERDUE: triage of alerts no alert
    opened, and the import, assessment and notice the system had already recorded."""
    key = seed_incident(db, gated, people(2), aware_days_ago=5)  # declared by a person
    incident_response(key, requested_by="test")  # assesses, then waits for the approval
    items = _items(db, key)
    now = utcnow()
    for step in ("triage-review-alerts", "triage-decide", "triage-set-clocks"):
        assert items[step].not_applicable and not items[step].overdue(now), step
    for step, kind in {
        "assessment-import-subjects": "subjects.imported",
        "assessment-first-assess": "assessment.recorded",
        "notification-write-texts": "notice.set",
    }.items():
        assert items[step].done_at is not None and kind in items[step].done_by, step
        assert not items[step].overdue(now)
    assert items["notification-run"].done_at is None  # nobody notified yet: still to do
    assert items["notification-approve-notice"].overdue(now)  # due 2 days after aware

    listed = breach("runbook", key).stdout
    assert "does not apply: declared by a person" in listed
    assert "subjects.imported, event #" in listed

    with db.unit_of_work() as session:  # an incident an alert opened is triaged
        opened = commands.declare(
            session, title="Alert", description="From the SIEM.", severity=Severity.HIGH,
            detected_at=utcnow(), aware_at=utcnow(), data_categories=["email"],
            actor="alert:siem", suspected=True,
        )  # fmt: skip
        alert_key = opened.key
    assert _items(db, alert_key)["triage-review-alerts"].not_applicable is None
