"""SMTP connections across dispatcher processes stay under the Prefect global limit."""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from breachflow.models import runtime
from tests.conftest import BREACH, RecordingHandler, free_port
from tests.flows.notify.test_dispatch_processes import queue_everyone
from tests.testkit.factories import people, seed_incident

POOL = 2
DISPATCHERS = 3


@dataclass
class ConnectionCounter:
    open: int = 0
    peak: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def opened(self) -> None:
        with self.lock:
            self.open += 1
            self.peak = max(self.peak, self.open)

    def closed(self) -> None:
        with self.lock:
            self.open -= 1


class CountingController(Controller):
    """aiosmtpd whose sessions count themselves while connected."""

    def __init__(self, handler: RecordingHandler, counter: ConnectionCounter, **kw: object):
        super().__init__(handler, **kw)  # type: ignore[arg-type]
        self.counter = counter

    def factory(self) -> SMTP:
        counter = self.counter

        class CountingSMTP(SMTP):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                counter.opened()
                super().connection_made(transport)

            def connection_lost(self, exc: Exception | None) -> None:
                counter.closed()
                super().connection_lost(exc)

        return CountingSMTP(self.handler, **self.SMTP_kwargs)


@pytest.fixture
def counted_smtp(
    settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[RecordingHandler, ConnectionCounter]]:
    handler, counter = RecordingHandler(), ConnectionCounter()
    handler.delay = 0.05  # 7.5 s of sending: it outlasts the dispatchers' start-up
    controller = CountingController(handler, counter, hostname="127.0.0.1", port=free_port())
    controller.start()
    monkeypatch.setenv("BREACH_NOTIFIER_MODE", "live")
    monkeypatch.setenv("BREACH_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("BREACH_SMTP_PORT", str(controller.port))
    runtime.reset()
    try:
        yield handler, counter
    finally:
        controller.stop()


def test_dispatchers_together_never_open_more_smtp_connections_than_the_limit(
    db, settings, counted_smtp, prefect_api, monkeypatch
):
    """Three dispatchers with pools of 2 and a limit of 2: one batch's pool at a time."""
    handler, counter = counted_smtp
    monkeypatch.setenv("BREACH_BATCH_SIZE", "20")
    monkeypatch.setenv("BREACH_SMTP_POOL_SIZE", str(POOL))
    monkeypatch.setenv("BREACH_SMTP_MAX_CONNECTIONS", str(POOL))
    runtime.reset()
    persons = people(300)
    key = seed_incident(db, settings, persons)
    queue_everyone(db, key)

    env = {**os.environ, "PREFECT_API_URL": prefect_api}
    children = [
        subprocess.Popen([BREACH, "dispatch", key], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(DISPATCHERS)
    ]
    outputs = [child.communicate(timeout=240)[0] for child in children]

    assert [child.returncode for child in children] == [0] * DISPATCHERS, outputs
    assert {p.email for p in persons} == set(handler.by_recipient())
    assert counter.peak <= POOL, f"{counter.peak} connections were open at once"
    assert counter.peak == POOL  # a batch did use its whole pool: the limit was the bound
    worked = [out for out in outputs if "handed nothing" not in out]
    assert len(worked) >= 2, outputs  # the limit serialized them; it did not starve them
