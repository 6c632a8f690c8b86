"""Benchmark: `breach run` resuming an incident of 1,000,000 people killed mid-notify.

    python bench/resume.py                             # 1,000,000 people, 2 workers
    python bench/resume.py --people 100000 --kill-after 20000

What a crash of everything costs before sending starts again. Set up as ``bench/incident.py``
does, on PostgreSQL with a Prefect server and ``--workers`` ``breach worker`` processes, an
SMTP sink counting messages in its own process, and people with an email address each
(generated; imported with ``breach subjects import``). Then:

1. ``breach run INC`` (the fresh run): timed from its start to the sink's first message.
   This is the baseline of the same run: it queues everyone and starts the shards;
2. once the sink has ``--kill-after`` (100,000) messages, the ``breach run`` process, the
   workers and their shard runs are killed with SIGKILL, as a machine that loses power;
3. new workers start (not timed: a restarted machine starts its services first);
4. ``breach run INC`` again (the resumed run): timed from its start to the first message
   the sink gets after the crash. Target: 60 s (issue 15), whatever the population;
5. with ``--finish``, the resumed run goes on to the end, and the bench checks that every
   person has one ``sent`` row and that the sink's duplicates are at most the rows that
   were leased when the crash came. Without it, the resumed run is stopped once measured.

Prints both times, their ratio and the ratio to the target; exits 1 if the resumed run
sent nothing within ``--timeout`` seconds or a check fails. Cleans up as
``bench/incident.py`` does (``--keep`` keeps the databases and the folder).
PostgreSQL: ``BREACH_BENCH_POSTGRES_URL`` or ``--pg-url``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from incident import (
    DEFAULT_PG,
    HEADER,
    ROOT,
    Bench,
    BenchFailed,
    _iso,
    base_env,
    breach,
    create_database,
    live_env,
    person,
    run_and_clean_up,
    sink_stats,
    start_prefect,
)

TARGET_SECONDS = 60.0


def write_email_people(path: Path, people: int) -> None:
    import csv

    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for n in range(1, people + 1):
            writer.writerow(person(n, "email"))


def sent_at_sink(smtp: dict[str, Any]) -> int:
    return int(sink_stats(smtp["control"])["messages"])


def wait_for_named_workers(api: str, pool: str, names: set[str], timeout: float = 180) -> None:
    """Until the workers called ``names`` poll the pool (the dead ones stay listed)."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            reply = httpx.post(f"{api}/work_pools/{pool}/workers/filter", json={}, timeout=10)
            if reply.status_code == 200 and names <= {w["name"] for w in reply.json()}:
                return
        time.sleep(0.5)
    raise BenchFailed(f"workers {sorted(names)} did not poll {pool}")


def start_workers(bench: Bench, env: dict[str, str], first: int, count: int) -> set[str]:
    names = {f"worker-{n}" for n in range(first, first + count)}
    for name in sorted(names):
        bench.start(name, [breach(), "worker", "--name", name, "--limit", "1"], env)
    return names


