"""The one protocol every channel adapter implements, sandbox or real."""

from __future__ import annotations

from typing import Protocol

from breachflow.models.delivery import DeliveryResult, OutboundMessage


class Notifier(Protocol):
    """Sends a batch and reports one normalized result per message, in any order.

    An adapter never raises for a single recipient's failure: it reports it. It raises only
    when it could not try at all (e.g. the provider is unreachable), and then nothing in
    the batch was sent; the dispatcher treats that as a temporary failure of the batch.
    """

    name: str

    async def send(self, batch: list[OutboundMessage]) -> list[DeliveryResult]: ...


class Pacer(Protocol):
    """A rate limiter shared by every dispatcher (``models.pacing``): adapters await
    ``wait`` once before each request to their provider, which returns the request's slot;
    adapters that send from worker threads also call ``depart(slot)`` in the thread,
    immediately before the request leaves (a request held up on its way takes a new slot)."""

    async def wait(self) -> float: ...

    def depart(self, slot: float) -> float: ...
