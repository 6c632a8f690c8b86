"""The hash-chained, append-only timeline: what verify_chain accepts and what it catches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from breachflow.models.commands import declare
from breachflow.models.db import Database
from breachflow.models.incident import Incident, IncidentState, Severity
from breachflow.models.timeline import EventKind, TimelineEvent, advance, record, verify_chain

PAYLOADS = [
    {"step": "assess", "affected": 3},
    {"note": "重要：已通知监管部门", "ratio": 0.25, "nested": {"b": [1, 2], "a": None}},
    {"at": datetime(2026, 11, 20, 9, 30, tzinfo=UTC)},  # not JSON: stored as its str()
]


def declare_with_events(db: Database, *, detected_at: datetime | None = None) -> str:
    """Declare an incident, record a few events and one state change; returns its key."""
    now = datetime.now(UTC)
    detected = detected_at or now - timedelta(hours=5)
    with db.unit_of_work() as session:
        incident = declare(
            session,
            title="Support credential misuse",
            description="A stolen credential was used.",
            severity=Severity.HIGH,
            detected_at=detected,
            aware_at=detected + timedelta(hours=2),
            data_categories=["email"],
            actor="alice",
        )
        for payload in PAYLOADS:
            record(session, incident, EventKind.STEP_FINISHED, "flow-run/1", payload)
        advance(session, incident, IncidentState.ASSESSED, "flow-run/1", affected=3)
        return incident.key


def load(session: sa.orm.Session, key: str) -> Incident:
    incident = session.scalar(select(Incident).where(Incident.key == key))
    assert incident is not None
    return incident


def events_of(session: sa.orm.Session, incident: Incident) -> list[TimelineEvent]:
    return list(
        session.scalars(
            select(TimelineEvent)
            .where(TimelineEvent.incident_id == incident.id)
            .order_by(TimelineEvent.seq)
        )
    )


def tamper(db: Database, sql: str, **params: object) -> None:
    """Act as someone with database rights: drop the append-only triggers, then run ``sql``."""
    with db.engine.begin() as conn:
        if db.is_sqlite:
            conn.exec_driver_sql("DROP TRIGGER timeline_no_update")
            conn.exec_driver_sql("DROP TRIGGER timeline_no_delete")
        else:
            conn.exec_driver_sql("DROP TRIGGER timeline_append_only ON timeline_events")
        conn.execute(sa.text(sql), params)


def test_a_fresh_chain_verifies(db: Database) -> None:
    """declare + record + advance give a chain that verifies, read back from the database."""
    key = declare_with_events(db)
    with db.unit_of_work() as session:
        incident = load(session, key)
        check = verify_chain(session, incident)
        events = events_of(session, incident)
    assert check.ok, check.reason
    assert check.events == 5 == incident.timeline_length
    assert check.head == incident.timeline_head == events[-1].hash
    assert check.broken_at is None
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert [e.kind for e in events] == [
        EventKind.INCIDENT_DECLARED,
        EventKind.STEP_FINISHED,
        EventKind.STEP_FINISHED,
        EventKind.STEP_FINISHED,
        EventKind.STATE_CHANGED,
    ]
    assert events[-1].payload == {"from": "declared", "to": "assessed", "affected": 3}
    assert events[2].payload == PAYLOADS[1]
    assert all(e.prev_hash == before.hash for before, e in pairwise(events))


def test_chain_verifies_when_declared_with_a_local_offset(db: Database) -> None:
    """Declaring with +08:00 times (as `breach declare --detected-at …+08:00` does) still verifies.

    The declared event's occurred_at comes back from the database in UTC; the hash stored
    at write time must be over the same instant, whatever offset the caller used.
    """
    shanghai = timezone(timedelta(hours=8))
    detected = (datetime.now(UTC) - timedelta(days=1)).astimezone(shanghai)
    key = declare_with_events(db, detected_at=detected)
    with db.unit_of_work() as session:
        check = verify_chain(session, load(session, key))
    assert check.ok, f"broken at event {check.broken_at}: {check.reason}"


def test_an_incident_without_events_verifies_as_empty(db: Database) -> None:
    """An incident row with no events yet is a valid, empty chain (no head)."""
    with db.unit_of_work() as session:
        incident = Incident(
            key="INC-2026-0100",
            title="t",
            description="d",
            severity=Severity.LOW,
            detected_at=datetime.now(UTC),
            aware_at=datetime.now(UTC),
            declared_by="alice",
            data_categories=[],
            timeline_length=0,
        )
        session.add(incident)
        session.flush()
        check = verify_chain(session, incident)
    assert (check.ok, check.events, check.head) == (True, 0, None)


def test_the_orm_refuses_to_update_an_event(db: Database) -> None:
    """Changing a stored event through the ORM raises and changes nothing."""
    key = declare_with_events(db)
    with pytest.raises(PermissionError, match="append-only"), db.unit_of_work() as session:
        event = events_of(session, load(session, key))[1]
        event.actor = "mallory"
        session.flush()
    with db.unit_of_work() as session:
        assert events_of(session, load(session, key))[1].actor == "flow-run/1"


def test_the_orm_refuses_to_delete_an_event(db: Database) -> None:
    """Deleting a stored event through the ORM raises and the event stays."""
    key = declare_with_events(db)
    with pytest.raises(PermissionError, match="append-only"), db.unit_of_work() as session:
        session.delete(events_of(session, load(session, key))[0])
        session.flush()
    with db.unit_of_work() as session:
        assert len(events_of(session, load(session, key))) == 5


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE timeline_events SET actor = 'mallory' WHERE seq = 2",
        "UPDATE timeline_events SET payload = '{}'",
        "DELETE FROM timeline_events WHERE seq = 5",
        "DELETE FROM timeline_events",
    ],
)
def test_the_database_refuses_raw_updates_and_deletes(db: Database, sql: str) -> None:
    """The triggers refuse UPDATE and DELETE from any client, not only ours."""
    key = declare_with_events(db)
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), db.engine.begin() as conn:
        conn.execute(sa.text(sql))
    with db.unit_of_work() as session:
        incident = load(session, key)
        assert verify_chain(session, incident).ok
        assert events_of(session, incident)[1].actor == "flow-run/1"


def test_an_edited_payload_is_caught_at_that_event(db: Database) -> None:
    """With the triggers dropped, editing event 3's payload breaks the chain at 3."""
    key = declare_with_events(db)
    tamper(db, "UPDATE timeline_events SET payload = :p WHERE seq = 3", p='{"note": "nothing"}')
    with db.unit_of_work() as session:
        check = verify_chain(session, load(session, key))
    assert not check.ok
    assert check.broken_at == 3
    assert check.head is None
    assert "does not match its hash" in (check.reason or "")


