"""The fallback chain at the ledger: who starts where, who moves on, who is unreachable and why.

Everything runs on the real ledger functions in real transactions (SQLite, and PostgreSQL
when configured); people are imported from a CSV the way an operator imports them.
"""

from __future__ import annotations

import csv
import threading
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from breachflow import shipped
from breachflow.flows.assess.assessment import assess as assess_obligations
from breachflow.models import commands, ledger, runtime
from breachflow.models.base import utcnow
from breachflow.models.chain import DEFAULT_CHAIN, chain_for, parse_chain
from breachflow.models.delivery import (
    Channel,
    DeliveryResult,
    DeliveryStatus,
    ProviderEvent,
    ProviderEventStatus,
)
from breachflow.models.errors import InvalidInput
from breachflow.models.incident import Incident
from breachflow.models.notice import parse_notice_texts
from breachflow.models.notification import DeliveryReport, Notification, idempotency_key
from breachflow.models.subject import Subject
from tests.testkit.factories import EXAMPLE_NOTICE, declare_test_incident, run_import

CHAIN = list(DEFAULT_CHAIN)  # push, email, sms, voice, letter
WORKER = "test-host/1/abcdef01"
NOW_POLICY = ledger.RetryPolicy(max_attempts=3, base_seconds=0.0, max_seconds=0.0)
COLUMNS = ["subject_id", "name", "email", "phone", "push", "address", "locale", "country"]
TOKEN = "dK0001xQ:APA91b" + "Fq3z_x-9" * 12
BROKEN_EMAIL = "erin.at.example.com"


def person(subject_id: str, **contacts: str) -> dict[str, str]:
    return {"subject_id": subject_id, "name": f"Person {subject_id}", "locale": "en"} | contacts


def seed(db, settings, tmp_path: Path, rows: list[dict[str, str]]) -> str:
    """Declare an incident with notice texts and import ``rows``; returns its key."""
    path = tmp_path / "people.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, COLUMNS)
        writer.writeheader()
        writer.writerows({c: row.get(c, "") for c in COLUMNS} for row in rows)
    keys = runtime.vault()
    now = utcnow()
    with db.unit_of_work() as session:
        incident = declare_test_incident(session, "Fallback test", now)
        texts = parse_notice_texts(yaml.safe_load(EXAMPLE_NOTICE.read_text(encoding="utf-8")))
        commands.set_notice(session, incident, texts, "test:seed")
        key, incident_id = incident.key, incident.id
    report = run_import(db, keys, incident_id, path, tmp_path)
    assert report.new == len(rows), report.rejected
    return key


def ledger_rows(db, key: str) -> dict[str, list[Notification]]:
    """Each person's rows (by subject_id), oldest first."""
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        found = session.scalars(
            select(Notification)
            .where(Notification.incident_id == incident.id)
            .order_by(Notification.id)
        ).all()
    by_person: dict[str, list[Notification]] = {}
    for row in found:
        by_person.setdefault(row.subject.external_id, []).append(row)
    return by_person


def trail(rows: list[Notification]) -> list[tuple[str, str]]:
    return [(row.channel, str(row.state)) for row in rows]


def queue(db, key: str, chain: Sequence[Channel] = CHAIN, version: int = 1) -> dict[str, int]:
    with db.unit_of_work() as session:
        return dict(ledger.queue(session, commands.get_incident(session, key), chain, version))


def claim(db, key: str, channel: Channel) -> dict[str, int]:
    """Lease every due row of ``channel``; returns notification id by subject_id."""
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        leased = ledger.claim(session, incident, channel, WORKER, 100, 300)
        return {row.subject.external_id: row.id for row in leased}


def result(notification_id: int, status: DeliveryStatus, **fields: object) -> DeliveryResult:
    return DeliveryResult(notification_id=notification_id, status=status, **fields)  # type: ignore[arg-type]


def record(
    db, results: list[DeliveryResult], policy: ledger.RetryPolicy = NOW_POLICY
) -> dict[str, int]:
    with db.unit_of_work() as session:
        return dict(ledger.record_results(session, WORKER, results, policy, CHAIN))


def subject(db, key: str, subject_id: str) -> Subject:
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        found = session.scalar(
            select(Subject).where(
                Subject.incident_id == incident.id, Subject.external_id == subject_id
            )
        )
        assert found is not None
        return found


