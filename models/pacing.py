"""Per-channel send rates held across every dispatcher process, in our own database.

A provider's limit (e.g. 100 SMS a second for the account) is shared by all workers that
dispatch an incident, so it cannot live in one process. Each limit is one row holding the
moment its next free slot begins (the virtual schedule of GCRA). A worker reserves a short
run of slots in one transaction (``FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on
SQLite), then spaces its messages evenly across them, so the rate is never exceeded in any
second, whatever the number of workers. Reservations are small (a tenth of a second of
traffic), so slots a worker reserves but does not use cost little.

Why not Prefect's ``rate_limit``: measured here it manages about 5.6 calls a second
(``reference/prefect-notes.md``), far below per-message SMS rates, and it needs a Prefect
server shared by all workers; our database is shared by them already. Times are wall-clock
seconds, so workers on several hosts need synchronized clocks (NTP), as leases already do.
"""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import Float, String, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.base import Base
from models.db import Database

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
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        async with self._lock:
            if not self._slots:
                start = await asyncio.to_thread(self._reserve)
                self._slots = [start + i / self.per_second for i in range(self.chunk)]
                self._slots.reverse()
            slot = self._slots.pop()
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
