"""Provider limits held across every dispatcher process, in our own database.

Two kinds: a send **rate** (messages a second, e.g. Twilio's 100 SMS/s) and a number of
**connection slots** (e.g. 30 SMTP connections a relay allows us).

A provider's limit is shared by all workers that dispatch an incident, so it cannot live
in one process. Each rate is one row holding the
moment its next free slot begins (the virtual schedule of GCRA). A worker reserves a short
run of slots in one transaction (``FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on
SQLite), then spaces its messages evenly across them, so the rate is never exceeded in any
second, whatever the number of workers. Reservations are small (a tenth of a second of
traffic), so slots a worker reserves but does not use cost little.

Connection slots are rows leased like ledger rows: to a worker, until an expiry; a slot
whose holder died on this host is taken over at once, one whose lease ran out anywhere.

Why not Prefect's ``rate_limit`` and global concurrency limits: measured here, ``rate_limit``
manages about 5.6 calls a second (``reference/prefect-notes.md``), far below per-message SMS
rates; taking concurrency slots inside a task run cost about 2 s a batch on a SQLite-backed
Prefect API (its writes contend with the task's own), and the slots of a dispatcher killed
with SIGKILL were never given back by the embedded API, which blocked every later email.
Our database is shared by all workers already. Times are wall-clock seconds, so workers on
several hosts need synchronized clocks (NTP), as leases already do.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Float, Integer, String, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.base import Base
from models.db import Database
from models.workers import orphaned

RESERVE_SECONDS = 0.1  # how much traffic one reservation covers


class RateLimit(Base):
    __tablename__ = "rate_limits"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    next_free_at: Mapped[float] = mapped_column(Float)  # epoch seconds


class DatabasePacer:
    """``await pacer.wait()`` before each message: returns at that message's slot."""

    def __init__(self, database: Database, name: str, per_second: float) -> None:
        if per_second <= 0:
            raise ValueError("a pacer needs a positive rate; use no pacer for no limit")
        self.database, self.name, self.per_second = database, name, per_second
        self.chunk = max(1, round(per_second * RESERVE_SECONDS))
        self._slots: list[float] = []
        self._released = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        async with self._lock:
            if not self._slots:
                start = await asyncio.to_thread(self._reserve)
                self._slots = [start + i / self.per_second for i in range(self.chunk)]
                self._slots.reverse()
            # A request that left late must not let the next ones bunch up behind it: never
            # release sooner than one interval after the previous release.
            slot = max(self._slots.pop(), self._released + 1 / self.per_second)
            self._released = max(slot, time.time())
        delay = slot - time.time()
        if delay > 0:
            await asyncio.sleep(delay)

    def _reserve(self) -> float:
        """Take the next ``chunk`` slots of the shared schedule; returns when they begin."""
        with self.database.unit_of_work() as session:
            self._ensure_row(session)
            next_free = session.scalar(
                select(RateLimit.next_free_at).where(RateLimit.name == self.name).with_for_update()
            )
            start = max(time.time(), next_free or 0.0)
            session.execute(
                update(RateLimit)
                .where(RateLimit.name == self.name)
                .values(next_free_at=start + self.chunk / self.per_second)
            )
        return start

    def _ensure_row(self, session: Session) -> None:
        if session.get(RateLimit, self.name) is not None:
            return
        try:
            with session.begin_nested():
                session.execute(insert(RateLimit).values(name=self.name, next_free_at=0.0))
        except IntegrityError:
            pass  # another worker created it first: theirs serves us too


class ProviderSlot(Base):
    """One of a provider's connection slots; free when ``owner`` is None."""

    __tablename__ = "provider_slots"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    slot: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)  # epoch seconds


class ConnectionSlots:
    """``with slots.hold(owner, want) as n:`` open at most ``n`` connections meanwhile.

    ``total`` may change between runs (a new ``BREACH_SMTP_MAX_CONNECTIONS``): slots beyond
    it are simply never handed out again.
    """

    POLL_SECONDS = 0.2

    def __init__(self, database: Database, name: str, total: int, lease_seconds: float) -> None:
        self.database, self.name, self.total = database, name, total
        self.lease_seconds = lease_seconds

    @contextmanager
    def hold(self, owner: str, want: int) -> Iterator[int]:
        """Wait until at least one slot is free; hold up to ``want`` of them."""
        taken = self._take(owner, want)
        while not taken:
            time.sleep(self.POLL_SECONDS)
            taken = self._take(owner, want)
        try:
            yield len(taken)
        finally:
            with self.database.unit_of_work() as session:
                session.execute(
                    update(ProviderSlot)
                    .where(
                        ProviderSlot.name == self.name,
                        ProviderSlot.slot.in_(taken),
                        ProviderSlot.owner == owner,
                    )
                    .values(owner=None, expires_at=None)
                )

    def _take(self, owner: str, want: int) -> list[int]:
        now = time.time()
        with self.database.unit_of_work() as session:
            self._ensure_rows(session)
            rows = session.execute(
                select(ProviderSlot.slot, ProviderSlot.owner, ProviderSlot.expires_at)
                .where(ProviderSlot.name == self.name, ProviderSlot.slot < self.total)
                .order_by(ProviderSlot.slot)
                .with_for_update(skip_locked=True)
            ).all()
            free = [
                slot
                for slot, holder, expires in rows
                if holder is None or (expires or 0) < now or orphaned(holder)
            ][:want]
            if free:
                session.execute(
                    update(ProviderSlot)
                    .where(ProviderSlot.name == self.name, ProviderSlot.slot.in_(free))
                    .values(owner=owner, expires_at=now + self.lease_seconds)
                )
        return free

    def _ensure_rows(self, session: Session) -> None:
        have = session.scalar(select(func.count()).where(ProviderSlot.name == self.name))
        if have and have >= self.total:
            return
        try:
            with session.begin_nested():
                existing = set(
                    session.scalars(select(ProviderSlot.slot).where(ProviderSlot.name == self.name))
                )
                missing = [
                    {"name": self.name, "slot": n} for n in range(self.total) if n not in existing
                ]
                session.execute(insert(ProviderSlot), missing)
        except IntegrityError:
            pass  # another worker added them first
