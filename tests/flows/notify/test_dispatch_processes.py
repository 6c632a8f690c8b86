"""``breach dispatch`` processes sharing one incident's sending, and surviving ``kill -9``.

The incident is brought to ``notifying`` in this process (assess, then queue the notices:
nothing is sent), then real ``breach dispatch`` processes send through a real SMTP server.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from breachflow.flows.assess.step import assess
from breachflow.flows.notify.dispatch import PIPELINE
from breachflow.flows.notify.step import queue_notices
from breachflow.models import commands, ledger, runtime
from breachflow.models.notification import Notification
from breachflow.models.subject import Subject
from breachflow.models.timeline import TimelineEvent, verify_chain
from tests.conftest import BREACH, RecordingHandler, free_port
from tests.testkit.factories import people, seed_incident

pytestmark = pytest.mark.slow

BATCH = 25


@dataclass
class GatedHandler(RecordingHandler):
    """The recording SMTP peer, which holds every message at RCPT while ``gate`` is clear.

    At RCPT, not DATA: a client that gives up waiting has not handed the message over, so a
    long hold cannot turn into a duplicate the dispatchers are not to blame for.
    """

    gate: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.gate.set()

    async def handle_RCPT(
        self, server: object, session: object, envelope: object, address: str, options: list[str]
    ) -> str:
        while not self.gate.is_set():
            await asyncio.sleep(0.01)
        return await super().handle_RCPT(server, session, envelope, address, options)


@pytest.fixture
def smtp_server() -> Iterator[tuple[Controller, GatedHandler]]:
    """conftest's SMTP server (``live_smtp`` uses this one), with a gate."""
    handler = GatedHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller, handler
    finally:
        handler.gate.set()
        controller.stop()


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)


def queue_everyone(db, key: str) -> None:
    """Assess and queue the notices in this process: the incident is notifying, nothing sent."""
    assess(key, "test:setup")
    queue_notices(key, "test:setup")
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        assert incident.state == "notifying"
        assert "sent" not in ledger.counts(session, incident)


class Dispatchers:
    """Starts ``breach dispatch KEY`` processes, each with its output in a file."""

    def __init__(self, key: str, env: dict[str, str], folder: Path) -> None:
        self.key, self.env, self.folder = key, env, folder
        self.children: list[subprocess.Popen[bytes]] = []

    def start(self) -> tuple[subprocess.Popen[bytes], Path]:
        log = self.folder / f"dispatch-{len(self.children) + 1}.log"
        with log.open("wb") as out:
            child = subprocess.Popen(
                [BREACH, "dispatch", self.key], env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        self.children.append(child)
        return child, log

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [BREACH, *args], env=self.env, capture_output=True, text=True, timeout=240
        )


@pytest.fixture
def dispatchers(settings, prefect_api, tmp_path) -> Iterator[Callable[[str], Dispatchers]]:
    """``dispatchers(key)``; any child still running when the test ends is killed."""
    made: list[Dispatchers] = []

    def make(key: str) -> Dispatchers:
        # The environment as the test left it (live mode, batch size...), read when made.
        made.append(Dispatchers(key, {**os.environ, "PREFECT_API_URL": prefect_api}, tmp_path))
        return made[-1]

    yield make
    for child in (child for group in made for child in group.children):
        if child.poll() is None:
            child.kill()
            child.wait()


def handed_over(log: Path) -> int:
    """What a dispatcher says it handed to the providers (``… handed N by email …``)."""
    output = log.read_text(encoding="utf-8", errors="replace")
    found = re.search(r"this dispatcher handed (.+) to the providers", output)
    assert found, output[-2000:]
    return sum(int(n) for n in re.findall(r"(\d+) by \w+", found.group(1)))


def ledger_rows(db, key: str) -> dict[str, list[tuple[str, int]]]:
    """Each person's ledger rows (by their subject id) as (state, attempts)."""
    rows: dict[str, list[tuple[str, int]]] = {}
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        for person, state, attempts in session.execute(
            select(Subject.external_id, Notification.state, Notification.attempts)
            .join(Subject, Subject.id == Notification.subject_id)
            .where(Notification.incident_id == incident.id)
        ):
            rows.setdefault(person, []).append((str(state), attempts))
    return rows


def states(rows: dict[str, list[tuple[str, int]]]) -> Counter[str]:
    return Counter(state for person in rows.values() for state, _ in person)


def batch_actors(db, key: str) -> list[str]:
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        return list(
            session.scalars(
                select(TimelineEvent.actor).where(
                    TimelineEvent.incident_id == incident.id,
                    TimelineEvent.kind == "notices.batch_sent",
                )
            )
        )


def lease_owners(db, key: str) -> set[str]:
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        return set(
            session.scalars(
                select(Notification.lease_owner).where(
                    Notification.incident_id == incident.id, Notification.state == "sending"
                )
            )
        )


def pid_of(worker_actor: str) -> int:
    """``flow:notify/<host>/<pid>/<nonce>`` → pid."""
    return int(worker_actor.removeprefix("flow:notify/").split("/")[1])


def close_with_breach_run(dispatchers: Dispatchers, db, key: str, sink: RecordingHandler) -> None:
    """``breach run`` after the dispatchers: it closes the incident and sends nothing more."""
    received = len(sink.received)
    rows_before = ledger_rows(db, key)
    done = dispatchers.run("run", key)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"{key} is reporting" in done.stdout
    assert "(0 in this run)" in done.stdout
    assert len(sink.received) == received
    assert ledger_rows(db, key) == rows_before
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        assert incident.state == "reporting"
        assert verify_chain(session, incident).ok