# --- queue: everyone starts somewhere, or is unreachable with the reason ----------------------


def test_queue_starts_each_person_on_their_first_usable_channel_and_keeps_the_unreachable(
    db, settings, tmp_path
):
    key = seed(
        db,
        settings,
        tmp_path,
        [
            person("A", push=TOKEN, email="a@example.com"),
            person("B", email="b@example.com", phone="+447400123402"),
            person("C", phone="+447400123403", address="1 High Street|London|SW1A 1AA"),
            person("D", address="2 Low Road|Leeds|LS1 1AA"),
            person("E", email=BROKEN_EMAIL),
            person("F", push="x", phone="12345", country="GB"),
        ],
    )

    assert queue(db, key) == {"push": 1, "email": 1, "sms": 1, "letter": 1, "unreachable": 2}

    rows = ledger_rows(db, key)
    assert {pid: trail(r) for pid, r in rows.items()} == {
        "A": [("push", "queued")],
        "B": [("email", "queued")],
        "C": [("sms", "queued")],
        "D": [("letter", "queued")],
        "E": [("none", "failed_permanent")],
        "F": [("none", "failed_permanent")],
    }
    e_reason = rows["E"][0].last_error
    assert e_reason.startswith("no channel left: email: invalid email address")
    assert e_reason.endswith("; no push token, phone number or postal address given")
    assert BROKEN_EMAIL not in e_reason and "erin" not in e_reason
    f_reason = rows["F"][0].last_error
    assert "push: invalid push token" in f_reason
    assert "sms: invalid phone number" in f_reason and "voice: invalid phone number" in f_reason
    assert f_reason.endswith("; no email address or postal address given")
    assert "12345" not in f_reason
    assert all(row.attempts == 0 for r in rows.values() for row in r)
    # The database computed the keys of the queued rows: the same as this process would,
    # so a resend from any machine carries the same Message-ID.
    for r in rows.values():
        for row in r:
            assert row.idempotency_key == idempotency_key(key, row.subject_id, row.channel, 1)

    # Queueing again adds nobody: everyone already has their row for this notice version.
    assert queue(db, key) == {}
    assert sum(len(r) for r in ledger_rows(db, key).values()) == 6

    # Another chain (and notice version): the same people start elsewhere.
    assert queue(db, key, [Channel.EMAIL, Channel.LETTER], version=2) == {
        "email": 2,
        "letter": 2,
        "unreachable": 2,
    }
    v2 = {
        pid: [r for r in rows if r.notice_version == 2]
        for pid, rows in ledger_rows(db, key).items()
    }
    assert {pid: trail(r) for pid, r in v2.items()} == {
        "A": [("email", "queued")],
        "B": [("email", "queued")],
        "C": [("letter", "queued")],
        "D": [("letter", "queued")],
        "E": [("none", "failed_permanent")],
        "F": [("none", "failed_permanent")],
    }
    assert v2["F"][0].last_error == "no channel left: no email address or postal address given"


# --- record_results: permanent failures move people on -----------------------------------------


def test_a_permanent_failure_opens_the_next_channel_in_the_same_transaction(db, settings, tmp_path):
    key = seed(db, settings, tmp_path, [person("G", email="g@example.com", phone="+447400123401")])
    queue(db, key)
    leased = claim(db, key, Channel.EMAIL)
    failure = result(leased["G"], DeliveryStatus.FAILED_PERMANENT, detail="550 5.1.1 User unknown")

    # A crash before the commit loses both the failure and the next row: nobody in between.
    with pytest.raises(RuntimeError), db.unit_of_work() as session:
        ledger.record_results(session, WORKER, [failure], NOW_POLICY, CHAIN)
        inside = sorted(
            tuple(r) for r in session.execute(select(Notification.channel, Notification.state))
        )
        raise RuntimeError("crash before commit")
    assert inside == [("email", "failed_permanent"), ("sms", "queued")]  # one transaction
    assert trail(ledger_rows(db, key)["G"]) == [("email", "sending")]

    assert record(db, [failure]) == {"failed_permanent": 1, "fallback": 1}
    rows = ledger_rows(db, key)["G"]
    assert trail(rows) == [("email", "failed_permanent"), ("sms", "queued")]
    assert rows[0].last_error == "email: 550 5.1.1 User unknown"
    assert rows[1].attempts == 0 and rows[1].lease_owner is None
    # Not a dead contact: the email address stays usable for a later notice.
    assert subject(db, key, "G").email_problem is None


