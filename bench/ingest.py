"""Benchmark: import N generated affected people end to end, against a bare csv.reader pass.

    python bench/ingest.py                      # 1,000,000 rows, SQLite
    python bench/ingest.py --rows 10000000 --backend sqlite --backend postgresql

Generates a realistic export (English and Chinese people, phones, regions, about 2% bad
rows: broken emails, ragged lines, empty ids, repeated people), then for each backend runs
the same import the CLI runs (validation, encryption, blind indexes, merge, reject file,
timeline) in a fresh process, and prints rows/s, the peak RSS of the importing process and
of its largest worker, and the ratio to the baseline: a bare ``csv.reader`` pass over the
same file, measured in the same run.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scratch import create_database, drop_database

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
AREA_CODES = [201, 212, 213, 305, 312, 404, 415, 503, 617, 702, 713, 718, 805, 917, 929]
HEADER = ["subject_id", "name", "email", "phone", "locale", "country", "region", "tier"]


def generate(path: Path, rows: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for n in range(1, rows + 1):
            roll = rng.random()
            if rng.random() < 0.4:
                row = [f"C{n:09d}", f"王{n % 997}", f"u{n}@example.cn", f"139{n % 100_000_000:08d}",
                       "zh-CN", "CN", "CN-GD", "pro"]  # fmt: skip
            else:
                phone = f"+1 {rng.choice(AREA_CODES)} {200 + n // 10_000 % 800} {n % 10_000:04d}"
                row = [f"C{n:09d}", f"Alex Smith {n % 997}", f"u{n}@example.com",
                       phone, "en-US", "US", "CA", "free"]  # fmt: skip
            if roll < 0.005:
                row[2] = row[2].replace("@", "")  # broken email: kept, unreachable by email
            elif roll < 0.010:
                row = row[:3]  # ragged: rejected
            elif roll < 0.015:
                row[0] = ""  # no id: rejected
            elif roll < 0.020 and n > 1:
                row[0] = f"C{n - 1:09d}"  # the previous person again: merged
            writer.writerow(row)


def baseline(path: Path) -> float:
    """Seconds for a bare csv.reader pass: the floor any CSV import stands on."""
    started = time.perf_counter()
    with path.open(newline="", encoding="utf-8") as handle:
        for _ in csv.reader(handle):
            pass
    return time.perf_counter() - started


def child(path: Path, workers: int) -> None:
    """In a fresh process: declare an incident and import the file as the CLI does."""
    from datetime import timedelta

    from breachflow.flows.assess.subjects import import_subjects
    from breachflow.models import commands, runtime
    from breachflow.models.base import utcnow
    from breachflow.models.incident import Severity

    config, keys = runtime.settings(), runtime.vault()
    db = runtime.database()
    with db.unit_of_work() as session:
        incident = commands.declare(
            session, title="bench", description="bench", severity=Severity.HIGH,
            detected_at=utcnow() - timedelta(hours=2), aware_at=utcnow() - timedelta(hours=1),
            data_categories=["email"], actor="bench",
        )  # fmt: skip
    started = time.perf_counter()
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, incident.key)
        report = import_subjects(
            session, incident, path, actor="bench", vault=keys, default_locale="en",
            rejects_dir=config.home / "rejects", workers=workers,
        )  # fmt: skip
    seconds = time.perf_counter() - started
    print(json.dumps({
        "rows": report.rows, "new": report.new, "merged": report.merged,
        "rejected": report.rejected_count, "seconds": seconds,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "worker_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }))  # fmt: skip


def run_import(path: Path, backend: str, pg_url: str, workers: int, home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BREACH_")}
    env |= {"BREACH_HOME": str(home), "BREACH_DATA_KEY": _key()}
    database = None
    if backend == "postgresql":
        database = create_database(pg_url)
        env["BREACH_DATABASE_URL"] = database[1]
    try:
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(path), "--workers", str(workers)],
            env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
    finally:
        if database:
            drop_database(pg_url, database[0])
    return json.loads(out.stdout.strip().splitlines()[-1])


def _key() -> str:
    from breachflow.models.crypto import generate_key

    return generate_key()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--backend", action="append", choices=["sqlite", "postgresql"])
    parser.add_argument("--pg-url", default=os.environ.get("BREACH_BENCH_POSTGRES_URL", DEFAULT_PG))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.workers)
        return
    with tempfile.TemporaryDirectory(prefix="breach-bench-") as tmp:
        path = Path(tmp) / "export.csv"
        started = time.perf_counter()
        generate(path, args.rows)
        size = path.stat().st_size / 1e6
        took = time.perf_counter() - started
        print(f"generated {args.rows:,} rows ({size:,.0f} MB) in {took:.1f} s")
        floor = baseline(path)
        floor_rate = args.rows / floor
        print(f"baseline: bare csv.reader pass {floor:.2f} s = {floor_rate:,.0f} rows/s")
        print(f"{'backend':<11} {'rows/s':>9} {'seconds':>8} {'new':>10} {'merged':>7} "
              f"{'rejected':>8} {'RSS MB':>7} {'worker MB':>9} {'vs csv.reader':>13}")  # fmt: skip
        for backend in args.backend or ["sqlite"]:
            result = run_import(path, backend, args.pg_url, args.workers, Path(tmp) / backend)
            rate = result["rows"] / result["seconds"]
            print(
                f"{backend:<11} {rate:>9,.0f} {result['seconds']:>8.1f} {result['new']:>10,} "
                f"{result['merged']:>7,} {result['rejected']:>8,} {result['rss_mb']:>7,.0f} "
                f"{result['worker_rss_mb']:>9,.0f} {rate / floor_rate:>12.3f}x"
            )


if __name__ == "__main__":
    main()
