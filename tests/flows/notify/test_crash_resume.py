"""``kill -9`` during the send phase, then ``breach run`` again: nobody missed, nobody twice."""

from __future__ import annotations

import os
import subprocess
import time
from collections import Counter

from sqlalchemy import func, select

from breachflow.flows.incident import incident_response
from breachflow.models import commands, ledger, runtime
from breachflow.models.notification import Notification
from breachflow.models.timeline import TimelineEvent, verify_chain
from tests.conftest import BREACH
from tests.testkit.factories import people, seed_incident

BATCH = 100


def test_killed_mid_send_then_rerun_leaves_exactly_one_sent_row_per_person(
    db, settings, live_smtp, prefect_api, monkeypatch
):
    monkeypatch.setenv("BREACH_BATCH_SIZE", str(BATCH))
    runtime.reset()
    persons = people(600)
    key = seed_incident(db, settings, persons)
    live_smtp.delay = 0.01  # slow enough that the kill lands in the middle

    child = subprocess.Popen(
        [BREACH, "run", key],
        env={**os.environ, "PREFECT_API_URL": prefect_api},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    while len(live_smtp.received) < 250:
        if child.poll() is not None:
            raise AssertionError(f"child ended early: {child.stdout.read().decode()}")
        assert time.monotonic() < deadline, "the child never got to sending"
        time.sleep(0.01)
    child.kill()  # SIGKILL: no cleanup, no lease released
    child.wait()
    child.stdout.close()

    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        interrupted = ledger.counts(session, incident)
        assert incident.state == "notifying"
    # Killed in the middle of a batch: it stays leased to a process that no longer exists, and
    # so may the next one, claimed and rendered while the first was sent (never sent itself).
    assert BATCH <= interrupted.get("sending", 0) <= 2 * BATCH
    assert interrupted.get("sent", 0) + interrupted["sending"] < len(persons)

    summary = incident_response(key, requested_by="test-after-crash")

    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        rows_per_person = Counter(
            session.scalars(
                select(Notification.subject_id).where(Notification.incident_id == incident.id)
            )
        )
        states = ledger.counts(session, incident)
        resumed = session.scalar(
            select(func.count()).where(
                TimelineEvent.incident_id == incident.id, TimelineEvent.kind == "step.started"
            )
        )
        assert verify_chain(session, incident).ok
    assert set(rows_per_person.values()) == {1} and len(rows_per_person) == len(persons)
    assert states == {"sent": len(persons)}
    assert summary.state == "reporting" and summary.notified == len(persons)
    assert resumed >= 4  # assess, notify, notify again (resumed), report

    received = live_smtp.by_recipient()
    assert set(received) == {p.email for p in persons}
    duplicates = sum(len(m) - 1 for m in received.values())
    assert duplicates <= BATCH  # at most the batch that was in flight
    for messages in received.values():  # a resend carries the same Message-ID
        assert len({m["Message-ID"] for m in messages}) == 1


def test_two_runs_of_one_incident_at_once_tell_each_person_once(
    db, settings, live_smtp, prefect_api, monkeypatch
):
    """Two workers (say, two machines) on one incident: leases keep them off each other's rows."""
    monkeypatch.setenv("BREACH_BATCH_SIZE", "50")
    monkeypatch.setenv("BREACH_SMTP_POOL_SIZE", "1")
    runtime.reset()
    persons = people(400)
    key = seed_incident(db, settings, persons)
    live_smtp.delay = 0.04  # about 16 s through one connection: the second has time to start

    env = {**os.environ, "PREFECT_API_URL": prefect_api}

    def start() -> subprocess.Popen[str]:
        return subprocess.Popen([BREACH, "run", key], env=env, stdout=subprocess.PIPE, text=True)

    runs = [start()]
    deadline = time.monotonic() + 120
    while len(live_smtp.received) < 20:  # the first is mid-send: now the second joins
        assert time.monotonic() < deadline and runs[0].poll() is None
        time.sleep(0.01)
    runs.append(start())
    outputs = [run.communicate(timeout=240)[0] for run in runs]

    assert [run.returncode for run in runs] == [0, 0], outputs
    received = live_smtp.by_recipient()
    assert set(received) == {p.email for p in persons}
    assert all(len(messages) == 1 for messages in received.values())
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        assert ledger.counts(session, incident) == {"sent": len(persons)}
        batches = session.scalars(
            select(TimelineEvent.actor).where(
                TimelineEvent.incident_id == incident.id,
                TimelineEvent.kind == "notices.batch_sent",
            )
        ).all()
        assert verify_chain(session, incident).ok
    assert len(set(batches)) == 2  # both workers really sent batches


def test_greylisting_and_three_kills_mid_send_write_nobody_off(
    db, settings, live_smtp, prefect_api, monkeypatch
):
    """Every address is greylisted (451) when first tried, and the sender is SIGKILLed
    three times mid-send. Temporary failures are retried for the retry lifetime, and a
    lease lost to a crash costs no attempt: everyone ends sent, on email, exactly once in
    the ledger. (The usual 60 s greylist and 10 s first backoff, scaled down ten times.)"""
    monkeypatch.setenv("BREACH_BATCH_SIZE", "50")
    monkeypatch.setenv("BREACH_RETRY_BASE_SECONDS", "0.5")
    monkeypatch.setenv("BREACH_RETRY_MAX_SECONDS", "2")
    runtime.reset()
    persons = people(300)
    key = seed_incident(db, settings, persons)
    live_smtp.greylist_seconds = 6.0
    live_smtp.delay = 0.005
    env = {**os.environ, "PREFECT_API_URL": prefect_api}

    for kill_after in (60, 140, 220):  # RCPT commands seen, greylisted or not
        child = subprocess.Popen(
            [BREACH, "run", key], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 120
        while sum(live_smtp.attempts.values()) < kill_after:
            if child.poll() is not None:
                raise AssertionError(f"child ended early: {child.stdout.read().decode()}")
            assert time.monotonic() < deadline, "the child never got to sending"
            time.sleep(0.005)
        child.kill()
        child.wait()
        child.stdout.close()

    summary = incident_response(key, requested_by="test-after-greylisting")

    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        rows = session.scalars(
            select(Notification).where(Notification.incident_id == incident.id)
        ).all()
    assert {(row.channel, str(row.state)) for row in rows} == {("email", "sent")}
    assert len(rows) == len({row.subject_id for row in rows}) == len(persons)
    assert summary.notified == len(persons)
    assert max(live_smtp.attempts.values()) >= 2  # everyone met the greylist at least once
    received = live_smtp.by_recipient()
    assert set(received) == {p.email for p in persons}
    duplicates = sum(len(m) - 1 for m in received.values())
    assert duplicates <= 3 * 2 * 50  # at most what each killed process had leased