def test_a_dead_contact_is_marked_so_no_later_notice_tries_it(db, settings, tmp_path):
    key = seed(
        db,
        settings,
        tmp_path,
        [person("H", push=TOKEN, email="h@example.com"), person("I", push=TOKEN + "I")],
    )
    queue(db, key)
    leased = claim(db, key, Channel.PUSH)
    dead = [
        result(
            n,
            DeliveryStatus.FAILED_PERMANENT,
            detail="push token not registered",
            contact_dead=True,
        )
        for n in leased.values()
    ]

    assert record(db, dead) == {"failed_permanent": 2, "fallback": 1}

    rows = ledger_rows(db, key)
    assert trail(rows["H"]) == [("push", "failed_permanent"), ("email", "queued")]
    assert trail(rows["I"]) == [("push", "failed_permanent")]
    assert rows["I"][0].last_error == (
        "push: push token not registered; no email address, phone number or postal address given"
    )
    assert "push token not registered" in (subject(db, key, "H").push_problem or "")
    assert subject(db, key, "H").email_problem is None

    # A corrected notice (version 2) is queued past the dead token.
    assert queue(db, key, version=2) == {"email": 1, "unreachable": 1}
    v2 = {pid: [r for r in rs if r.notice_version == 2] for pid, rs in ledger_rows(db, key).items()}
    assert trail(v2["H"]) == [("email", "queued")]
    assert trail(v2["I"]) == [("none", "failed_permanent")]
    assert "push token not registered" in v2["I"][0].last_error


def test_the_reason_for_a_dead_contact_names_its_channel_once(db, settings, tmp_path):
    key = seed(db, settings, tmp_path, [person("I", push=TOKEN)])
    queue(db, key)
    leased = claim(db, key, Channel.PUSH)
    record(
        db,
        [
            result(
                leased["I"],
                DeliveryStatus.FAILED_PERMANENT,
                detail="push token not registered",
                contact_dead=True,
            )
        ],
    )
    queue(db, key, version=2)
    [again] = [r for r in ledger_rows(db, key)["I"] if r.notice_version == 2]
    assert again.last_error == (
        "no channel left: push: push token not registered; "
        "no email address, phone number or postal address given"
    )


def test_a_temporary_failure_waits_at_least_as_long_as_the_provider_asked(db, settings, tmp_path):
    key = seed(db, settings, tmp_path, [person("J", email="j@example.com")])
    queue(db, key)
    leased = claim(db, key, Channel.EMAIL)
    before = utcnow()

    outcome = record(
        db,
        [result(leased["J"], DeliveryStatus.FAILED_TEMPORARY, detail="HTTP 429", retry_after=30)],
    )

    assert outcome == {"failed_temporary": 1}
    [row] = ledger_rows(db, key)["J"]
    assert row.state == "failed_temporary" and row.attempts == 1
    assert row.retry_at >= before + timedelta(seconds=30)
    assert row.lease_owner is None and row.last_error == "email: HTTP 429"
    assert claim(db, key, Channel.EMAIL) == {}  # not due yet
    with db.unit_of_work() as session:
        due = ledger.next_due(session, commands.get_incident(session, key), [Channel.EMAIL])
    assert due == row.retry_at


def test_running_out_of_attempts_is_permanent_and_falls_back(db, settings, tmp_path):
    key = seed(db, settings, tmp_path, [person("K", email="k@example.com", phone="+447400123404")])
    queue(db, key)
    policy = ledger.RetryPolicy(max_attempts=2, base_seconds=0.0, max_seconds=0.0)
    busy = "451 4.2.0 Mailbox busy"

    first = claim(db, key, Channel.EMAIL)
    assert record(
        db, [result(first["K"], DeliveryStatus.FAILED_TEMPORARY, detail=busy)], policy
    ) == {"failed_temporary": 1}
    second = claim(db, key, Channel.EMAIL)  # due again at once (no backoff in this policy)
    assert second == first
    outcome = record(
        db, [result(second["K"], DeliveryStatus.FAILED_TEMPORARY, detail=busy)], policy
    )

    assert outcome == {"failed_permanent": 1, "fallback": 1}
    rows = ledger_rows(db, key)["K"]
    assert trail(rows) == [("email", "failed_permanent"), ("sms", "queued")]
    assert rows[0].attempts == 2
    assert rows[0].last_error == f"email: gave up after 2 attempts: {busy}"


