"""Benchmark: how long claiming a batch takes as an incident's ledger fills with sent rows.

    python bench/claim.py                    # 1,000,000 ledger rows, PostgreSQL
    python bench/claim.py --rows 10000000

Builds one incident of N people, each with a queued email row (straight in SQL: this
measures the claim, not the import), then marks 0 %, 90 % and 99 % of them sent and times
`ledger.claim` of one batch (500 rows, the default) as a dispatcher does it, rolled back
after each try so every try sees the same ledger. Prints the median per level and its
ratio to the claim at 0 % sent, measured in the same run: a claim that walks the sent rows
grows with them; one served by the index of pending rows stays flat.
PostgreSQL: `BREACH_BENCH_POSTGRES_URL` (default
`postgresql+psycopg://postgres@127.0.0.1:5432/test`; a database is created and dropped).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
from datetime import timedelta

import sqlalchemy as sa

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TRIES = 15


def _database(admin_url: str) -> tuple[str, str]:
    name = f"breach_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    url = sa.engine.make_url(admin_url).set(database=name)
    return name, url.render_as_string(hide_password=False)


def _drop(admin_url: str, name: str) -> None:
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def _fill(db: object, rows: int) -> str:
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
            " residence_inferred) SELECT %s, 'P' || g, 'en', g, now(), false"
            " FROM generate_series(1, %s) g",
            (incident_id, rows),
        )
        conn.exec_driver_sql(
            "INSERT INTO notifications (incident_id, subject_id, channel, notice_version, state,"
            " attempts, idempotency_key, queued_at, updated_at)"
            " SELECT %s, id, 'email', 1, 'queued', 0, md5(id::text), now(), now()"
            " FROM subjects WHERE incident_id = %s",
            (incident_id, incident_id),
        )
        conn.exec_driver_sql("ANALYZE subjects")
        conn.exec_driver_sql("ANALYZE notifications")
    return key


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
    name, url = _database(admin_url)
    try:
        db = Database(url)
        db.upgrade()
        started = time.perf_counter()
        key = _fill(db, args.rows)
        print(f"{args.rows:,} ledger rows in {time.perf_counter() - started:.1f} s")
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
        _drop(admin_url, name)


if __name__ == "__main__":
    main()
