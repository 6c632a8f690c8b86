"""Benchmark: the delivery ledger at scale: queueing everyone, resuming, claiming batches.

    python bench/ledger.py                   # 1,000,000 people, PostgreSQL
    python bench/ledger.py --rows 10000000

Builds one incident of N people with an email address each (straight in SQL: this measures
the ledger, not the import), then:
- queue: `ledger.queue` puts everyone on their first channel, as the notify step does;
  its time and the growth of this process's peak RSS, against a bare
  `INSERT ... SELECT` of the same rows in the same run (the floor);
- resume: `ledger.queue` again, as a run resumed after a crash does: nobody is new;
- claim: marks 0 %, 90 % and 99 % of the rows sent and times `ledger.claim` of one batch
  (500 rows, the default), rolled back after each try so every try sees the same ledger;
  the median per level and its ratio to the claim at 0 % sent: a claim that walks the
  sent rows grows with them; one served by the index of pending rows stays flat.
PostgreSQL: `BREACH_BENCH_POSTGRES_URL` (default
`postgresql+psycopg://postgres@127.0.0.1:5432/test`; a database is created and dropped).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time
from datetime import timedelta

from scratch import create_database, drop_database

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TRIES = 15


def _people(db: object, rows: int) -> tuple[str, int]:
    """An incident of ``rows`` people, each with an email address (a placeholder cipher)."""
    from breachflow.models import commands
    from breachflow.models.base import utcnow
    from breachflow.models.incident import Severity

    with db.unit_of_work() as session:  # type: ignore[attr-defined]
        incident = commands.declare(
            session, title="bench", description="bench", severity=Severity.HIGH,
            detected_at=utcnow() - timedelta(hours=2), aware_at=utcnow() - timedelta(hours=1),
            data_categories=["email"], actor="bench",
        )  # fmt: skip
        key, incident_id = incident.key, incident.id
    with db.engine.begin() as conn:  # type: ignore[attr-defined]
        conn.exec_driver_sql(
            "INSERT INTO subjects (incident_id, external_id, locale, source_line, imported_at,"
            " residence_inferred, email_enc) SELECT %s, 'P' || g, 'en', g, now(), false,"
            " '\\x00'::bytea FROM generate_series(1, %s) g",
            (incident_id, rows),
        )
        conn.exec_driver_sql("ANALYZE subjects")
    return key, incident_id


def _bare_insert_seconds(db: object, incident_id: int) -> float:
    """The floor: the same rows written by one INSERT ... SELECT, rolled back."""
    with db.engine.connect() as conn:  # type: ignore[attr-defined]
        started = time.perf_counter()
        with conn.begin() as transaction:
            conn.exec_driver_sql(
                "INSERT INTO notifications (incident_id, subject_id, channel, notice_version,"
                " state, attempts, idempotency_key, queued_at, updated_at)"
                " SELECT %s, id, 'email', 1, 'queued', 0, md5(id::text), now(), now()"
                " FROM subjects WHERE incident_id = %s",
                (incident_id, incident_id),
            )
            seconds = time.perf_counter() - started
            transaction.rollback()
    return seconds


def _queue_seconds(db: object, key: str) -> tuple[float, dict[str, int]]:
    from breachflow.models import commands, ledger
    from breachflow.models.delivery import Channel

    started = time.perf_counter()
    with db.unit_of_work() as session:  # type: ignore[attr-defined]
        incident = commands.get_incident(session, key)
        queued = ledger.queue(session, incident, [Channel.EMAIL], 1)
    return time.perf_counter() - started, dict(queued)


def _claim_ms(db: object, key: str) -> float:
    from breachflow.models import commands, ledger
    from breachflow.models.delivery import Channel

    times = []
    for _ in range(TRIES):
        with db._sessions() as session:  # type: ignore[attr-defined]
            incident = commands.get_incident(session, key)
            started = time.perf_counter()
            claimed = ledger.claim(session, incident, Channel.EMAIL, "bench/1/x", 500, 300)
            times.append((time.perf_counter() - started) * 1000)
            assert len(claimed) == 500
            session.rollback()
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    from breachflow.models.db import Database

    admin_url = os.environ.get("BREACH_BENCH_POSTGRES_URL", DEFAULT_PG)
    name, url = create_database(admin_url)
    try:
        db = Database(url)
        db.upgrade()
        started = time.perf_counter()
        key, incident_id = _people(db, args.rows)
        print(f"{args.rows:,} people in {time.perf_counter() - started:.1f} s")
        bare = _bare_insert_seconds(db, incident_id)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        seconds, queued = _queue_seconds(db, key)
        grew = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss) / 1024
        print(
            f"queue:  {seconds:6.1f} s, peak RSS +{grew:.0f} MB ({seconds / bare:.1f}x a bare"
            f" INSERT ... SELECT of the same rows: {bare:.1f} s); queued {queued}"
        )
        seconds, queued = _queue_seconds(db, key)
        print(f"resume: {seconds:6.1f} s (everyone already queued: {queued or 'none new'})")
        with db.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE notifications")
        baseline = None
        for sent in (0.0, 0.9, 0.99):
            with db.engine.begin() as conn:
                conn.exec_driver_sql(
                    "UPDATE notifications SET state = 'sent' WHERE id <= %s AND state = 'queued'",
                    (int(args.rows * sent),),
                )
                conn.exec_driver_sql("ANALYZE notifications")
            ms = _claim_ms(db, key)
            baseline = baseline or ms
            ratio = ms / baseline
            print(f"claim of 500 at {sent:4.0%} sent: {ms:8.2f} ms ({ratio:.2f}x the 0 % claim)")
        db.dispose()
    finally:
        drop_database(admin_url, name)


if __name__ == "__main__":
    main()