def test_a_lease_lost_to_our_own_crash_costs_the_person_no_attempt(db, settings, tmp_path):
    """A dispatcher dies holding a batch; another takes it over when the lease runs out.
    Three crashes, then a send: one attempt, the one that had an outcome."""
    key = seed(db, settings, tmp_path, [person("C", email="c@example.com")])
    queue(db, key)
    for crash in range(3):
        with db.unit_of_work() as session:
            incident = commands.get_incident(session, key)
            assert (
                len(ledger.claim(session, incident, Channel.EMAIL, f"dead/{crash}/x", 10, 0.0)) == 1
            )
        [row] = ledger_rows(db, key)["C"]
        assert (row.state, row.attempts) == ("sending", 0)  # claimed, never recorded: it died
    leased = claim(db, key, Channel.EMAIL)  # the lease has run out: taken over
    assert record(db, [result(leased["C"], DeliveryStatus.SENT, provider_message_id="m")]) == {
        "sent": 1
    }
    [row] = ledger_rows(db, key)["C"]
    assert (row.state, row.attempts) == ("sent", 1)


LIFETIME = ledger.RetryPolicy(
    max_attempts=None, base_seconds=0.0, max_seconds=0.0, lifetime_seconds=3600
)


def _age(db, notification_id: int, hours: float) -> None:
    """As if the row had been queued ``hours`` ago."""
    with db.unit_of_work() as session:
        row = session.get(Notification, notification_id)
        row.queued_at = utcnow() - timedelta(hours=hours)


def test_temporary_failures_are_retried_for_the_lifetime_not_a_count(db, settings, tmp_path):
    """Greylisting or a mailbox over quota answers 4xx again and again: the person is
    retried until the retry lifetime has passed, then (saying so) the next channel."""
    key = seed(db, settings, tmp_path, [person("G", email="g@example.com", phone="+447400123405")])
    queue(db, key)
    busy = "451 4.7.1 Greylisted, try again later"
    for _ in range(12):  # far more than any count-based policy would allow
        leased = claim(db, key, Channel.EMAIL)
        outcome = record(
            db, [result(leased["G"], DeliveryStatus.FAILED_TEMPORARY, detail=busy)], LIFETIME
        )
        assert outcome == {"failed_temporary": 1}
    [row] = ledger_rows(db, key)["G"]
    assert (row.state, row.attempts) == ("failed_temporary", 12)

    _age(db, row.id, hours=1.5)
    leased = claim(db, key, Channel.EMAIL)
    outcome = record(
        db, [result(leased["G"], DeliveryStatus.FAILED_TEMPORARY, detail=busy)], LIFETIME
    )
    assert outcome == {"failed_permanent": 1, "fallback": 1}
    rows = ledger_rows(db, key)["G"]
    assert trail(rows) == [("email", "failed_permanent"), ("sms", "queued")]
    assert rows[0].last_error == (
        f"email: gave up after 13 attempts over 1 h (the retry lifetime): {busy}"
    )


def test_the_last_retry_falls_at_the_end_of_the_lifetime_not_past_it(db, settings, tmp_path):
    key = seed(db, settings, tmp_path, [person("H", email="h@example.com")])
    queue(db, key)
    slow = ledger.RetryPolicy(None, base_seconds=7200, max_seconds=7200, lifetime_seconds=3600)
    leased = claim(db, key, Channel.EMAIL)
    record(db, [result(leased["H"], DeliveryStatus.FAILED_TEMPORARY, detail="421")], slow)
    [row] = ledger_rows(db, key)["H"]
    assert row.state == "failed_temporary"
    assert row.retry_at == row.queued_at + timedelta(hours=1)  # not 1-2 h of backoff later


