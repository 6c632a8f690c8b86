"""Provider limits held across every dispatcher process, in our own database.

Two kinds: a send **rate** (messages a second, e.g. Twilio's 100 SMS/s) and a number of
**connection slots** (e.g. 30 SMTP connections a relay allows us).

A provider's limit is shared by all workers that dispatch an incident, so it cannot live
in one process. Each rate is one row holding the moment its next free slot begins (the
virtual schedule of GCRA). A worker reserves a run of slots in one transaction (``FOR
UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite) and sends one message on each; a
message held up past its slot (by more than ``GRACE_SECONDS``) takes another, so the rate
is never exceeded in any second, whatever the number of workers.
A run is half a second of traffic, and the next is reserved in the background before the
current one is used up, so sending never waits for the database; slots a worker reserves
but does not use (at most a run) are lost to the others.

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
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Float, Integer, String, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from breachflow.models.base import Base
from breachflow.models.db import Database
from breachflow.models.workers import orphaned

RESERVE_SECONDS = 0.5  # how much traffic one reservation covers
#: A request leaves within this long after its slot, or not on that slot. Requests reach
#: the provider a little after their slots (thread hand-off, the GIL, a garbage
#: collection); one held up longer takes a new slot, since leaving late it would land
#: among the slots that follow, perhaps another worker's. Slots are spaced so that any
#: second, widened by this grace, holds at most the rate's slots (see ``interval``).
GRACE_SECONDS = 0.02


class RateLimit(Base):
    __tablename__ = "rate_limits"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    next_free_at: Mapped[float] = mapped_column(Float)  # epoch seconds


class DatabasePacer:
    """``slot = await pacer.wait()`` before each message: returns at that message's slot.

    The ceiling holds across processes because every request leaves in
    ``[slot, slot + GRACE_SECONDS)`` and the shared schedule hands each slot out once, one
    ``interval`` apart: any second then holds the departures of slots in an interval of
    ``1 + GRACE_SECONDS`` seconds, at most ``per_second`` of them. Senders that send from
    a worker thread call ``depart(slot)`` there, which checks the slot again.

    One pacer serves a process for as long as it lives (the dispatcher's ``pacer_for``), from
    any thread and event loop: what it has reserved but not used carries over from one batch
    to the next.
    """

    def __init__(self, database: Database, name: str, per_second: float) -> None:
        if per_second <= 0:
            raise ValueError("a pacer needs a positive rate; use no pacer for no limit")
        self.database, self.name, self.per_second = database, name, per_second
        # An open interval of 1 + GRACE seconds holds fewer than (1 + GRACE) / interval + 1
        # points spaced ``interval`` apart: at most ``per_second`` of them.
        self.interval = (1 + GRACE_SECONDS) / per_second
        self.chunk = max(1, round(per_second * RESERVE_SECONDS))
        self._slots: list[float] = []  # this process's reserved slots, earliest last
        self._lock = threading.Lock()  # guards ``_slots``; never held across await
        self._refilling = threading.Lock()  # one reservation at a time

    async def wait(self) -> float:
        """Returns, within the grace, at the slot it returns."""
        while True:
            slot = self._take()
            while slot is None:
                await asyncio.to_thread(self._refill)
                slot = self._take()
            while (delay := slot - time.time()) > 0:
                await asyncio.sleep(delay)
            if time.time() < slot + GRACE_SECONDS:
                return slot
            # Woken too late (a busy event loop): the slot's moment is gone.

    def depart(self, slot: float) -> float:
        """Called by a thread that sends synchronously, just before its request leaves with
        the ``slot`` that ``wait`` gave it: returns once the request may leave (now, or at
        a new slot if it was held up past the grace on its way here), with that time."""
        while True:
            now = time.time()
            if slot <= now < slot + GRACE_SECONDS:
                return now
            if now >= slot + GRACE_SECONDS:
                slot = self._take_blocking()
            else:
                time.sleep(slot - now)

    def _take_blocking(self) -> float:
        slot = self._take()
        while slot is None:
            self._refill()
            slot = self._take()
        return slot

    def _take(self) -> float | None:
        now = time.time()
        with self._lock:
            # A slot whose grace has passed is forfeit: used now it would crowd the next ones.
            while self._slots and self._slots[-1] + GRACE_SECONDS <= now:
                self._slots.pop()
            if not self._slots:
                return None
            slot = self._slots.pop()
            running_low = len(self._slots) < self.chunk // 2
        if running_low and self._refilling.acquire(blocking=False):
            # Reserve the next run now, in the background: a reservation waits for the
            # database, and waited for when the last slot is gone it would be a pause.
            threading.Thread(target=self._top_up, name=f"pacer-{self.name}", daemon=True).start()
        return slot

    def _top_up(self) -> None:
        """Runs holding ``_refilling``, taken by the thread that started it."""
        try:
            self._add(self._reserve())
        finally:
            self._refilling.release()

    def _refill(self) -> None:
        with self._refilling:
            with self._lock:
                if self._slots:
                    return  # refilled while this one queued for the lock
            self._add(self._reserve())

    def _add(self, start: float) -> None:
        later = [start + i * self.interval for i in range(self.chunk)]
        later.reverse()
        with self._lock:
            self._slots = later + self._slots  # popped from the end: earliest last

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
                .values(next_free_at=start + self.chunk * self.interval)
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
