"""The per-domain brake over the real SMTP notifier and a real aiosmtpd server."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest
from aiosmtpd.controller import Controller

from breachflow.models.delivery import DeliveryStatus, OutboundMessage
from breachflow.notifiers.domains import BrakedNotifier, DomainBrake, domain_of
from tests.conftest import RecordingHandler, free_port
from tests.notifiers.test_smtp import notifier_for, outbound

SLOW, FINE = "slow.example", "fine.example"


@dataclass
class DeferringDomains(RecordingHandler):
    """Refuses every recipient at the domains in ``deferring`` with 451, and counts tries."""

    deferring: set[str] = field(default_factory=set)
    tried: list[str] = field(default_factory=list)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        self.tried.append(domain_of(address))
        if domain_of(address) in self.deferring:
            return "451 4.7.1 Greylisted, please try again later"
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)


@pytest.fixture
def server():  # type: ignore[no-untyped-def]
    handler = DeferringDomains(deferring={SLOW})
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller, handler
    finally:
        controller.stop()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def batch(start: int, slow: int, fine: int) -> list[OutboundMessage]:
    people = [f"p{n}@{SLOW}" for n in range(slow)] + [f"q{n}@{FINE}" for n in range(fine)]
    return [outbound(start + i, address) for i, address in enumerate(people)]


def by_status(results) -> dict[DeliveryStatus, int]:  # type: ignore[no-untyped-def]
    counts: dict[DeliveryStatus, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    return counts


def test_a_domain_that_defers_a_cohort_is_held_and_the_others_go_on(server):
    controller, handler = server
    clock = Clock()
    brake = DomainBrake(backoff=lambda strikes: 60.0 * strikes, clock=clock)
    notifier = BrakedNotifier(notifier_for(controller), brake)

    first = asyncio.run(notifier.send(batch(1, slow=5, fine=5)))
    assert by_status(first) == {DeliveryStatus.FAILED_TEMPORARY: 5, DeliveryStatus.SENT: 5}
    tried_at_slow = handler.tried.count(SLOW)

    second = asyncio.run(notifier.send(batch(100, slow=5, fine=5)))
    held = [r for r in second if r.status is DeliveryStatus.HELD]
    assert len(held) == 5 and all(r.retry_after == 60.0 for r in held)
    assert "deferring" in (held[0].detail or "") and SLOW not in (held[0].detail or "")
    assert handler.tried.count(SLOW) == tried_at_slow  # the slow domain saw nothing new
    assert by_status(second)[DeliveryStatus.SENT] == 5  # the fine one at full speed

    # After the pause the domain is tried again; still deferring, the next pause is longer.
    clock.now += 61
    third = asyncio.run(notifier.send(batch(200, slow=5, fine=0)))
    assert by_status(third) == {DeliveryStatus.FAILED_TEMPORARY: 5}
    assert brake.wait_for(SLOW) == 120.0

    # Once it takes a message again, the brake is off.
    clock.now += 121
    handler.deferring.clear()
    fourth = asyncio.run(notifier.send(batch(300, slow=5, fine=0)))
    assert by_status(fourth) == {DeliveryStatus.SENT: 5}
    assert brake.wait_for(SLOW) == 0


def test_fewer_deferrals_than_a_cohort_or_one_acceptance_brake_nothing(server):
    controller, handler = server
    brake = DomainBrake(backoff=lambda strikes: 60.0, clock=Clock())
    notifier = BrakedNotifier(notifier_for(controller), brake)

    asyncio.run(notifier.send(batch(1, slow=2, fine=3)))  # two 451s: a coincidence
    assert brake.wait_for(SLOW) == 0

    mixed = batch(10, slow=6, fine=0)
    handler.deferring = set()
    handler.always = {msg.recipient: 451 for msg in mixed[:5]}  # five refused, one accepted
    results = asyncio.run(notifier.send(mixed))
    assert by_status(results) == {DeliveryStatus.FAILED_TEMPORARY: 5, DeliveryStatus.SENT: 1}
    assert brake.wait_for(SLOW) == 0  # the server takes mail: those five are the people's