def test_retrying_stops_a_margin_before_the_notice_deadline(db, settings, tmp_path):
    """However long the lifetime, the next channel must still have time before the
    deadline: trying stops ``deadline_margin`` before it, and the reason names the rule."""
    key = seed(db, settings, tmp_path, [person("D", email="d@example.com", phone="+447400123406")])
    queue(db, key)
    deadline = utcnow() + timedelta(hours=2)
    with db.unit_of_work() as session:
        commands.get_incident(session, key).notice_deadline = deadline
    near = ledger.RetryPolicy(
        None, 0.0, 0.0, lifetime_seconds=86_400, deadline_margin_seconds=3 * 3600
    )
    leased = claim(db, key, Channel.EMAIL)
    outcome = record(db, [result(leased["D"], DeliveryStatus.FAILED_TEMPORARY, detail="451")], near)
    assert outcome == {"failed_permanent": 1, "fallback": 1}
    rows = ledger_rows(db, key)["D"]
    assert trail(rows) == [("email", "failed_permanent"), ("sms", "queued")]
    assert rows[0].last_error == (
        f"email: gave up after 1 attempt, 3 h before the notice deadline"
        f" {deadline:%Y-%m-%d %H:%M} UTC: 451"
    )


def test_a_deferred_message_costs_no_attempt_however_often_it_happens(db, settings, tmp_path):
    key = seed(db, settings, tmp_path, [person("L", email="l@example.com")])
    queue(db, key)
    policy = ledger.RetryPolicy(max_attempts=2, base_seconds=0.0, max_seconds=0.0)
    for _ in range(4):  # more outages than the person has attempts
        leased = claim(db, key, Channel.EMAIL)
        assert list(leased) == ["L"]
        outcome = record(
            db, [result(leased["L"], DeliveryStatus.DEFERRED, detail="mail server down")], policy
        )
        assert outcome == {"deferred": 1}
        [row] = ledger_rows(db, key)["L"]
        assert row.state == "failed_temporary" and row.attempts == 0
        assert row.retry_at <= utcnow()
    leased = claim(db, key, Channel.EMAIL)
    assert record(db, [result(leased["L"], DeliveryStatus.SENT, provider_message_id="m1")]) == {
        "sent": 1
    }
    [row] = ledger_rows(db, key)["L"]
    assert (row.state, row.attempts) == ("sent", 1)


def test_a_result_for_a_row_whose_lease_was_lost_changes_nothing(db, settings, tmp_path):
    key = seed(db, settings, tmp_path, [person("M", email="m@example.com")])
    queue(db, key)
    leased = claim(db, key, Channel.EMAIL)
    with db.unit_of_work() as session:
        outcome = ledger.record_results(
            session,
            "another-host/2/00000000",
            [result(leased["M"], DeliveryStatus.FAILED_PERMANENT, detail="550")],
            NOW_POLICY,
            CHAIN,
        )
    assert dict(outcome) == {"lease_lost": 1}
    assert trail(ledger_rows(db, key)["M"]) == [("email", "sending")]


# --- per person, not per row -------------------------------------------------------------------


