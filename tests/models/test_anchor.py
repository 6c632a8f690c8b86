"""The timeline anchored outside the database (issue 17, item 5).

Someone who can write the database can drop the append-only triggers, delete the last
events and set the incident's head back, or rewrite from an event on and rehash: the chain
then agrees with itself and `audit verify` used to pass. Each stage is now checkpointed:
signed with a key the database does not hold and appended to a witness folder outside it.
These tests act as that someone and check that `audit verify` fails, naming the anchor.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy import select
from typer.testing import CliRunner

from breachflow.cli.app import app
from breachflow.models import runtime
from breachflow.models.anchor import (
    AnchorKeyError,
    Checkpoint,
    StoredCheckpoint,
    Witness,
    check_anchors,
    key_id,
    load_public_key,
    load_signer,
    write_key_pair,
)
from breachflow.models.apikey import Role, create_key
from breachflow.models.base import utcnow
from breachflow.models.db import Database
from breachflow.models.incident import IncidentState
from breachflow.models.timeline import (
    EventKind,
    TimelineEvent,
    advance,
    event_hash,
    record,
    verify_chain,
)
from tests.api.test_callbacks import AppServer
from tests.conftest import free_port
from tests.models.test_timeline import declare_with_events, load, tamper

runner = CliRunner()


def _verify(key: str, *extra: str) -> tuple[int, str]:
    done = runner.invoke(app, ["audit", "verify", key, *extra], env={"COLUMNS": "400"})
    return done.exit_code, done.output


def _check(db: Database, key: str, witness: Witness, public: Path):
    keys = {key_id(load_public_key(public)): load_public_key(public)}
    with db.unit_of_work() as session:
        incident = load(session, key)
        return verify_chain(session, incident), check_anchors(session, incident, witness, keys)


def test_each_stage_is_signed_and_published_once_it_has_committed(anchored, db):
    _, witness = anchored
    key = declare_with_events(db)  # declared, then assessed: one unit of work, one stage
    lines = witness.path(key).read_text().splitlines()
    assert len(lines) == 1
    checkpoint = Checkpoint.from_line(lines[0])
    with db.unit_of_work() as session:
        incident = load(session, key)
        assert (checkpoint.events, checkpoint.head) == (5, incident.timeline_head)
    assert checkpoint.reason == "assessed"
    with db.unit_of_work() as session:  # the database keeps a copy, the same line
        copies = session.scalars(select(StoredCheckpoint.line)).all()
    assert copies == [lines[0]]
    assert stat.S_IMODE(witness.path(key).stat().st_mode) == 0o600

    # A stage rolled back is never published: nothing outside records a head that is not.
    with pytest.raises(RuntimeError), db.unit_of_work() as session:
        advance(session, load(session, key), IncidentState.NOTIFYING, "flow-run/2")
        raise RuntimeError("the flow failed after the transition")
    assert len(witness.path(key).read_text().splitlines()) == 1

    code, output = _verify(key)
    assert code == 0, output
    assert f"{key}: timeline verified, 5 events" in output
    assert f"anchored by witness {witness.folder}" in output
    assert "the checkpoint of event 5" in output and "holds" in output


def test_cutting_the_tail_and_setting_the_head_back_is_caught_by_the_witness(anchored, db):
    public, witness = anchored
    key = declare_with_events(db)
    # Everything a database writer can do: drop the triggers, delete the last two events,
    # point the incident at event 3 and delete the database's copies of the checkpoints.
    with db.unit_of_work() as session:
        incident = load(session, key)
        third = session.scalar(
            select(TimelineEvent.hash).where(
                TimelineEvent.incident_id == incident.id, TimelineEvent.seq == 3
            )
        )
        incident_id = incident.id
    tamper(db, "DELETE FROM timeline_events WHERE incident_id = :i AND seq > 3", i=incident_id)
    with db.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE incidents SET timeline_length = 3, timeline_head = :h WHERE id = :i"),
            {"h": third, "i": incident_id},
        )
        conn.execute(sa.text("DELETE FROM timeline_checkpoints"))

    chain, anchors = _check(db, key, witness, public)
    assert chain.ok  # the chain alone agrees with itself: this is what the anchor is for
    assert not anchors.ok
    assert anchors.problems == [
        f"{witness.name} ({key}.jsonl): the checkpoint of event 5 signed "
        f"{Checkpoint.from_line(witness.path(key).read_text()).signed_at} records 5 events "
        f"(head {Checkpoint.from_line(witness.path(key).read_text()).head}); the timeline "
        "in the database holds 3: events were deleted"
    ]
    code, output = _verify(key)
    assert code == 1
    assert "timeline does NOT match its signed checkpoints" in output
    assert f"witness {witness.folder}" in output and "events were deleted" in output

    # The API says the same to whoever reads the timeline.
    with db.unit_of_work() as session:
        token = create_key(session, "compliance", Role.COMPLIANCE, "test")
    with AppServer(free_port()) as server:
        answer = httpx.get(
            f"{server.url}/api/v1/incidents/{key}/timeline",
            headers={"Authorization": f"Bearer {token}"},
        )
    anchor = answer.json()["chain"]["anchor"]
    assert answer.json()["chain"]["verified"] is True
    assert anchor["anchored"] is False
    assert anchor["problems"] == anchors.problems


def test_rewriting_from_an_event_and_rehashing_is_caught_by_the_witness(anchored, db):
    public, witness = anchored
    key = declare_with_events(db)
    _rewrite_from(db, key, seq=2, actor="someone-else")
    chain, anchors = _check(db, key, witness, public)
    assert chain.ok, chain.reason
    assert len(anchors.problems) == 2  # the witness's checkpoint and the database's copy
    assert all("the timeline was rewritten" in p for p in anchors.problems)
    assert anchors.problems[0].startswith(f"{witness.name} ({key}.jsonl)")
    code, output = _verify(key)
    assert code == 1 and "the timeline was rewritten" in output


def test_a_forged_or_foreign_checkpoint_does_not_anchor_anything(anchored, db, tmp_path):
    public, witness = anchored
    key = declare_with_events(db)
    genuine = Checkpoint.from_line(witness.path(key).read_text())
    # Signed by a key nobody trusts (an attacker's own), and a trusted key id with the
    # statement changed after signing.
    write_key_pair(tmp_path / "attacker.key")
    attacker = load_signer(tmp_path / "attacker.key")
    with db.unit_of_work() as session:
        foreign = attacker.sign(load(session, key), "schedule", utcnow())
    altered = Checkpoint(**{**genuine.__dict__, "events": 4})
    with witness.path(key).open("a") as out:
        out.write(foreign.line() + "\n" + altered.line() + "\n" + "not json\n")
    _, anchors = _check(db, key, witness, public)
    assert any("not trusted here" in p for p in anchors.problems)
    assert any("does not verify" in p for p in anchors.problems)
    assert any("line 4 is not a checkpoint" in p for p in anchors.problems)
    assert anchors.latest == genuine  # the genuine checkpoint still anchors the chain


def test_events_after_the_last_checkpoint_are_said_to_be_unanchored_until_the_watchdog(
    anchored, db
):
    _, witness = anchored
    key = declare_with_events(db)
    with db.unit_of_work() as session:
        record(session, load(session, key), EventKind.STEP_DONE, "oncall:bob", {"step": "x"})
    code, output = _verify(key)
    assert code == 0
    assert "event 6 came after it and is not anchored yet" in output

    from breachflow.flows.watchdog import _checkpoint

    _checkpoint([key])
    _checkpoint([key])  # the head is covered: no second line for the same head
    lines = witness.path(key).read_text().splitlines()
    assert [Checkpoint.from_line(line).reason for line in lines] == ["assessed", "schedule"]
    code, output = _verify(key)
    assert "the checkpoint of event 6" in output and "not anchored yet" not in output


def test_without_a_key_the_check_says_the_timeline_is_not_anchored(db):
    key = declare_with_events(db)
    code, output = _verify(key)
    assert code == 0
    assert "not anchored: no signed checkpoint" in output


def test_keys_are_private_and_never_overwritten(settings, tmp_path, monkeypatch):
    key = tmp_path / "checkpoint.key"
    made = runner.invoke(app, ["audit", "keygen", str(key)], env={"COLUMNS": "400"})
    assert made.exit_code == 0, made.output
    assert f"signing key written to {key}" in made.output
    public = Path(f"{key}.pub")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert b"PUBLIC KEY" in public.read_bytes() and b"PRIVATE" not in public.read_bytes()
    again = runner.invoke(app, ["audit", "keygen", str(key)])
    assert again.exit_code != 0 and "is never overwritten" in str(again.exception)
    os.chmod(key, 0o644)
    with pytest.raises(AnchorKeyError, match="readable by other users"):
        load_signer(key)


def test_the_embedded_home_creates_its_key_and_witness(tmp_path, monkeypatch):
    for name in list(os.environ):
        if name.startswith("BREACH_") and name != "BREACH_TEST_POSTGRES_URL":
            monkeypatch.delenv(name)
    monkeypatch.setenv("BREACH_HOME", str(tmp_path / ".breach"))
    runtime.reset()
    try:
        signing = runtime.anchoring()
        assert signing is not None
        assert signing.witness.folder == tmp_path / ".breach" / "witness"
        assert stat.S_IMODE((tmp_path / ".breach" / "checkpoint.key").stat().st_mode) == 0o600
    finally:
        runtime.reset()


def _rewrite_from(db: Database, key: str, *, seq: int, actor: str) -> None:
    """Change event ``seq``'s actor and rehash it and every event after, as a forger with
    database rights would, then point the incident at the new head."""
    with db.unit_of_work() as session:
        incident = load(session, key)
        events = list(
            session.scalars(
                select(TimelineEvent)
                .where(TimelineEvent.incident_id == incident.id)
                .order_by(TimelineEvent.seq)
            )
        )
        fields = [e.hashed_fields() for e in events]
        incident_id = incident.id
        session.expunge_all()
    previous = None
    changes = []
    for item in fields:
        if previous is not None:
            item["prev_hash"] = previous
        if item["seq"] == seq:
            item["actor"] = actor
        digest = event_hash(item)
        changes.append(
            {"seq": item["seq"], "actor": item["actor"], "p": item["prev_hash"], "h": digest}
        )
        previous = digest
    tamper(db, "SELECT 1")
    with db.engine.begin() as conn:
        for change in changes:
            conn.execute(
                sa.text(
                    "UPDATE timeline_events SET actor = :actor, prev_hash = :p, hash = :h"
                    " WHERE incident_id = :i AND seq = :seq"
                ),
                {**change, "i": incident_id},
            )
        conn.execute(
            sa.text("UPDATE incidents SET timeline_head = :h WHERE id = :i"),
            {"h": previous, "i": incident_id},
        )