def test_two_dispatchers_on_one_incident_deliver_each_notice_once(
    db, settings, live_smtp, dispatchers, monkeypatch
):
    monkeypatch.setenv("BREACH_BATCH_SIZE", str(BATCH))
    monkeypatch.setenv("BREACH_SMTP_POOL_SIZE", "2")
    runtime.reset()
    persons = people(200)
    key = seed_incident(db, settings, persons)
    queue_everyone(db, key)
    assert live_smtp.received == []
    live_smtp.delay = 0.005
    team = dispatchers(key)

    # Hold the first messages until both dispatchers have leased a batch, so that both take
    # part whatever their start-up times; then let the sending run.
    live_smtp.gate.clear()
    children = [team.start() for _ in range(2)]
    try:
        wait_for(lambda: len(lease_owners(db, key)) >= 2, 120, "both dispatchers lease a batch")
    finally:
        live_smtp.gate.set()
    codes = [child.wait(timeout=180) for child, _ in children]

    logs = [log.read_text(encoding="utf-8", errors="replace")[-2000:] for _, log in children]
    assert codes == [0, 0], logs
    received = live_smtp.by_recipient()
    assert set(received) == {p.email for p in persons}
    assert {len(messages) for messages in received.values()} == {1}
    # One row per person, sent, and claimed once: no dispatcher took another's row.
    rows = ledger_rows(db, key)
    assert len(rows) == len(persons)
    assert {tuple(person) for person in rows.values()} == {(("sent", 1),)}
    # Each did part of the work, and together they handed over each notice once.
    handed = [handed_over(log) for _, log in children]
    assert all(n > 0 for n in handed) and sum(handed) == len(persons), handed
    assert {pid_of(a) for a in batch_actors(db, key)} == {child.pid for child, _ in children}

    close_with_breach_run(team, db, key, live_smtp)


def kill_while_sending(child: subprocess.Popen[bytes], sink: RecordingHandler, pause: float) -> int:
    """Once ``child`` is sending (new mail at the sink), wait ``pause`` s, then ``kill -9`` it.

    Returns its exit code: ``-SIGKILL``, or its own if it finished first."""
    before = len(sink.received)
    wait_for(
        lambda: len(sink.received) > before or child.poll() is not None, 120, "a dispatcher sends"
    )
    until = time.monotonic() + pause
    while time.monotonic() < until and child.poll() is None:
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)  # no cleanup, no lease given back; ignored if it ended
    return child.wait(timeout=60)


def test_a_dispatcher_killed_at_random_moments_and_restarted_tells_each_person_once(
    db, settings, live_smtp, dispatchers, monkeypatch
):
    max_kills = 4
    monkeypatch.setenv("BREACH_BATCH_SIZE", str(BATCH))
    # Leases far longer than the test: only seeing that their owner died frees them.
    monkeypatch.setenv("BREACH_LEASE_SECONDS", "3600")
    # Each kill also strands the dead dispatcher's SMTP slots of the Prefect concurrency limit
    # (shared by the whole session) for a minute: keep them few.
    monkeypatch.setenv("BREACH_SMTP_POOL_SIZE", "2")
    runtime.reset()
    persons = people(300, broken_every=100)  # 3 have an address without '@'
    reachable = {p.email: p.subject_id for p in persons if "@" in p.email}
    key = seed_incident(db, settings, persons)
    queue_everyone(db, key)
    live_smtp.delay = 0.01
    rng = random.Random(20260)
    team = dispatchers(key)

    kills, in_flight_at_kill, leased_to_the_dead = 0, [], set()
    while True:
        child, log = team.start()
        if kills < max_kills:  # let it send a random while, then kill -9 it
            code = kill_while_sending(child, live_smtp, rng.uniform(0.0, 0.8))
        else:  # enough: let this one finish
            code = child.wait(timeout=180)
        if code != -signal.SIGKILL:
            assert code == 0, log.read_text(encoding="utf-8", errors="replace")[-3000:]
            break
        kills += 1
        # Left leased to the dead process: at most the batch it was sending and the next one,
        # claimed and rendered meanwhile (never sent).
        after_kill = ledger_rows(db, key)
        in_flight = states(after_kill)["sending"]
        assert in_flight <= PIPELINE * BATCH
        in_flight_at_kill.append(in_flight)
        leased_to_the_dead |= {
            person for person, rows in after_kill.items() if rows[0][0] == "sending"
        }
    # Kills left batches leased to dead processes, yet the restarts finished: they took those
    # leases over at once (each had an hour to run).
    assert any(in_flight_at_kill), f"no kill landed with a batch in flight: {in_flight_at_kill}"

    rows = ledger_rows(db, key)
    assert len(rows) == len(persons) and {len(person) for person in rows.values()} == {1}
    assert states(rows) == {
        "sent": len(reachable),
        "failed_permanent": len(persons) - len(reachable),
    }
    received = live_smtp.by_recipient()
    assert set(received) == set(reachable)
    repeated = {address for address, messages in received.items() if len(messages) > 1}
    duplicates = sum(len(received[address]) - 1 for address in repeated)
    assert duplicates <= BATCH * kills
    for messages in received.values():  # a resend carries the same Message-ID
        assert len({m["Message-ID"] for m in messages}) == 1
    # Only a notice leased to a killed process went out twice; and the takeover charged
    # nobody an attempt: one recorded outcome each.
    assert {reachable[address] for address in repeated} <= leased_to_the_dead
    assert {
        attempts for person in rows.values() for state, attempts in person if state == "sent"
    } == {1}
    with db.unit_of_work() as session:
        assert verify_chain(session, commands.get_incident(session, key)).ok

    close_with_breach_run(team, db, key, live_smtp)