def test_people_and_reasons_count_persons_not_rows(db, settings, tmp_path):
    key = seed(
        db,
        settings,
        tmp_path,
        [
            person("N1", email="n1@example.com", phone="+447400123401"),  # email fails, sms sent
            person("N2", email="n2@example.com"),  # sent
            person("N3", email="n3@example.com", phone="+447400123403"),  # email fails, sms queued
            person("N4", email=BROKEN_EMAIL),  # unreachable from the start
            person("N5", email="n5@example.com"),  # email fails, nothing left
            person("N6", push=TOKEN, email="n6@example.com"),  # push fails, email fails
        ],
    )
    queue(db, key)
    emails = claim(db, key, Channel.EMAIL)
    record(
        db,
        [
            result(emails["N1"], DeliveryStatus.FAILED_PERMANENT, detail="550 5.1.1 User unknown"),
            result(emails["N2"], DeliveryStatus.SENT, provider_message_id="m2"),
            result(emails["N3"], DeliveryStatus.FAILED_PERMANENT, detail="550 5.1.1 User unknown"),
            result(emails["N5"], DeliveryStatus.FAILED_PERMANENT, detail="550 5.1.1 User unknown"),
        ],
    )
    pushes = claim(db, key, Channel.PUSH)
    record(db, [result(pushes["N6"], DeliveryStatus.FAILED_PERMANENT, detail="FCM 400")])
    emails = claim(db, key, Channel.EMAIL)
    assert list(emails) == ["N6"]
    record(db, [result(emails["N6"], DeliveryStatus.FAILED_PERMANENT, detail="552 mailbox full")])
    texts = claim(db, key, Channel.SMS)
    assert sorted(texts) == ["N1", "N3"]
    record(db, [result(texts["N1"], DeliveryStatus.SENT, provider_message_id="SM1")])
    with db.unit_of_work() as session:  # N3's SMS goes back to the queue (an outage)
        ledger.record_results(
            session, WORKER, [result(texts["N3"], DeliveryStatus.DEFERRED, detail="down")],
            NOW_POLICY, CHAIN,
        )  # fmt: skip

    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        people = ledger.people(session, incident)
        rows = ledger.counts(session, incident)
        reasons = ledger.unreachable_reasons(session, incident)
        unfinished = ledger.unfinished(session, incident)

    assert (people.affected, people.reached, people.pending, people.unreachable) == (6, 2, 1, 3)
    assert people.settled == 5
    # Per row there is much more: 9 rows for 6 people.
    assert rows == {"sent": 2, "failed_temporary": 1, "failed_permanent": 6}
    assert unfinished == 1
    broken = next(r for r in reasons if r.startswith("no channel left: email: invalid email"))
    assert broken.endswith("@-sign.; no push token, phone number or postal address given")
    assert reasons == {
        broken: 1,
        "email: 550 5.1.1 User unknown; no phone number or postal address given": 1,
        "email: 552 mailbox full; no phone number or postal address given": 1,
    }
    assert sum(reasons.values()) == people.unreachable
    assert not any("@example.com" in reason for reason in reasons)


# --- the chain itself ----------------------------------------------------------------------------


def test_parse_chain_maps_policy_words_drops_im_and_refuses_typos():
    assert parse_chain(["push", "Email", " phone ", "im", "letter"]) == [
        Channel.PUSH,
        Channel.EMAIL,
        Channel.VOICE,
        Channel.LETTER,
    ]
    assert parse_chain(["sms", "voice", "phone", "sms"]) == [Channel.SMS, Channel.VOICE]
    with pytest.raises(InvalidInput, match=r"unknown channel 'fax'; known: push, email, sms"):
        parse_chain(["email", "fax"])
    with pytest.raises(InvalidInput, match="at least one channel"):
        parse_chain(["im"])


def test_chain_for_prefers_the_incidents_own_then_the_policys_then_the_default(
    db, settings, tmp_path, monkeypatch
):
    key = seed(db, settings, tmp_path, [person("O", email="o@example.com")])
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        assert chain_for(session, incident) == CHAIN  # not assessed: the default

    policy = shipped("examples") / "policies" / "operator-a.yaml"
    monkeypatch.setenv("BREACH_POLICY_FILE", str(policy))
    runtime.reset()
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        assess_obligations(session, incident, "test", runtime.settings())
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        # operator A promises "push, email, phone, letter": phone is a call.
        assert chain_for(session, incident) == [
            Channel.PUSH,
            Channel.EMAIL,
            Channel.VOICE,
            Channel.LETTER,
        ]
        commands.update_incident(session, incident, "test", {"channel_chain": ["email", "letter"]})
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        assert chain_for(session, incident) == [Channel.EMAIL, Channel.LETTER]


# --- provider reports (webhooks) -----------------------------------------------------------------


def policies(voice_max_attempts: int = 2) -> Callable[[Channel], ledger.RetryPolicy]:
    def policy_for(channel: Channel) -> ledger.RetryPolicy:
        attempts = voice_max_attempts if channel is Channel.VOICE else 5
        return ledger.RetryPolicy(attempts, 0.0, 0.0)

    return policy_for


def report(db, sid: str, status: ProviderEventStatus, detail: str | None = None) -> str:
    with db.unit_of_work() as session:
        return ledger.apply_report(
            session,
            ProviderEvent(provider_message_id=sid, status=status, detail=detail),
            policy_for=policies(),
            chain_of=lambda incident: CHAIN,
        )


