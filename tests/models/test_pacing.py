"""The shared rate limiter: never faster than its rate, alone or with other dispatchers.

Only lower bounds on time are asserted (a busy machine may always be slower), and the
shared-limit tests count sends in every sliding second, which no slowness can make exceed.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import select

from breachflow.models.db import Database
from breachflow.models.pacing import GRACE_SECONDS, RESERVE_SECONDS, DatabasePacer, RateLimit

EARLY = 1e-3  # float rounding of epoch seconds; a real early send would be far earlier


def next_free(db: Database, name: str) -> float:
    with db.unit_of_work() as session:
        value = session.scalar(select(RateLimit.next_free_at).where(RateLimit.name == name))
    assert value is not None
    return value


def busiest_second(times: list[float]) -> int:
    """The most of ``times`` that any one second [t, t + 1) holds."""
    times = sorted(times)
    return max(sum(1 for t in times[i:] if t < start + 1.0) for i, start in enumerate(times))


def test_waits_are_spaced_at_the_rate_from_the_first_slot(db):
    """Slots are one interval apart, a little longer than 1/rate (the grace), from a start
    no earlier than the first wait; reservations come in runs of half a second, the next
    one taken before the current one is used up."""
    rate, waits = 100.0, 120
    pacer = DatabasePacer(db, "sms", rate)
    returned: list[float] = []
    slots: list[float] = []

    async def send_all() -> None:
        for _ in range(waits):
            slots.append(await pacer.wait())
            returned.append(time.time())

    started = time.time()
    asyncio.run(send_all())

    assert pacer.interval == pytest.approx((1 + GRACE_SECONDS) / rate)
    assert pacer.chunk == round(rate * RESERVE_SECONDS)
    # Message n never leaves before its slot, at least started + n intervals.
    assert all(slot <= at for slot, at in zip(slots, returned, strict=True))
    early = [n for n, at in enumerate(returned) if at < started + n * pacer.interval - EARLY]
    assert early == []
    # Never more than the rate in any second.
    assert busiest_second(returned) <= rate
    # The shared schedule moved on by at least the slots taken (and one run ahead at most).
    assert next_free(db, "sms") >= started + waits * pacer.interval - EARLY
    assert next_free(db, "sms") <= time.time() + 2 * pacer.chunk * pacer.interval


def test_a_request_held_up_past_its_slot_leaves_on_a_new_one(db):
    """Leaving late, a request would land among the slots after its own (another worker's,
    perhaps): it takes the next free slot and leaves then."""
    pacer = DatabasePacer(db, "voice", 50.0)
    slot = asyncio.run(pacer.wait())
    time.sleep(3 * GRACE_SECONDS)  # a busy interpreter holds the request up
    departed = pacer.depart(slot)
    assert departed >= slot + 3 * GRACE_SECONDS
    # It left at a slot of its own: the next request's slot is a whole interval later.
    following = asyncio.run(pacer.wait())
    assert following - departed >= pacer.interval - GRACE_SECONDS - EARLY
    # On time, it leaves at once.
    assert pacer.depart(following) < following + GRACE_SECONDS


Sends = Callable[[DatabasePacer, int], Awaitable[list[float]]]


def two_dispatchers(settings, name: str, rate: float, sends: Sends) -> list[list[float]]:
    """Run ``sends(pacer, index)`` in two threads, each with its own event loop, pacer and
    database engine (as two processes would have), started together; their times."""
    times: list[list[float]] = [[], []]
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def dispatcher(index: int) -> None:
        database = Database(settings.resolved_database_url)
        try:
            barrier.wait(timeout=30)
            times[index] = asyncio.run(sends(DatabasePacer(database, name, rate), index))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            database.dispose()

    threads = [threading.Thread(target=dispatcher, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    return times


def test_two_dispatchers_sharing_a_limit_never_exceed_it_together(db, settings):
    """Two dispatchers share the limit "push" at 10 a second."""
    rate, waits = 10, 15

    async def send_all(pacer: DatabasePacer, index: int) -> list[float]:
        returned = []
        for _ in range(waits):
            await pacer.wait()
            returned.append(time.time())
        return returned

    returned = two_dispatchers(settings, "push", rate, send_all)
    assert [len(r) for r in returned] == [waits, waits]
    times = sorted(returned[0] + returned[1])
    assert busiest_second(times) <= rate
    # Together they took at least as long as the rate allows for all their messages.
    assert times[-1] - times[0] >= (2 * waits - 1) / rate - 2 * RESERVE_SECONDS
    # Neither ran alone: their sends interleave (the limit was shared, not taken in turn).
    assert min(returned[1]) < max(returned[0]) and min(returned[0]) < max(returned[1])


def test_dispatchers_held_up_on_the_way_out_never_exceed_the_limit_together(db, settings):
    """As on a machine whose cores are saturated: each request is held up 0-60 ms between
    its slot and the moment it leaves its sending thread. Two dispatchers, four requests in
    flight each, share SMS at 50 a second; what leaves, counted where it leaves, never
    exceeds 50 in any second (it reached 52 when late requests left on their old slots)."""
    rate, waits = 50, 60

    async def send_all(pacer: DatabasePacer, index: int) -> list[float]:
        delays, departed = random.Random(index), []

        def leave(slot: float) -> float:
            time.sleep(delays.uniform(0.0, 0.06))
            return pacer.depart(slot)

        async def sender() -> None:
            for _ in range(waits // 4):
                slot = await pacer.wait()
                departed.append(await asyncio.to_thread(leave, slot))

        await asyncio.gather(*(sender() for _ in range(4)))  # 4 requests in flight
        return departed

    departed = two_dispatchers(settings, "sms", rate, send_all)
    assert [len(d) for d in departed] == [waits, waits]
    assert busiest_second(departed[0] + departed[1]) <= rate


@pytest.mark.parametrize("rate", [0, -5])
def test_a_rate_of_zero_or_less_is_refused(db, rate):
    with pytest.raises(ValueError, match="positive rate"):
        DatabasePacer(db, "voice", rate)
