"""Slow down a mail domain that defers, not everyone: a per-destination brake.

A mail server that answers 4xx to many of our messages at once (greylisting, "too many
messages, slow down", a full queue) wants fewer of them, not the same number again in a
minute. Like a mail server's queue manager (Postfix throttles a destination whose
deliveries fail in a cohort), the brake watches each batch's answers per recipient domain:
when a batch has ``cohort`` or more temporary failures at a domain and no acceptance there,
that domain's messages are held for a backoff that grows with each braked batch (the retry
policy's backoff and jitter), and a single acceptance releases it. Other domains go on at
full speed.

A held message was not tried: it costs its person no attempt and is not a sign of an
outage (``DeliveryStatus.HELD``, with ``retry_after``). Once the backoff has passed the
domain's messages are tried again, and each failure counts against its person's retry
lifetime as usual, so a brake can delay a person but never write them off by itself.

The brake lives in the dispatcher's process (one per process, handed to each batch's
notifier like a pacer) and holds only domain names, in memory, never logged.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from breachflow.models.delivery import DeliveryResult, DeliveryStatus, OutboundMessage
from breachflow.notifiers.base import Notifier

COHORT = 3  # temporary failures at one domain in one batch, with no acceptance, that brake it
HELD = "held: the recipient's mail server is deferring our mail; tried again after a pause"


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].strip().lower().rstrip(".")


@dataclass
class DomainBrake:
    """Which domains are braked, until when; ``backoff(n)`` is the pause after the n-th
    braked batch in a row (the retry policy's ``delay``)."""

    backoff: Callable[[int], float]
    cohort: int = COHORT
    clock: Callable[[], float] = time.monotonic
    _until: dict[str, float] = field(default_factory=dict)
    _strikes: Counter[str] = field(default_factory=Counter)

    def wait_for(self, domain: str) -> float:
        """Seconds until ``domain`` may be tried again; 0 when it is not braked."""
        return max(self._until.get(domain, 0.0) - self.clock(), 0.0)

    def learn(self, sent: list[OutboundMessage], results: list[DeliveryResult]) -> None:
        """Brake the domains that deferred a cohort of this batch; release those that took one."""
        domain_by_id = {msg.notification_id: domain_of(msg.recipient) for msg in sent}
        deferred: Counter[str] = Counter()
        accepted: set[str] = set()
        for result in results:
            domain = domain_by_id.get(result.notification_id)
            if domain is None:
                continue
            if result.status is DeliveryStatus.SENT:
                accepted.add(domain)
            elif result.status is DeliveryStatus.FAILED_TEMPORARY:
                deferred[domain] += 1
        for domain in accepted:
            self._until.pop(domain, None)
            self._strikes.pop(domain, None)
        for domain, count in deferred.items():
            if domain not in accepted and count >= self.cohort:
                self._strikes[domain] += 1
                self._until[domain] = self.clock() + self.backoff(self._strikes[domain])


@dataclass
class BrakedNotifier:
    """An email notifier that holds messages to braked domains and teaches the brake."""

    inner: Notifier
    brake: DomainBrake
    name: str = field(init=False)

    def __post_init__(self) -> None:
        self.name = self.inner.name

    async def send(self, batch: list[OutboundMessage]) -> list[DeliveryResult]:
        held: list[DeliveryResult] = []
        to_send: list[OutboundMessage] = []
        for msg in batch:
            pause = self.brake.wait_for(domain_of(msg.recipient))
            if pause:
                held.append(
                    DeliveryResult(
                        notification_id=msg.notification_id,
                        status=DeliveryStatus.HELD,
                        detail=HELD,
                        retry_after=pause,
                    )
                )
            else:
                to_send.append(msg)
        results = await self.inner.send(to_send) if to_send else []
        self.brake.learn(to_send, results)
        return held + results
