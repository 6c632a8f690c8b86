"""The shared rate limiter: never faster than its rate, alone or with other dispatchers.

Only lower bounds on time are asserted (a busy machine may always be slower), and the
shared-limit test counts sends in every sliding second, which no slowness can make exceed.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time

import pytest
from sqlalchemy import select

from breachflow.models.db import Database
from breachflow.models.pacing import HEADROOM, RESERVE_SECONDS, DatabasePacer, RateLimit

EARLY = 1e-3  # float rounding of epoch seconds; a real early send would be far earlier


def next_free(db: Database, name: str) -> float:
    with db.unit_of_work() as session:
        value = session.scalar(select(RateLimit.next_free_at).where(RateLimit.name == name))
    assert value is not None
    return value


def test_waits_are_spaced_at_the_rate_from_the_first_slot(db):
    """Slots are one interval apart, a little longer than 1/rate (the headroom), from a start
    no earlier than the first wait; reservations come in runs of half a second, the next
    one taken before the current one is used up."""
    rate, waits = 100.0, 120
    pacer = DatabasePacer(db, "sms", rate)
    returned: list[float] = []

    async def send_all() -> None:
        for _ in range(waits):
            await pacer.wait()
            returned.append(time.time())

    started = time.time()
    asyncio.run(send_all())

    assert pacer.interval == pytest.approx(1 / (rate * (1 - HEADROOM)))
    assert pacer.chunk == round(rate * RESERVE_SECONDS)
    # Message n never leaves before its slot, at least started + n intervals.
    early = [n for n, at in enumerate(returned) if at < started + n * pacer.interval - EARLY]
    assert early == []
    # Never more than the paced rate in any second.
    busiest = max(sum(1 for t in returned[i:] if t < at + 1.0) for i, at in enumerate(returned))
    assert busiest <= math.floor(1 / pacer.interval) + 1
    # The shared schedule moved on by at least the slots taken (and one run ahead at most).
    assert next_free(db, "sms") >= started + waits * pacer.interval - EARLY
    assert next_free(db, "sms") <= time.time() + 2 * pacer.chunk * pacer.interval


def test_departures_never_exceed_the_paced_rate_in_any_second(db):
    """Requests held up on their way out (here: all released at once) leave spread out."""
    rate = 50.0
    pacer = DatabasePacer(db, "voice", rate)
    departed: list[float] = []
    for _ in range(70):
        pacer.depart()
        departed.append(time.time())
    per_second = math.floor(1 / pacer.interval)
    busiest = max(sum(1 for t in departed[i:] if t < at + 1.0) for i, at in enumerate(departed))
    assert busiest <= per_second
    # The first second's worth leaves at once (they were late already), the rest a second on.
    assert departed[per_second] - departed[0] >= 1.0 - EARLY


def test_two_dispatchers_sharing_a_limit_never_exceed_it_together(db, settings):
    """Two threads, each with its own event loop, pacer and database engine (as two
    processes would have), share the limit "push" at 10 a second."""
    rate, waits = 10, 15
    returned: list[list[float]] = [[], []]
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def dispatcher(index: int) -> None:
        database = Database(settings.resolved_database_url)
        pacer = DatabasePacer(database, "push", rate)

        async def send_all() -> None:
            for _ in range(waits):
                await pacer.wait()
                returned[index].append(time.time())

        try:
            barrier.wait(timeout=30)
            asyncio.run(send_all())
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
    assert [len(r) for r in returned] == [waits, waits]

    times = sorted(returned[0] + returned[1])
    busiest = max(
        sum(1 for other in times[i:] if other < start + 1.0) for i, start in enumerate(times)
    )
    assert busiest <= rate + 1
    # Together they took at least as long as the rate allows for all their messages.
    assert times[-1] - times[0] >= (2 * waits - 1) / rate - 2 * RESERVE_SECONDS
    # Neither ran alone: their sends interleave (the limit was shared, not taken in turn).
    assert min(returned[1]) < max(returned[0]) and min(returned[0]) < max(returned[1])


@pytest.mark.parametrize("rate", [0, -5])
def test_a_rate_of_zero_or_less_is_refused(db, rate):
    with pytest.raises(ValueError, match="positive rate"):
        DatabasePacer(db, "voice", rate)
