"""The rows PostgreSQL reads for a step: a cost per person that CI's noise cannot move.

Wall time on a shared machine varies by a factor of two from run to run; what grows with
the square of the population is the work the database does per row (a plan that scans
everyone imported so far, a claim that walks every row already sent). So a step's cost is
counted as the tuples PostgreSQL read for it, sequentially or through an index
(``pg_stat_user_tables``), summed over our tables; and as the pages it visited
(``pg_statio_user_tables``, tables and indexes, from the cache or the disk), which also
counts rows a scan walked but could not see: those a statement adds to a table it reads.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

READS = sa.text(
    "SELECT coalesce(sum(seq_tup_read + coalesce(idx_tup_fetch, 0)), 0) FROM pg_stat_user_tables"
)
PAGES = sa.text(
    "SELECT coalesce(sum(heap_blks_read + heap_blks_hit + coalesce(idx_blks_read, 0)"
    " + coalesce(idx_blks_hit, 0)), 0) FROM pg_statio_user_tables"
)


@dataclass
class Reads:
    rows: int = 0
    pages: int = 0


def _total(url: str) -> tuple[int, int]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return int(conn.execute(READS).scalar_one()), int(conn.execute(PAGES).scalar_one())
    finally:
        engine.dispose()


@contextmanager
def reads(session: Session, url: str) -> Iterator[Reads]:
    """Counts what ``session``'s transaction reads in the block. The session's backend
    flushes its counters as it goes idle at the end of the transaction; asked to, it does
    so at once (``pg_stat_force_next_flush``), so the count is complete when read."""
    counted = Reads()
    before = _total(url)
    session.execute(sa.text("SELECT pg_stat_force_next_flush()"))
    yield counted
    session.commit()
    after = _total(url)
    counted.rows, counted.pages = after[0] - before[0], after[1] - before[1]