def send(db, key: str, channel: Channel, sids: dict[str, str]) -> None:
    """Claim ``channel`` and record each person's message as accepted with ``sids``."""
    leased = claim(db, key, channel)
    assert set(leased) == set(sids)
    record(
        db,
        [
            result(leased[pid], DeliveryStatus.SENT, provider_message_id=sid)
            for pid, sid in sids.items()
        ],
        policies()(channel),
    )


def test_reports_mark_delivered_and_move_failed_texts_on(db, settings, tmp_path):
    key = seed(
        db,
        settings,
        tmp_path,
        [
            person("P1", phone="+447400123401"),
            person("P2", phone="+447400123402", address="3 Mill Lane|York|YO1 7HH"),
        ],
    )
    queue(db, key)
    send(db, key, Channel.SMS, {"P1": "SM" + "1" * 32, "P2": "SM" + "2" * 32})

    assert report(db, "SM" + "1" * 32, ProviderEventStatus.DELIVERED) == "applied"
    assert (
        report(db, "SM" + "2" * 32, ProviderEventStatus.FAILED_PERMANENT, "twilio error 30003")
        == "applied"
    )

    rows = ledger_rows(db, key)
    assert trail(rows["P1"]) == [("sms", "delivered")]
    assert rows["P1"][0].delivered_at is not None
    assert trail(rows["P2"]) == [("sms", "failed_permanent"), ("voice", "queued")]
    assert rows["P2"][0].last_error == "sms: twilio error 30003"

    # A late or repeated report about a row that moved on changes nothing.
    assert report(db, "SM" + "1" * 32, ProviderEventStatus.FAILED_PERMANENT, "late") == "ignored"
    assert report(db, "SM" + "2" * 32, ProviderEventStatus.FAILED_PERMANENT, "again") == "ignored"
    assert report(db, "SM" + "2" * 32, ProviderEventStatus.DELIVERED) == "ignored"
    assert {pid: trail(r) for pid, r in ledger_rows(db, key).items()} == {
        "P1": [("sms", "delivered")],
        "P2": [("sms", "failed_permanent"), ("voice", "queued")],
    }
    with db.unit_of_work() as session:
        kept = session.scalars(select(DeliveryReport.applied)).all()
    assert len(kept) == 5 and all(kept)  # every report is kept


def test_an_unanswered_call_is_retried_up_to_the_voice_limit_then_falls_back(
    db, settings, tmp_path
):
    key = seed(
        db,
        settings,
        tmp_path,
        [person("Q", phone="+447400123401", address="4 Church Street|Bath|BA1 1AA")],
    )
    with db.unit_of_work() as session:
        ledger.queue(
            session, commands.get_incident(session, key), [Channel.VOICE, Channel.LETTER], 1
        )

    send(db, key, Channel.VOICE, {"Q": "CA" + "1" * 32})
    assert report(db, "CA" + "1" * 32, ProviderEventStatus.FAILED_TEMPORARY, "call busy") == (
        "applied"
    )
    [row] = ledger_rows(db, key)["Q"]
    assert (row.state, row.attempts, row.last_error) == ("failed_temporary", 1, "voice: call busy")
    assert row.retry_at is not None

    send(db, key, Channel.VOICE, {"Q": "CA" + "2" * 32})  # the retry: a new call
    assert report(db, "CA" + "2" * 32, ProviderEventStatus.FAILED_TEMPORARY, "call busy") == (
        "applied"
    )
    rows = ledger_rows(db, key)["Q"]
    assert trail(rows) == [("voice", "failed_permanent"), ("letter", "queued")]
    assert rows[0].attempts == 2
    assert rows[0].last_error == "voice: gave up after 2 attempts: call busy"


