"""Alert intake under load: ``python bench/intake.py`` (``--pg`` for PostgreSQL).

Starts ``breach serve`` on loopback and measures, in the same run:

1. **baseline**: the public report page (``GET /report``: no database, no signature) at a
   steady rate, open loop: each request leaves on schedule whatever the answers do;
2. **steady**: signed alerts (``POST /api/v1/alerts``, HMAC checked, replay table
   written, alert group locked and counted) at the same rate, from 20 monitored things;
3. **storm**: 10,000 identical alerts as fast as 32 connections send them; afterwards
   the database must hold exactly one incident for them.

Prints alerts/s, p50/p99 latency and the ratio of the intake's p99 to the baseline's.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from scratch import create_database

ROOT = Path(__file__).resolve().parents[1]
BREACH = str(Path(sys.executable).parent / "breach")
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100, help="Requests per second.")
    parser.add_argument("--seconds", type=float, default=20, help="Length of each steady run.")
    parser.add_argument("--storm", type=int, default=10_000, help="Identical alerts.")
    parser.add_argument("--pg", action="store_true", help="PostgreSQL instead of SQLite.")
    parser.add_argument("--pg-url", default=os.environ.get("BREACH_BENCH_POSTGRES_URL", DEFAULT_PG))
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="bench-intake-"))
    env = _env(home, args.pg_url if args.pg else None)
    secret = subprocess.run(
        [BREACH, "alerts", "add-source", "bench"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    port = _free_port()
    log = (home / "serve.log").open("w")
    server = subprocess.Popen(
        [BREACH, "serve", "--port", str(port), "--watchdog-every", "0"], env=env,
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url)
        base = asyncio.run(_steady(url, args.rate, args.seconds, None))
        steady = asyncio.run(_steady(url, args.rate, args.seconds, secret))
        storm = asyncio.run(_storm(url, secret, args.storm))
        incidents = _incidents(env)
    except Exception:
        print((home / "serve.log").read_text()[-3000:], file=sys.stderr)
        raise
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(home, ignore_errors=True)

    backend = "PostgreSQL" if args.pg else "SQLite"
    print(f"\nAlert intake, {backend}, {os.cpu_count()} cores, {args.rate:.0f} req/s steady")
    print(f"{'run':<28}{'req':>8}{'ok':>8}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}")
    for name, result in (("baseline GET /report", base), ("signed alerts", steady)):
        print(
            f"{name:<28}{result['sent']:>8}{result['ok']:>8}{result['rate']:>9.1f}"
            f"{result['p50']:>9.1f}{result['p99']:>9.1f}"
        )
    print(
        f"{'storm (identical alerts)':<28}{storm['sent']:>8}{storm['ok']:>8}{storm['rate']:>9.1f}"
        f"{storm['p50']:>9.1f}{storm['p99']:>9.1f}"
    )
    print(f"\nratio p99 signed alerts / baseline: {steady['p99'] / base['p99']:.2f}")
    print(
        f"incidents after the storm: {incidents} (must be 1 for the storm + 20 from the steady run)"
    )


async def _steady(url: str, rate: float, seconds: float, secret: str | None) -> dict[str, float]:
    """Open loop: request n leaves at start + n / rate, whether or not earlier ones returned."""
    latencies: list[float] = []
    ok = 0
    total = int(rate * seconds)

    async def one(client: httpx.AsyncClient, n: int) -> None:
        nonlocal ok
        started = time.perf_counter()
        try:
            if secret is None:
                answer = await client.get(f"{url}/report")
            else:
                alert = {
                    "title": f"Disk almost full on db-{n % 20}",
                    "labels": {"host": f"db-{n % 20}"},
                }
                numbered, headers = _signed(secret, json.dumps(alert).encode(), n)
                answer = await client.post(
                    f"{url}/api/v1/alerts", content=numbered, headers=headers
                )
        except httpx.HTTPError:
            return  # counted as not ok: sent minus ok is the failures
        latencies.append((time.perf_counter() - started) * 1000)
        ok += answer.status_code in (200, 202)

    limits = httpx.Limits(max_connections=200)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        start = time.perf_counter()
        tasks = []
        for n in range(total):
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(client, n)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    return _stats(latencies, total, ok, elapsed)


async def _storm(url: str, secret: str, count: int) -> dict[str, float]:
    body = json.dumps({"title": "Bulk export detected", "labels": {"table": "customers"}}).encode()
    latencies: list[float] = []
    ok = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(count):
        queue.put_nowait(n)

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal ok
        while not queue.empty():
            n = queue.get_nowait()
            numbered, headers = _signed(secret, body, n)
            started = time.perf_counter()
            try:
                answer = await client.post(
                    f"{url}/api/v1/alerts", content=numbered, headers=headers
                )
            except httpx.HTTPError:
                continue  # counted as not ok
            latencies.append((time.perf_counter() - started) * 1000)
            ok += answer.status_code == 202

    async with httpx.AsyncClient(timeout=60) as client:
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(32)))
        elapsed = time.perf_counter() - start
    return _stats(latencies, count, ok, elapsed)


def _signed(secret: str, body: bytes, n: int) -> tuple[bytes, dict[str, str]]:
    """The body with a delivery number (the same body twice in a second would be a replay;
    the number is not part of the fingerprint) and its signed headers."""
    stamp = str(int(time.time()))
    numbered = body[:-1] + f', "description": "delivery {n}"}}'.encode()
    digest = hmac.new(secret.encode(), stamp.encode() + b"." + numbered, hashlib.sha256)
    return numbered, {
        "X-Breachflow-Source": "bench",
        "X-Breachflow-Timestamp": stamp,
        "X-Breachflow-Signature": f"sha256={digest.hexdigest()}",
        "Content-Type": "application/json",
    }


def _stats(latencies: list[float], sent: int, ok: int, elapsed: float) -> dict[str, float]:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else 0.0
    return {
        "sent": sent,
        "ok": ok,
        "rate": ok / elapsed if elapsed else 0.0,
        "p50": statistics.median(ordered) if ordered else 0.0,
        "p99": p99,
    }


def _incidents(env: dict[str, str]) -> int:
    code = (
        "from flows.runtime import database\n"
        "from sqlalchemy import func, select\n"
        "from models.incident import Incident\n"
        "with database().unit_of_work() as s: print(s.scalar(select(func.count(Incident.id))))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    return int(out.stdout.strip() or -1)


def _env(home: Path, pg_url: str | None) -> dict[str, str]:
    from breachflow.models.crypto import generate_key

    env = {k: v for k, v in os.environ.items() if not k.startswith(("BREACH_", "PREFECT_"))}
    env |= {
        "BREACH_HOME": str(home),
        "BREACH_DATA_KEY": generate_key(),
        "PREFECT_HOME": str(home / "prefect"),
        "PYTHONPATH": str(ROOT),
    }
    if pg_url:
        env["BREACH_DATABASE_URL"] = create_database(pg_url)[1]
    return env


def _wait_ready(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/report", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit("breach serve did not start within 60 s")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