def until_sink_passes(
    smtp: dict[str, Any], count: int, process: Any, timeout: float, bench: Bench, role: str
) -> float:
    """Wait until the sink has more than ``count`` messages; the moment it did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sent_at_sink(smtp) > count:
            return time.perf_counter()
        if process.poll() is not None:
            raise BenchFailed(f"{role} ended (exit {process.returncode}):\n{bench.tail(role)}")
        time.sleep(0.1)
    raise BenchFailed(f"{role} sent nothing within {timeout:.0f} s:\n{bench.tail(role)}")


def kill_everything_of(bench: Bench, roles: tuple[str, ...]) -> int:
    """SIGKILL the processes of ``roles`` and their descendants (the shard runs); how many."""
    bench.monitor.scan()
    with bench.monitor.lock:
        doomed = [s.pid for s in bench.monitor.seen.values() if s.role.startswith(roles)]
    alive = set(bench.monitor.descendants_alive())
    killed = 0
    for pid in doomed:
        if pid in alive:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
    for role, process in bench.processes:
        if role.startswith(roles):
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                process.wait(timeout=10)
    return killed


def ledger_states(database_url: str, key: str) -> dict[str, int]:
    import sqlalchemy as sa

    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT n.state, count(*) FROM notifications n JOIN incidents i"
                " ON i.id = n.incident_id WHERE i.key = %s GROUP BY n.state",
                (key,),
            ).all()
        return {str(state): int(n) for state, n in rows}
    finally:
        engine.dispose()


def run(args: argparse.Namespace, bench: Bench) -> int:

    bench.monitor.start()
    home = bench.tmp / "home"
    home.mkdir()
    print(f"== setup: {args.people:,} people with an email address, {args.workers} workers")
    smtp = bench.start_sink("smtp sink", ["smtp"], base_env(bench.tmp / "sinks"))
    name, database_url = create_database(args.pg_url)
    bench.add_database(name)
    api = start_prefect(bench, args.pg_url)
    pool = f"breachflow-resume-{os.getpid()}"
    env = live_env(home, database_url, smtp["smtp"], api, pool, args.workers)
    people_file = bench.tmp / "people.csv"
    write_email_people(people_file, args.people)
    now = time.time()
    _, output = bench.cli(
        "breach declare",
        ["declare", "--title", "Bench: resume after a crash", "--severity", "high",
         "--detected-at", _iso(now - 2 * 86400), "--aware-at", _iso(now - 86400),
         "--data-category", "name", "--data-category", "email",
         "--description", "Generated people (bench/resume.py).",
         "--notice", str(ROOT / "examples" / "notice.yaml")],
        env,
    )  # fmt: skip
    found = re.search(r"INC-\d{4}-\d+", output)
    if not found:
        raise BenchFailed(f"no incident key in `breach declare`'s output:\n{output}")
    key = found.group(0)
    worker_env = {k: v for k, v in env.items() if k != "PREFECT_LOGGING_LEVEL"}
    wait_for_named_workers(api, pool, start_workers(bench, worker_env, 1, args.workers))
    seconds, _ = bench.cli("breach subjects import", ["subjects", "import", key,
                           str(people_file)], env)  # fmt: skip
    print(f"  {key}: {args.people:,} people imported in {seconds:.1f} s")

    print("== the fresh run")
    started = time.perf_counter()
    first = bench.start("breach run #1", [breach(), "run", key], env)
    fresh = until_sink_passes(smtp, 0, first, args.timeout, bench, "breach run #1") - started
    print(f"  first message {fresh:.1f} s after `breach run` started")
    until_sink_passes(smtp, args.kill_after - 1, first, 3600, bench, "breach run #1")
    killed = kill_everything_of(bench, ("breach run #1", "worker"))
    time.sleep(1)  # what was on the wire when the power went has arrived, or never will
    at_crash = sent_at_sink(smtp)
    states = ledger_states(database_url, key)
    leased = states.get("sending", 0)
    print(f"  killed {killed} processes (the run, the workers, their shard runs) at"
          f" {at_crash:,} messages; ledger: {states}")  # fmt: skip

    print("== the resumed run")
    wait_for_named_workers(
        api, pool, start_workers(bench, worker_env, args.workers + 1, args.workers)
    )
    started = time.perf_counter()
    second = bench.start("breach run #2", [breach(), "run", key], env)
    resumed = (
        until_sink_passes(smtp, at_crash, second, args.timeout, bench, "breach run #2") - started
    )
    print(f"  first message {resumed:.1f} s after `breach run` started")
    failures: list[str] = []
    if args.finish:
        code = second.wait()
        if code != 0:
            failures.append(f"the resumed run failed (exit {code}): {bench.tail('breach run #2')}")
        stats = sink_stats(smtp["control"])
        states = ledger_states(database_url, key)
        duplicates = stats["messages"] - stats["distinct_ids"]
        print(f"  ended: ledger {states}; sink {stats['messages']:,} messages,"
              f" {stats['distinct_ids']:,} distinct, {duplicates:,} sent twice"
              f" (at most {leased:,}: the rows leased at the crash)")  # fmt: skip
        if states.get("sent", 0) != args.people or len(states) != 1:
            failures.append(f"not everyone has one sent row: {states}")
        if stats["distinct_ids"] != args.people or duplicates > leased:
            failures.append(f"sink: {stats['distinct_ids']:,} distinct, {duplicates:,} twice")

    print(f"\n== {args.people:,} people, killed after {at_crash:,} messages")
    print(f"fresh run to its first message:   {fresh:6.1f} s (baseline)")
    print(f"resumed run to its first message: {resumed:6.1f} s"
          f" ({resumed / fresh:.2f}x the fresh run; {resumed / TARGET_SECONDS:.2f} of the"
          f" {TARGET_SECONDS:.0f} s target)")  # fmt: skip
    for failure in failures:
        print(f"FAILED: {failure}")
    return 1 if failures else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2, help="breach worker processes")
    parser.add_argument("--kill-after", type=int, default=100_000, help="messages at the sink")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to a first message")
    parser.add_argument("--finish", action="store_true", help="run the resumed run to its end")
    parser.add_argument("--keep", action="store_true", help="keep the databases and the folder")
    parser.add_argument("--pg-url", default=os.environ.get("BREACH_BENCH_POSTGRES_URL", DEFAULT_PG))
    args = parser.parse_args()
    if not 0 < args.kill_after < args.people:
        parser.error("--kill-after must be between 0 and --people")
    run_and_clean_up(args, run, "breach-resume-")


if __name__ == "__main__":
    main()