def test_a_report_that_arrives_before_the_send_result_is_applied_on_the_next_look(
    db, settings, tmp_path
):
    key = seed(
        db,
        settings,
        tmp_path,
        [person("R1", phone="+447400123401"), person("R2", phone="+447400123402")],
    )
    queue(db, key)
    leased = claim(db, key, Channel.SMS)
    fast_ok, fast_bad = "SM" + "a" * 32, "SM" + "b" * 32

    # Twilio answered the callback URL before our send's result was written.
    assert report(db, fast_ok, ProviderEventStatus.DELIVERED) == "pending"
    assert report(db, fast_bad, ProviderEventStatus.FAILED_PERMANENT, "twilio error 30005") == (
        "pending"
    )
    assert {pid: trail(r) for pid, r in ledger_rows(db, key).items()} == {
        "R1": [("sms", "sending")],
        "R2": [("sms", "sending")],
    }

    record(
        db,
        [
            result(leased["R1"], DeliveryStatus.SENT, provider_message_id=fast_ok),
            result(leased["R2"], DeliveryStatus.SENT, provider_message_id=fast_bad),
        ],
    )
    assert {pid: trail(r) for pid, r in ledger_rows(db, key).items()} == {
        "R1": [("sms", "sent")],
        "R2": [("sms", "sent")],
    }
    # The dispatcher's next look at the ledger applies what was waiting.
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        assert ledger.apply_waiting_reports(session, incident, policies(), CHAIN) == 2

    rows = ledger_rows(db, key)
    assert trail(rows["R1"]) == [("sms", "delivered")]
    assert trail(rows["R2"]) == [("sms", "failed_permanent"), ("voice", "queued")]
    assert rows["R2"][0].last_error == "sms: twilio error 30005"
    with db.unit_of_work() as session:
        assert all(session.scalars(select(DeliveryReport.applied)).all())
    # Applied once: the same report again is stale.
    assert report(db, fast_ok, ProviderEventStatus.DELIVERED) == "ignored"


def test_a_failure_report_falls_back_along_the_chain_of_the_rows_incident(db, settings, tmp_path):
    """``chain_of`` is asked with the row's incident (what the callback app relies on)."""
    key = seed(db, settings, tmp_path, [person("S", phone="+447400123401", email="s@example.com")])
    with db.unit_of_work() as session:
        ledger.queue(session, commands.get_incident(session, key), [Channel.SMS, Channel.EMAIL], 1)
    send(db, key, Channel.SMS, {"S": "SM" + "c" * 32})
    asked: list[str] = []

    def chain_of(incident: Incident) -> list[Channel]:
        asked.append(incident.key)
        return [Channel.SMS, Channel.EMAIL]

    with db.unit_of_work() as session:
        outcome = ledger.apply_report(
            session,
            ProviderEvent(
                provider_message_id="SM" + "c" * 32,
                status=ProviderEventStatus.FAILED_PERMANENT,
                detail="twilio error 30006",
            ),
            policy_for=policies(),
            chain_of=chain_of,
        )
    assert outcome == "applied" and asked == [key]
    assert trail(ledger_rows(db, key)["S"]) == [("sms", "failed_permanent"), ("email", "queued")]


def test_a_report_racing_the_send_result_is_applied_whichever_commits_first(db, settings, tmp_path):
    """The callback's transaction looks for its row (not there yet) and, before it commits,
    the dispatcher records the send's result in its own transaction; the dispatcher's next
    look at the ledger applies the report whichever committed first."""
    key = seed(db, settings, tmp_path, [person("T", phone="+447400123401")])
    queue(db, key)
    leased = claim(db, key, Channel.SMS)
    sid = "SM" + "d" * 32
    errors: list[BaseException] = []

    def dispatcher() -> None:
        try:
            record(db, [result(leased["T"], DeliveryStatus.SENT, provider_message_id=sid)])
        except BaseException as exc:  # reported by the test's thread
            errors.append(exc)

    thread = threading.Thread(target=dispatcher)
    with db.unit_of_work() as session:
        event = ProviderEvent(provider_message_id=sid, status=ProviderEventStatus.DELIVERED)
        outcome = ledger.apply_report(session, event, policies(), lambda incident: CHAIN)
        assert outcome == "pending"
        thread.start()
        # Give the dispatcher the chance to write its result before this report commits
        # (on SQLite it waits for this transaction instead: both orders must work).
        thread.join(timeout=0.5 if db.is_sqlite else 10)
    thread.join(timeout=30)
    assert not thread.is_alive() and errors == []
    with db.unit_of_work() as session:  # what every dispatcher does as it goes
        incident = commands.get_incident(session, key)
        ledger.apply_waiting_reports(session, incident, policies(), CHAIN)

    assert trail(ledger_rows(db, key)["T"]) == [("sms", "delivered")]
    with db.unit_of_work() as session:
        assert session.scalars(select(DeliveryReport.applied)).all() == [True]