def test_an_edit_with_a_recomputed_hash_is_caught_at_the_next_event(db: Database) -> None:
    """Rewriting event 2 and its own hash still breaks the link from event 3."""
    key = declare_with_events(db)
    with db.unit_of_work() as session:
        event = events_of(session, load(session, key))[1]
        forged = TimelineEvent(
            incident_id=event.incident_id,
            seq=event.seq,
            occurred_at=event.occurred_at,
            recorded_at=event.recorded_at,
            actor="mallory",
            kind=event.kind,
            payload=event.payload,
            prev_hash=event.prev_hash,
        ).computed_hash()
    tamper(db, "UPDATE timeline_events SET actor = 'mallory', hash = :h WHERE seq = 2", h=forged)
    with db.unit_of_work() as session:
        check = verify_chain(session, load(session, key))
    assert (check.ok, check.broken_at) == (False, 3)


def test_a_deleted_last_event_is_caught(db: Database) -> None:
    """Deleting the tail leaves a valid-looking chain, but the incident's length exposes it."""
    key = declare_with_events(db)
    tamper(db, "DELETE FROM timeline_events WHERE seq = 5")
    with db.unit_of_work() as session:
        check = verify_chain(session, load(session, key))
    assert not check.ok
    assert check.events == 4
    assert check.broken_at == 5
    assert check.reason == "incident records 5 events; 4 found"


def test_a_deleted_middle_event_is_caught_at_the_gap(db: Database) -> None:
    """Deleting event 3 is reported as event 3 missing."""
    key = declare_with_events(db)
    tamper(db, "DELETE FROM timeline_events WHERE seq = 3")
    with db.unit_of_work() as session:
        check = verify_chain(session, load(session, key))
    assert not check.ok
    assert check.broken_at == 3
    assert check.reason == "event 3 is missing"


def test_events_recorded_after_verification_extend_the_chain(db: Database) -> None:
    """A later unit of work appends to the same chain, which still verifies."""
    key = declare_with_events(db)
    with db.unit_of_work() as session:
        incident = load(session, key)
        before = incident.timeline_head
        entry = record(session, incident, EventKind.REPORT_WRITTEN, "bob", {"file": "r.html"})
        assert (entry.seq, entry.prev_hash) == (6, before)
    with db.unit_of_work() as session:
        incident = load(session, key)
        check = verify_chain(session, incident)
    assert (check.ok, check.events, check.head) == (True, 6, incident.timeline_head)
