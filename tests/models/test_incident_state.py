"""The incident state machine and the `declare` command's validation and numbering."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from sqlalchemy import select

from breachflow.models.commands import declare
from breachflow.models.db import Database
from breachflow.models.errors import IllegalTransition, InvalidInput
from breachflow.models.incident import TRANSITIONS, Incident, IncidentState, Severity
from breachflow.models.timeline import EventKind, TimelineEvent

S = IncidentState
HAPPY_PATH = [S.DECLARED, S.ASSESSED, S.NOTIFYING, S.NOTIFIED, S.REPORTING, S.CLOSED]
LEGAL = sorted((state, target) for state, targets in TRANSITIONS.items() for target in targets)
ILLEGAL = [
    (state, target)
    for state in IncidentState
    for target in IncidentState
    if target not in TRANSITIONS[state]
]


def incident_in(state: IncidentState, key: str = "INC-2026-0042") -> Incident:
    return Incident(key=key, title="t", state=state)


def declare_one(db: Database, **overrides: object) -> Incident:
    now = datetime.now(UTC)
    arguments: dict[str, object] = {
        "title": "Support credential misuse",
        "description": "A stolen credential was used to export customer records.",
        "severity": Severity.HIGH,
        "detected_at": now - timedelta(hours=3),
        "aware_at": now - timedelta(hours=1),
        "data_categories": ["Email", " phone ", ""],
        "actor": "alice",
    }
    arguments.update(overrides)
    with db.unit_of_work() as session:
        return declare(session, **arguments)  # type: ignore[arg-type]


def test_the_table_is_one_straight_line_to_closed_after_triage() -> None:
    """The response has one path, declared → assessed → … → closed, and closed is final;
    before it, an alert's suspected incident is confirmed (declared) or dismissed."""
    triage = [(S.SUSPECTED, S.DECLARED), (S.SUSPECTED, S.DISMISSED)]
    assert sorted(triage + list(pairwise(HAPPY_PATH))) == sorted(LEGAL)
    assert TRANSITIONS[S.CLOSED] == TRANSITIONS[S.DISMISSED] == frozenset()
    assert set(TRANSITIONS) == set(IncidentState)


@pytest.mark.parametrize(("state", "target"), LEGAL, ids=[f"{a}->{b}" for a, b in LEGAL])
def test_every_legal_move_works(state: IncidentState, target: IncidentState) -> None:
    """Each move the table allows changes the state and returns the one it left."""
    incident = incident_in(state)
    assert incident.transition(target) == state
    assert incident.state == target


def test_walking_the_whole_path_reaches_closed() -> None:
    """An incident can be driven from declared to closed, and has_reached follows along."""
    incident = incident_in(S.DECLARED)
    for target in HAPPY_PATH[1:]:
        incident.transition(target)
        assert incident.has_reached(target)
    assert incident.state == S.CLOSED
    assert all(incident.has_reached(state) for state in IncidentState if state != S.DISMISSED)


@pytest.mark.parametrize(("state", "target"), ILLEGAL, ids=[f"{a}->{b}" for a, b in ILLEGAL])
def test_every_illegal_move_is_refused(state: IncidentState, target: IncidentState) -> None:
    """A move the table does not allow raises IllegalTransition and leaves the state alone."""
    incident = incident_in(state)
    with pytest.raises(IllegalTransition):
        incident.transition(target)
    assert incident.state == state


def test_skipping_a_step_names_key_state_and_allowed_moves() -> None:
    """declared → closed is refused with a message a person can act on."""
    incident = incident_in(S.DECLARED, key="INC-2026-0007")
    with pytest.raises(IllegalTransition) as caught:
        incident.transition(S.CLOSED)
    message = str(caught.value)
    assert "INC-2026-0007" in message
    assert "declared" in message
    assert "closed" in message
    assert "allowed next: assessed" in message


@pytest.mark.parametrize("target", list(IncidentState))
def test_closed_is_final(target: IncidentState) -> None:
    """Nothing follows closed, and the message says the state is final."""
    incident = incident_in(S.CLOSED, key="INC-2026-0009")
    with pytest.raises(IllegalTransition) as caught:
        incident.transition(target)
    message = str(caught.value)
    assert "INC-2026-0009" in message
    assert "is closed" in message
    assert "none: it is final" in message


