"""A mail domain that defers everything for a while is slowed, not everyone.

Half the people are at a domain whose server answers 451 to every recipient for the first
seconds of the run (greylisting a new sender, a full queue). The same incident is run
twice, with the per-domain brake and with it turned off: with it, that server is asked far
less often while it defers, the other domain is sent at full speed, and either way nobody
is written off and everyone has one ``sent`` row.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from breachflow.flows.incident import incident_response
from breachflow.flows.notify import dispatch
from breachflow.models import commands, runtime
from breachflow.models.notification import Notification
from breachflow.notifiers.domains import DomainBrake, domain_of
from tests.conftest import SQLITE_ONLY, RecordingHandler, free_port
from tests.testkit.factories import people, seed_incident

DEFERRING = "example.cn"  # people(n): every second person is there
OUTAGE_SECONDS = 4.0


@dataclass
class DeferringAtFirst(RecordingHandler):
    """451 to every recipient at ``DEFERRING`` until ``OUTAGE_SECONDS`` after its first
    try; records when each domain was tried."""

    started: float | None = None
    tried: list[tuple[str, float]] = field(default_factory=list)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        now = time.monotonic()
        domain = domain_of(address)
        self.tried.append((domain, now))
        if domain == DEFERRING:
            self.started = self.started or now
            if now - self.started < OUTAGE_SECONDS:
                return "451 4.7.1 Try again later"
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)

    def tries_during_outage(self) -> int:
        assert self.started is not None
        return sum(
            1 for d, at in self.tried if d == DEFERRING and at - self.started < OUTAGE_SECONDS
        )

    def last_sent(self, domain: str) -> float:
        return max(at for d, at in self.tried if d == domain)


@pytest.fixture
def smtp_server():  # type: ignore[no-untyped-def]
    handler = DeferringAtFirst()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller, handler
    finally:
        controller.stop()


def notify_everyone(db, settings, handler: DeferringAtFirst) -> None:
    persons = people(200)
    key = seed_incident(db, settings, persons)
    incident_response(key, requested_by="test")
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        rows = session.execute(
            select(Notification.subject_id, Notification.state).where(
                Notification.incident_id == incident.id
            )
        ).all()
    assert Counter(state for _, state in rows) == {"sent": len(persons)}  # nobody written off
    assert len({subject for subject, _ in rows}) == len(persons)
    assert set(handler.by_recipient()) == {p.email for p in persons}


@SQLITE_ONLY  # the brake lives in the dispatcher's memory, not in the database
def test_a_deferring_domain_is_asked_less_and_the_others_are_not_slowed(
    db, settings, live_smtp, smtp_server, prefect_api, monkeypatch
):
    _, handler = smtp_server
    monkeypatch.setenv("BREACH_BATCH_SIZE", "20")
    monkeypatch.setenv("BREACH_RETRY_BASE_SECONDS", "0.5")
    monkeypatch.setenv("BREACH_RETRY_MAX_SECONDS", "2")
    runtime.reset()
    dispatch._brake.cache_clear()
    notify_everyone(db, runtime.settings(), handler)
    braked = handler.tries_during_outage()
    # The other domain finished long before the deferring one could take anything.
    assert handler.last_sent("example.com") - handler.started < OUTAGE_SECONDS

    handler.started, handler.tried = None, []
    handler.received.clear()
    monkeypatch.setattr(
        dispatch, "_brake", lambda base, most: DomainBrake(backoff=lambda n: 0, cohort=10**9)
    )
    notify_everyone(db, runtime.settings(), handler)
    unbraked = handler.tries_during_outage()

    assert braked < unbraked / 2, (braked, unbraked)