def test_declare_stores_the_incident_and_its_first_event(db: Database) -> None:
    """A declared incident is stored as declared, with cleaned categories and one event."""
    incident = declare_one(db, title="  Support credential misuse  ")
    with db.unit_of_work() as session:
        stored = session.scalar(select(Incident).where(Incident.key == incident.key))
        assert stored is not None
        assert stored.state == S.DECLARED
        assert stored.title == "Support credential misuse"
        assert stored.data_categories == ["email", "phone"]
        assert stored.declared_by == "alice"
        events = session.scalars(
            select(TimelineEvent).where(TimelineEvent.incident_id == stored.id)
        ).all()
        assert [e.kind for e in events] == [EventKind.INCIDENT_DECLARED]
        assert events[0].payload["key"] == incident.key
        assert stored.timeline_length == 1


def test_declare_numbers_incidents_sequentially_per_year(db: Database) -> None:
    """Keys are INC-<current year>-0001, -0002, -0003 in declaration order."""
    year = datetime.now(UTC).year
    keys = [declare_one(db, title=f"incident {n}").key for n in range(3)]
    assert keys == [f"INC-{year}-0001", f"INC-{year}-0002", f"INC-{year}-0003"]


@pytest.mark.parametrize("field", ["detected_at", "aware_at"])
def test_declare_refuses_times_in_the_future(db: Database, field: str) -> None:
    """A detection or awareness time an hour ahead is refused, naming the option."""
    later = datetime.now(UTC) + timedelta(hours=1)
    overrides: dict[str, object] = {field: later}
    if field == "detected_at":
        overrides["aware_at"] = later + timedelta(minutes=1)
    with pytest.raises(InvalidInput, match=f"--{field.replace('_', '-')} .* is in the future"):
        declare_one(db, **overrides)
    assert_no_incident(db)


def test_declare_allows_small_clock_skew(db: Database) -> None:
    """A time a minute ahead (clocks differ) is accepted rather than refused."""
    soon = datetime.now(UTC) + timedelta(minutes=1)
    incident = declare_one(db, detected_at=soon - timedelta(minutes=1), aware_at=soon)
    assert incident.key.endswith("-0001")


def test_declare_refuses_awareness_before_detection(db: Database) -> None:
    """aware_at earlier than detected_at is refused: one cannot know before it happens."""
    now = datetime.now(UTC)
    with pytest.raises(InvalidInput, match="--aware-at is before --detected-at"):
        declare_one(db, detected_at=now - timedelta(hours=1), aware_at=now - timedelta(hours=2))
    assert_no_incident(db)


@pytest.mark.parametrize("title", ["", "   \t "])
def test_declare_refuses_an_empty_title(db: Database, title: str) -> None:
    """A blank title is refused and nothing is stored."""
    with pytest.raises(InvalidInput, match="title"):
        declare_one(db, title=title)
    assert_no_incident(db)


def test_a_refused_declaration_does_not_use_up_a_number(db: Database) -> None:
    """After a refused declaration the next accepted one still gets -0001."""
    with pytest.raises(InvalidInput):
        declare_one(db, title="")
    assert declare_one(db).key == f"INC-{datetime.now(UTC).year}-0001"


def assert_no_incident(db: Database) -> None:
    with db.unit_of_work() as session:
        assert session.scalars(select(Incident)).all() == []
        assert session.scalars(select(TimelineEvent)).all() == []


def test_only_our_own_error_texts_are_kept_as_failure_reasons() -> None:
    """A library error can quote a contact detail; the stored reason keeps only its type."""
    from pydantic import BaseModel, ValidationError

    from breachflow.models.errors import InvalidInput, safe_reason

    class Message(BaseModel):
        count: int

    with pytest.raises(ValidationError) as caught:
        Message(count="alice@example.com")  # type: ignore[arg-type]
    assert "alice@example.com" in str(caught.value)
    assert "alice@example.com" not in safe_reason(caught.value)
    assert safe_reason(caught.value).startswith("ValidationError")
    assert safe_reason(InvalidInput("no notice texts")) == "no notice texts"
