"""Benchmark: one incident end to end, as an operator runs it, against counting providers.

    python bench/incident.py                          # 1,000,000 people, 2 workers
    python bench/incident.py --people 100000
    python bench/incident.py --people 20000 --keep    # keep the databases and the folder

One command, one incident, on PostgreSQL, in live mode. The people are generated
(``S000000001``...; 60% English, 40% Chinese): 85% with an email address only, 8% with a
mobile number only (SMS), 5% with a push contact only (four in five an FCM token, one in
five a Web Push subscription), 2% with a postal address only (a letter). Every provider is
a counting stand-in in a process of its own (``bench/sinks.py``): ``aiosmtpd`` (the sink of
``bench/notify.py``), the Twilio stand-in (``BREACH_SMS_RATE_PER_SECOND``, ``--sms-rate``,
100), FCM with its OAuth2 token endpoint and a Web Push service, and the mailing vendor's
drop folder. ``prefect server start`` runs on a PostgreSQL database of its own, with
``--workers`` (2) ``breach worker --limit 1`` processes polling a work pool, and
``BREACH_NOTIFY_SHARDS`` equal to the workers: the notify stage runs as shard flow runs on
the workers, as in production.

Then, timed, through the command line as a user runs it (each command its own process,
environment as the README's Configuration says):

1. ``breach declare`` (with ``--notice examples/notice.yaml``);
2. ``breach subjects import INC people.csv``;
3. ``breach run INC`` (``BREACH_APPROVAL_GATES='[]'``: no person approves in a bench):
   assess, the urgent reports, notify (fanned out to the workers); letters go to the
   mailing vendor as encrypted merge hand-overs (``BREACH_LETTER_VENDOR_THRESHOLD``,
   ``--letter-vendor-threshold``, 0 here: the hand-over at every scale, so a run of 20,000
   people takes the path 1,000,000 people's 20,000 letters take; the product's default is
   5,000) and the run stops, waiting for the vendor's return file;
4. the bench plays the vendor: decrypts every ``merge.csv.age`` in the drop folder with
   its age identity (``BREACH_LETTER_VENDOR_RECIPIENT`` is its public key), and writes a
   return file marking every letter ``mailed`` today;
5. ``breach letters returns INC returns.csv``;
6. ``breach run INC`` again: notify finishes, announce, the other reports, close.

Stage times come from the commands' wall times and, inside ``breach run``, from our
timeline (``step.started``/``step.finished``, ``notices.finished``...): import, assess,
the urgent reports, notify (until every notice is final or with the vendor; per channel,
until its last batch), the vendor (the bench's own work), the returns import, announce,
report, and the rest (command and Prefect start-up, close). ``people/s`` is the people of
the incident over the stage's seconds, whatever the stage does with them. SMS status
callbacks are not posted (``BREACH_REPORT_WAIT_SECONDS=0``: the notify step does not wait
for them), so SMS rows end ``sent``, not ``delivered``.

Checks, each failing the run with a non-zero exit: the import took every row; every
person has exactly one ledger row, final and reached (nobody in this population needs a
fallback), on the channel their contacts give; per channel, the sink's count equals the
ledger's and nothing arrived twice (distinct Message-IDs, numbers, tokens, subscriptions,
letter references); the push stand-ins refused nothing; the incident ended
``reporting`` (its reports written, for a person to file; ``closed`` in the figures
measured before closing waited for that).
Noted without failing the run: SMS above the rate at the stand-in (more than rate + 1
arrivals in a sliding second). The pacer's promise is about when requests leave the
dispatchers; arrivals also carry the stand-in's own scheduling (``bench/notify.py`` measures
both).

Figures: the stages; per channel, the ledger, the sink and when the channel's last batch
was recorded; Prefect's flow and task runs (from its API; per task, and the ``send-batch``
runs that leased nothing, from its database) and its database's size; ours; peak RSS
(``VmHWM``) and CPU seconds of every process the bench started and of their children (the
CLI commands and the import's workers, the workers and the shard runs they start, the
Prefect server, the sinks), read from ``/proc`` every quarter second while they run (a
process's last quarter second of CPU may be missed), and the CPU of the PostgreSQL
backends serving our two databases (read only: the bench did not start them; other
databases and the server's shared background processes are left out); CPU by phase and
group of processes, with what other work on the machine took; and the ratio of the total
to the target, 30 minutes (``--target-minutes``). The start-up of the
providers, the Prefect server and the workers is timed apart and not in the total.

Everything is cleaned up, on failure and on Ctrl-C too: the processes (by their ids), the
two databases and the temporary folder; ``--keep`` keeps the databases and the folder (logs
of every process, the people file, the drop folder) and prints where they are.
PostgreSQL: ``BREACH_BENCH_POSTGRES_URL`` or ``--pg-url`` (default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``; the user must be able to create
databases). ``--skip-letters`` makes the 2% email people instead and configures no
letters.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from scratch import create_database, drop_database
from sinks import command as sink_stats

SELF = Path(__file__).resolve()
BENCH = SELF.parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TARGET_MINUTES = 30.0
TWILIO_ACCOUNT = "AC" + "c" * 32
TWILIO_TOKEN = "bench-auth-token"  # noqa: S105 - the local stand-in's, not a secret
TWILIO_FROM = "+15005550006"
HEADER = ["subject_id", "name", "email", "phone", "push", "address", "locale", "country", "region"]
CHANNELS = ("email", "sms", "push", "letter")
REACHED = ("sent", "delivered")
POLL_SECONDS = 0.25
MB = 1024 * 1024


# --- the people ----------------------------------------------------------------------------------


def channel_of(n: int, letters: bool = True) -> str:
    """Person ``n``'s only contact: 85% email, 8% SMS, 5% push, 2% letter (by ``n % 100``)."""
    share = n % 100
    if share < 85:
        return "email"
    if share < 93:
        return "sms"
    if share < 98:
        return "push"
    return "letter" if letters else "email"


def webpush_people(people: int) -> list[int]:
    """The push people with a Web Push subscription: one in five (the others use FCM)."""
    return [n for n in range(1, people + 1) if channel_of(n) == "push" and n % 5 == 0]


def person(n: int, channel: str, subscription: str = "") -> list[str]:
    """Row ``n`` of the people file, with the one contact ``channel`` uses."""
    if n % 5 < 2:
        name = f"{'王李张刘陈杨黄赵吴周'[n % 10]}{'伟芳娜敏静丽强磊洋艳'[n // 10 % 10]}{n % 997}"
        locale, country, region = "zh-CN", "CN", ""
        email, phone = f"u{n}@example.cn", f"+86 139 {n % 100_000_000:08d}"
        address = f"广东省广州市天河区|体育西路{n % 200 + 1}号 {n % 97 + 1}室|510000"
    else:
        first, last = ("Alex", "Sam", "Jo", "Lee")[n % 4], ("Smith", "Jones", "Brown")[n % 3]
        name, locale, country, region = f"{first} {last} {n % 997}", "en-US", "US", "US-CA"
        email = f"u{n}@example.com"
        phone = f"+1 415 {200 + n // 10_000 % 800} {n % 10_000:04d}"
        address = f"{n % 900 + 100} Market Street|Apt {n % 50 + 1}|San Francisco, CA 94105"
    contacts = {"email": email, "phone": "", "push": "", "address": ""}
    if channel != "email":
        contacts["email"] = ""
    if channel == "sms":
        contacts["phone"] = phone
    elif channel == "push":
        contacts["push"] = subscription or f"bT{n:09d}xQ:APA91b" + "Fq3z_x-9" * 16
    elif channel == "letter":
        contacts["address"] = address
    return [f"S{n:09d}", name, contacts["email"], contacts["phone"], contacts["push"],
            contacts["address"], locale, country, region]  # fmt: skip


def write_people(path: Path, people: int, subscriptions: list[str], letters: bool) -> Counter[str]:
    """The people file; returns how many people each channel should reach."""
    webpush = dict(zip(webpush_people(people), subscriptions, strict=True))
    expected: Counter[str] = Counter()
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for n in range(1, people + 1):
            channel = channel_of(n, letters)
            expected[channel] += 1
            writer.writerow(person(n, channel, webpush.get(n, "")))
    return expected


# --- processes: started, watched, stopped ------------------------------------------------------


@dataclass
class Seen:
    """One process as last read from /proc."""

    role: str
    pid: int
    peak_kb: int = 0
    cpu: float = 0.0
    first: float = 0.0
    last: float = 0.0


class Monitor:
    """Reads /proc every quarter second: peak RSS (VmHWM) and CPU of every process the
    bench started and of their descendants, and the CPU of PostgreSQL's processes."""

    def __init__(self) -> None:
        self.roots: dict[tuple[int, int], str] = {}  # (pid, start time) -> role
        self.seen: dict[tuple[int, int], Seen] = {}
        self.databases: set[str] = set()  # PostgreSQL backends of these count as ours
        self.postgres: dict[tuple[int, int], float] = {}
        self.postgres_kind: dict[tuple[int, int], str] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.tick = os.sysconf("SC_CLK_TCK")
        self.thread = threading.Thread(target=self._loop, name="monitor", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)

    def add(self, pid: int, role: str) -> None:
        stat = _stat(pid)
        if stat is not None:
            with self.lock:
                self.roots[pid, stat[1]] = role
            self.scan()

    def _loop(self) -> None:
        while not self.stop.wait(POLL_SECONDS):
            self.scan()

    def scan(self) -> None:
        procs: dict[int, tuple[int, int, float, str]] = {}
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                stat = _stat(int(entry.name))
                if stat is not None:
                    procs[int(entry.name)] = stat
        now = time.time()
        with self.lock:
            roots = dict(self.roots)
            for pid, (_ppid, start, cpu, comm) in procs.items():
                if comm == "postgres" and self._ours_in_postgres(pid, start):
                    self.postgres[pid, start] = cpu / self.tick
                seen = self.seen.get((pid, start))
                if seen is None:
                    role = self._role(pid, procs, roots)
                    if role is None:
                        continue
                    seen = self.seen[pid, start] = Seen(role, pid, first=now)
                peak = _peak_kb(pid)
                seen.peak_kb = max(seen.peak_kb, peak)
                seen.cpu = max(seen.cpu, cpu / self.tick)
                seen.last = now

    @staticmethod
    def _role(
        pid: int, procs: dict[int, tuple[int, int, float, str]], roots: dict[tuple[int, int], str]
    ) -> str | None:
        at, depth = pid, 0
        while at in procs and depth < 64:
            role = roots.get((at, procs[at][1]))
            if role is not None:
                return role if at == pid else f"{role}: {_child_label(role, pid, procs[pid][3])}"
            at, depth = procs[at][0], depth + 1
        return None

    def by_role(self) -> dict[str, list[Seen]]:
        with self.lock:
            groups: dict[str, list[Seen]] = defaultdict(list)
            for seen in self.seen.values():
                groups[seen.role].append(seen)
            return dict(groups)

    def descendants_alive(self) -> list[int]:
        """Processes the bench started, or that they started, still running (pids)."""
        self.scan()
        with self.lock:
            alive = []
            for (pid, start), _ in self.seen.items():
                stat = _stat(pid)
                if stat is not None and stat[1] == start:
                    alive.append(pid)
            return alive

    def _ours_in_postgres(self, pid: int, start: int) -> bool:
        """Whether a PostgreSQL process works for our two databases: a backend (or an
        autovacuum worker) whose title names one of them. Other databases on the server
        (other people's work) and the shared background processes are left out."""
        kind = self.postgres_kind.get((pid, start))
        if kind is None:
            try:
                title = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            except OSError:
                return False
            words = title.replace("\0", " ").split()
            if not title.startswith("postgres:") or len(words) < 4:
                return False  # not titled yet: look again at the next scan
            kind = "ours" if any(word in self.databases for word in words) else "other"
            self.postgres_kind[pid, start] = kind
        return kind == "ours"

    def postgres_cpu(self) -> float:
        with self.lock:
            return sum(self.postgres.values())

    def snapshot(self, label: str) -> Snapshot:
        """CPU seconds so far per group of processes, and the machine's busy jiffies."""
        self.scan()
        groups: Counter[str] = Counter()
        with self.lock:
            for seen in self.seen.values():
                groups[_group(seen.role)] += seen.cpu
        groups["PostgreSQL"] = self.postgres_cpu()
        return Snapshot(label, time.time(), groups, machine_busy())


@dataclass
class Snapshot:
    label: str
    at: float
    cpu: Counter[str]
    busy: tuple[int, int]


GROUPS = ("our commands", "shard runs", "workers", "Prefect server", "PostgreSQL", "stand-ins")


def _group(role: str) -> str:
    if role.startswith("breach"):
        return "our commands"
    if role.startswith("worker"):
        return "shard runs" if role.endswith("shard runs") else "workers"
    if role.startswith("prefect"):
        return "Prefect server"
    return "stand-ins"


def _stat(pid: int) -> tuple[int, int, float, str] | None:
    """(parent pid, start time, CPU ticks, command name) of a process, or None if gone."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    close = data.rfind(")")
    comm, fields = data[data.find("(") + 1 : close], data[close + 2 :].split()
    return int(fields[1]), int(fields[19]), float(int(fields[11]) + int(fields[12])), comm


def _peak_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _child_label(role: str, pid: int, comm: str) -> str:
    """What a descendant is: a worker's shard runs, the import's worker processes, or the
    name of a helper program (``sh``, ``ldconfig``...)."""
    if not comm.startswith(("python", "breach", "prefect")):
        return comm
    if role.startswith("worker"):
        return "shard runs"
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        argv = ""
    return "worker processes" if "multiprocessing" in argv else "python children"


@dataclass
class Bench:
    """Everything the bench started or made, so that it can all be undone."""

    args: argparse.Namespace
    tmp: Path
    monitor: Monitor = field(default_factory=Monitor)
    processes: list[tuple[str, subprocess.Popen[Any]]] = field(default_factory=list)
    sinks: list[subprocess.Popen[str]] = field(default_factory=list)
    databases: list[str] = field(default_factory=list)

    @property
    def logs(self) -> Path:
        return self.tmp / "logs"

    def add_database(self, name: str) -> None:
        self.databases.append(name)
        self.monitor.databases.add(name)

    def start(self, role: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[Any]:
        """A long-running process (the Prefect server, a worker), its output to a log."""
        self.logs.mkdir(exist_ok=True)
        with (self.logs / f"{_slug(role)}.log").open("wb") as log:
            process = subprocess.Popen(
                argv, env=env, cwd=env.get("BREACH_HOME", self.tmp), stdout=log,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        self.processes.append((role, process))
        self.monitor.add(process.pid, role)
        return process

    def start_sink(self, role: str, argv: list[str], env: dict[str, str]) -> dict[str, Any]:
        """A provider stand-in; returns the JSON line it prints when ready."""
        self.logs.mkdir(exist_ok=True)
        with (self.logs / f"{_slug(role)}.log").open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, str(BENCH / "sinks.py"), *argv], env=env, cwd=self.tmp,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
                start_new_session=True,
            )  # fmt: skip
        self.sinks.append(process)
        self.processes.append((role, process))
        self.monitor.add(process.pid, role)
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise BenchFailed(f"the {role} did not start: {self.tail(role)}")
        return dict(json.loads(line))

    def cli(self, role: str, argv: list[str], env: dict[str, str]) -> tuple[float, str]:
        """Run a ``breach`` command to its end; its wall time and output. Fails the bench
        if it fails."""
        self.logs.mkdir(exist_ok=True)
        log_path = self.logs / f"{_slug(role)}.log"
        started = time.perf_counter()
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [breach(), *argv], env=env | {"COLUMNS": "120"}, cwd=env["BREACH_HOME"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
            self.processes.append((role, process))
            self.monitor.add(process.pid, role)
            code = process.wait()
        seconds = time.perf_counter() - started
        self.monitor.scan()
        output = log_path.read_text(errors="replace")
        if code != 0:
            raise BenchFailed(f"`breach {' '.join(argv)}` failed (exit {code}):\n{output[-4000:]}")
        return seconds, output

    def tail(self, role: str, chars: int = 3000) -> str:
        path = self.logs / f"{_slug(role)}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def stop_all(self) -> None:
        """Stop what we started, by id: sinks by closing their stdin, the rest with SIGTERM,
        then SIGKILL for whatever is left (shard runs of the workers included)."""
        for process in self.sinks:
            if process.stdin and not process.stdin.closed:
                with contextlib.suppress(OSError):
                    process.stdin.close()
        for _, process in reversed(self.processes):
            if process.poll() is None:
                with contextlib.suppress(OSError):
                    os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for _, process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
        for pid in self.monitor.descendants_alive():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        for _, process in self.processes:
            if process.poll() is None:
                with contextlib.suppress(OSError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


class BenchFailed(Exception):
    """A step or a check failed: the bench says why and exits 1."""


def breach() -> str:
    return str(Path(sys.executable).with_name("breach"))


def _slug(role: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", role).strip("-").lower()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- setting up: databases, providers, Prefect ---------------------------------------------------


def base_env(home: Path) -> dict[str, str]:
    """The environment of every process: ours only, no stray BREACH_ or PREFECT_ setting."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("BREACH_", "PREFECT_", "BENCH_"))
    }
    return env | {
        "PYTHONPATH": str(ROOT),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_HOME": str(home / "prefect"),
    }


def live_env(
    home: Path, database_url: str, smtp_port: int, api: str, pool: str, shards: int
) -> dict[str, str]:
    """The settings of every ``breach`` command and worker: live mode on our database, no
    approval gate, email to the SMTP sink, the notify stage fanned out to ``shards`` runs
    on the Prefect server's work pool ``pool``."""
    from breachflow.models.crypto import generate_key

    return base_env(home) | {
        "BREACH_HOME": str(home),
        "BREACH_DATABASE_URL": database_url,
        "BREACH_DATA_KEY": generate_key(),
        "BREACH_NOTIFIER_MODE": "live",
        "BREACH_APPROVAL_GATES": "[]",
        "BREACH_REPORT_WAIT_SECONDS": "0",
        # Status callbacks would go here: nothing listens (and the stand-ins post none).
        "BREACH_PUBLIC_URL": f"http://127.0.0.1:{free_port()}",
        "BREACH_ALLOW_LOCAL_PUBLIC_URL": "true",  # loopback stand-ins
        "BREACH_SMTP_HOST": "127.0.0.1",
        "BREACH_SMTP_PORT": str(smtp_port),
        "BREACH_PREFECT_DEPLOYMENTS": "true",
        "BREACH_NOTIFY_SHARDS": str(shards),
        "BREACH_WORK_POOL": pool,
        "PREFECT_API_URL": api,
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_WORKER_QUERY_SECONDS": "2",
    }


def start_prefect(bench: Bench, pg_url: str) -> str:
    """``prefect server start`` on a PostgreSQL database of its own; its API URL."""
    import httpx
    import sqlalchemy as sa

    name, url = create_database(pg_url)
    bench.add_database(name)
    home = bench.tmp / "prefect-server"
    home.mkdir()
    port = free_port()
    async_url = sa.engine.make_url(url).set(drivername="postgresql+asyncpg")
    env = base_env(home) | {
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": async_url.render_as_string(hide_password=False),
        "PREFECT_UI_ENABLED": "false",
    }
    prefect = str(Path(sys.executable).with_name("prefect"))
    server = bench.start("prefect server", [prefect, "server", "start", "--port", str(port)], env)
    api = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 180
    while True:
        try:
            if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                return api
        except httpx.HTTPError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            raise BenchFailed(f"the Prefect server did not start:\n{bench.tail('prefect server')}")
        time.sleep(0.5)


def wait_for_workers(bench: Bench, api: str, pool: str, workers: int) -> None:
    """Until ``workers`` workers poll the pool (each registered the shard deployment)."""
    import httpx

    deadline = time.monotonic() + 180
    while True:
        try:
            reply = httpx.post(f"{api}/work_pools/{pool}/workers/filter", json={}, timeout=10)
            if reply.status_code == 200 and len(reply.json()) >= workers:
                return
        except httpx.HTTPError:
            pass
        for role, process in bench.processes:
            if role.startswith("worker") and process.poll() is not None:
                raise BenchFailed(f"{role} ended early:\n{bench.tail(role)}")
        if time.monotonic() > deadline:
            raise BenchFailed(f"the workers did not poll {pool}:\n{bench.tail('worker-1')}")
        time.sleep(0.5)


# --- the vendor: reads the drop folder, writes the return file ----------------------------------


def play_vendor(dropbox: Path, identity: Any, returns: Path) -> dict[str, int]:
    """Decrypt every hand-over's merge file; write a return file with every letter mailed
    today. Counts hand-overs, merge rows and distinct references (and PDF letters, when the
    letters went as a PDF each)."""
    import pyrage

    references: list[str] = []
    handovers = pdf_letters = 0
    for folder in sorted(p for p in dropbox.glob("*") if p.is_dir()):
        if folder.name.startswith("."):
            continue
        merge = folder / "merge.csv.age"
        if merge.exists():
            handovers += 1
            data = pyrage.decrypt(merge.read_bytes(), [identity]).decode()
            rows = csv.DictReader(data.splitlines())
            references += [row["reference"] for row in rows]
        elif (folder / "manifest.csv").exists():
            pdf_letters += len(list(folder.glob("*.pdf")))
    today = datetime.now(UTC).date().isoformat()
    with returns.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["reference", "status", "date", "reason"])
        writer.writerows([reference, "mailed", today, ""] for reference in references)
    return {
        "handovers": handovers,
        "merge_rows": len(references),
        "distinct": len(set(references)),
        "pdf_letters": pdf_letters,
    }


# --- reading the results -------------------------------------------------------------------------


@dataclass
class Event:
    kind: str
    payload: dict[str, Any]
    at: float  # epoch seconds


def read_events(engine: Any, incident_id: int) -> list[Event]:
    from sqlalchemy import text

    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT kind, payload, recorded_at FROM timeline_events"
                " WHERE incident_id = :i ORDER BY seq"
            ),
            {"i": incident_id},
        ).all()
    events = []
    for kind, payload, at in rows:
        if isinstance(at, str):
            at = datetime.fromisoformat(at)
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        data = payload if isinstance(payload, dict) else json.loads(payload or "{}")
        events.append(Event(kind, data, at.timestamp()))
    return events


def find(
    events: list[Event], kind: str, after: float = 0.0, step: str | None = None, last: bool = False
) -> float | None:
    hits = [
        e.at
        for e in events
        if e.kind == kind and e.at >= after and (step is None or e.payload.get("step") == step)
    ]
    if not hits:
        return None
    return hits[-1] if last else hits[0]


def ledger_figures(engine: Any, incident_id: int) -> dict[str, Any]:
    from sqlalchemy import text

    with engine.connect() as conn:
        states = conn.execute(
            text(
                "SELECT channel, state, count(*) FROM notifications WHERE incident_id = :i"
                " GROUP BY channel, state"
            ),
            {"i": incident_id},
        ).all()
        person = conn.execute(
            text(
                "SELECT count(*),"
                " count(*) FILTER (WHERE n.final_rows = 1 AND n.rows = 1 AND n.reached = 1),"
                " count(*) FILTER (WHERE n.rows IS NULL),"
                " count(*) FILTER (WHERE n.rows > 1),"
                " count(*) FILTER (WHERE n.final_rows <> 1),"
                " count(*) FILTER (WHERE n.reached = 0)"
                " FROM subjects s LEFT JOIN ("
                "   SELECT subject_id, count(*) AS rows,"
                "     count(*) FILTER (WHERE state IN ('sent', 'delivered', 'failed_permanent'))"
                "       AS final_rows,"
                "     count(*) FILTER (WHERE state IN ('sent', 'delivered')) AS reached"
                "   FROM notifications WHERE incident_id = :i GROUP BY subject_id"
                " ) n ON n.subject_id = s.id WHERE s.incident_id = :i"
            ),
            {"i": incident_id},
        ).one()
        state = conn.execute(
            text("SELECT state FROM incidents WHERE id = :i"), {"i": incident_id}
        ).scalar_one()
    by_channel: dict[str, Counter[str]] = defaultdict(Counter)
    for channel, row_state, count in states:
        by_channel[channel][row_state] += count
    keys = ["people", "exactly_one", "without_row", "several_rows", "not_one_final", "not_reached"]
    return {"by_channel": by_channel, "people": dict(zip(keys, person, strict=True)),
            "state": state}  # fmt: skip


def database_size(engine: Any, name: str) -> int:
    from sqlalchemy import text

    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_database_size(:n)"), {"n": name}).scalar_one())


def prefect_figures(api: str, engine: Any, database: str) -> dict[str, Any]:
    """Flow and task runs from the Prefect API, once their count has settled (task runs
    arrive as events, written a moment after the run); task runs per task from Prefect's
    database (its ``task_run`` table: names are ``<task>-<suffix>``)."""
    import httpx
    import sqlalchemy as sa

    with httpx.Client(timeout=60) as http:

        def count(what: str, body: dict[str, Any] | None = None) -> int:
            reply = http.post(f"{api}/{what}/count", json=body or {})
            reply.raise_for_status()
            return int(reply.json())

        before, deadline = -1, time.monotonic() + 30
        while True:
            tasks = count("task_runs")
            if tasks == before or time.monotonic() > deadline:
                break
            before = tasks
            time.sleep(2)
        flows = http.post(f"{api}/flow_runs/filter", json={"limit": 200}).json()
        names = {f["id"]: f["name"] for f in http.post(f"{api}/flows/filter", json={}).json()}
        by_flow: Counter[str] = Counter()
        states: Counter[str] = Counter()
        for run in flows:
            by_flow[names.get(run["flow_id"], "?")] += 1
            states[(run.get("state") or {}).get("type", "?")] += 1
        completed = {"task_runs": {"state": {"type": {"any_": ["COMPLETED"]}}}}
        url = engine.url.set(database=database)
        prefect_db = sa.create_engine(url)
        try:
            with prefect_db.connect() as conn:
                by_task = dict(
                    conn.execute(
                        sa.text(
                            "SELECT regexp_replace(name, '-[0-9a-z]+$', ''), count(*)"
                            " FROM task_run GROUP BY 1 ORDER BY 2 DESC"
                        )
                    ).all()
                )
        finally:
            prefect_db.dispose()
        return {
            "flow_runs": count("flow_runs"),
            "flow_runs_by_flow": dict(by_flow),
            "flow_run_states": dict(states),
            "task_runs": tasks,
            "task_runs_completed": count("task_runs", completed),
            "task_runs_by_task": by_task,
        }


# --- the run -------------------------------------------------------------------------------------


def machine_busy(since: tuple[int, int] | None = None) -> Any:
    """(busy, total) jiffies of all cores; given an earlier reading, the busy share since."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    total, busy = sum(fields[:8]), sum(fields[:8]) - fields[3] - fields[4]
    if since is None:
        return busy, total
    return (busy - since[0]) / max(total - since[1], 1)


def run(args: argparse.Namespace, bench: Bench) -> int:
    import pyrage
    import sqlalchemy as sa

    from breachflow.notifiers.push.webpush import generate_vapid_keys

    letters = not args.skip_letters
    wall_started = time.perf_counter()
    bench.monitor.start()
    home = bench.tmp / "home"
    home.mkdir()
    keys = bench.tmp / "keys"
    keys.mkdir(mode=0o700)
    workers = f"{args.workers} worker{'s' if args.workers != 1 else ''}"
    print(f"== setup (not timed in the total): {args.people:,} people, {workers}")

    # Providers, each in its own process.
    setup_started = time.perf_counter()
    vapid_private, vapid_public = generate_vapid_keys()
    (keys / "vapid.key").write_text(vapid_private)
    webpush = len(webpush_people(args.people))
    sink_env = base_env(bench.tmp / "sinks")
    smtp = bench.start_sink("smtp sink", ["smtp"], sink_env)
    twilio = bench.start_sink("twilio sink", ["twilio", "--auth-token", TWILIO_TOKEN], sink_env)
    push = bench.start_sink(
        "push sinks",
        ["push", "--out", str(keys), "--webpush", str(webpush), "--vapid-public", vapid_public],
        sink_env,
    )
    identity = pyrage.x25519.Identity.generate()
    dropbox = bench.tmp / "vendor-dropbox"

    # Our database and Prefect's, the Prefect server.
    name, database_url = create_database(args.pg_url)
    bench.add_database(name)
    api = start_prefect(bench, args.pg_url)
    prefect_database = bench.databases[-1]
    up = time.perf_counter() - setup_started
    print(f"  providers, databases and the Prefect server up in {up:.1f} s")

    # The people.
    people_file = bench.tmp / "people.csv"
    generated = time.perf_counter()
    subscriptions = Path(push["subscriptions"]).read_text().splitlines()
    expected = write_people(people_file, args.people, subscriptions, letters)
    print(f"  {args.people:,} people generated in {time.perf_counter() - generated:.1f} s: "
          + ", ".join(f"{c} {n:,}" for c, n in sorted(expected.items())))  # fmt: skip

    pool = f"breachflow-bench-{os.getpid()}"
    env = live_env(home, database_url, smtp["smtp"], api, pool, args.workers) | {
        "BREACH_TWILIO_ACCOUNT_SID": TWILIO_ACCOUNT,
        "BREACH_TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "BREACH_TWILIO_FROM_NUMBER": TWILIO_FROM,
        "BREACH_TWILIO_BASE_URL": twilio["url"],
        "BREACH_SMS_RATE_PER_SECOND": str(args.sms_rate),
        "BREACH_FCM_SERVICE_ACCOUNT_FILE": push["service_account"],
        "BREACH_FCM_BASE_URL": push["fcm"],
        "BREACH_VAPID_PRIVATE_KEY_FILE": str(keys / "vapid.key"),
    }
    if letters:
        env |= {
            "BREACH_LETTER_DROPBOX": str(dropbox),
            "BREACH_LETTER_VENDOR_THRESHOLD": str(args.letter_vendor_threshold),
            "BREACH_LETTER_VENDOR_RECIPIENT": str(identity.to_public()),
        }
    if args.batch_size:
        env["BREACH_BATCH_SIZE"] = str(args.batch_size)

    # --- timed: the incident, as an operator runs it -------------------------------------------
    print("== the incident")
    busy_before = machine_busy()
    times: dict[str, float] = {}
    declared = time.time()
    seconds, output = bench.cli(
        "breach declare",
        ["declare", "--title", "Bench: one incident end to end", "--severity", "high",
         "--detected-at", _iso(declared - 2 * 86400), "--aware-at", _iso(declared - 86400),
         "--data-category", "name", "--data-category", "email", "--data-category", "phone",
         "--data-category", "address", "--description", "Generated people (bench/incident.py).",
         "--notice", str(ROOT / "examples" / "notice.yaml")],
        env,
    )  # fmt: skip
    found = re.search(r"INC-\d{4}-\d+", output)
    if not found:
        raise BenchFailed(f"no incident key in `breach declare`'s output:\n{output}")
    key = found.group(0)
    times["declare"] = seconds
    print(f"  declared {key} in {seconds:.1f} s")

    # The workers (Prefect's process worker on our pool) start once our database exists.
    started = time.perf_counter()
    worker_env = {k: v for k, v in env.items() if k != "PREFECT_LOGGING_LEVEL"}
    for n in range(1, args.workers + 1):
        name_n = f"worker-{n}"
        bench.start(name_n, [breach(), "worker", "--name", name_n, "--limit", "1"], worker_env)
    wait_for_workers(bench, api, pool, args.workers)
    print(f"  {workers} polling {pool} after {time.perf_counter() - started:.1f} s"
          " (not timed)")  # fmt: skip

    snapshots = [bench.monitor.snapshot("")]
    seconds, output = bench.cli("breach subjects import", ["subjects", "import", key,
                                str(people_file)], env)  # fmt: skip
    times["import"] = seconds
    print(f"  import: {seconds:.1f} s ({args.people / seconds:,.0f} rows/s)")
    snapshots.append(bench.monitor.snapshot("import"))

    run1_start = time.time()
    seconds, output = bench.cli("breach run #1", ["run", key], env)
    run1_end = time.time()
    snapshots.append(bench.monitor.snapshot("run #1"))
    print(f"  breach run: {seconds:.1f} s; {_said(output)}")

    engine = sa.create_engine(database_url)
    try:
        incident_id = _incident_id(engine, key)
        vendor: dict[str, int] = {}
        run2_start = run2_end = None
        returns_seconds = vendor_seconds = 0.0
        waiting = ledger_figures(engine, incident_id)["by_channel"].get("letter", {})
        if waiting.get("handed_over"):
            vendor_started = time.perf_counter()
            returns = bench.tmp / "returns.csv"
            vendor = play_vendor(dropbox, identity, returns)
            vendor_seconds = time.perf_counter() - vendor_started
            print(f"  the vendor (bench): {vendor['handovers']} hand-overs,"
                  f" {vendor['merge_rows']:,} letters decrypted, return file written in"
                  f" {vendor_seconds:.1f} s")  # fmt: skip
            returns_seconds, output = bench.cli(
                "breach letters returns", ["letters", "returns", key, str(returns)], env
            )
            print(f"  breach letters returns: {returns_seconds:.1f} s; {_said(output)}")
            snapshots.append(bench.monitor.snapshot("vendor, returns"))
            run2_start = time.time()
            seconds, output = bench.cli("breach run #2", ["run", key], env)
            run2_end = time.time()
            snapshots.append(bench.monitor.snapshot("run #2"))
            print(f"  breach run (again): {seconds:.1f} s; {_said(output)}")
        ended = time.time()
        busy = machine_busy(busy_before)

        # --- what happened ----------------------------------------------------------------
        events = read_events(engine, incident_id)
        ledger = ledger_figures(engine, incident_id)
        sinks = {
            "smtp": sink_stats(smtp["control"]),
            "twilio": sink_stats(twilio["control"]),
            "push": sink_stats(push["control"]),
        }
        prefect = prefect_figures(api, engine, prefect_database)
        sizes = {
            "ours": database_size(engine, name),
            "prefect": database_size(engine, prefect_database),
        }
    finally:
        engine.dispose()
    bench.monitor.scan()

    stages = stage_times(
        events, times, run1_start, run1_end, run2_start, run2_end, vendor_seconds, returns_seconds
    )
    total = ended - declared
    failures = checks(args, expected, ledger, sinks, vendor, letters)
    notes = []
    if sinks["twilio"]["busiest_second"] > args.sms_rate + 1:
        notes.append(
            f"sms: {sinks['twilio']['busiest_second']} messages reached the stand-in within one"
            f" second at BREACH_SMS_RATE_PER_SECOND={args.sms_rate:g}: arrivals, which carry"
            " the stand-in's own scheduling; `bench/notify.py --skip-email --dispatchers 2`"
            " checks the departures, which the pacer keeps within the rate"
        )
    report(
        args, key, stages, total, ended, events, ledger, sinks, vendor, prefect, sizes,
        bench.monitor, busy, time.perf_counter() - wall_started,
    )  # fmt: skip
    print_cpu(snapshots)
    for note in notes:
        print(f"\nNOTE (not a failure of this bench's checks): {note}")
    if failures:
        print("\nFAILED:")
        for failure in failures:
            print(f"  - {failure}")
        return 1
    print("\nall checks passed")
    return 0


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def _achieved(twilio: dict[str, Any]) -> float:
    span = twilio["last"] - twilio["first"]
    return (twilio["messages"] - 1) / span if span > 0 else 0.0


def _said(output: str) -> str:
    """What a command's output says about the incident: its state, what it waits for, or
    (``breach letters returns``) its counts."""
    text = " ".join(output.split())
    found = re.findall(r"INC-\d{4}-\d+ is \w+\.|Waiting for [^:]*|\d[\d,]* mailed[^,]*", text)
    return " ".join(found) or text[-200:]


def _incident_id(engine: Any, key: str) -> int:
    from sqlalchemy import text

    with engine.connect() as conn:
        return int(
            conn.execute(text("SELECT id FROM incidents WHERE key = :k"), {"k": key}).scalar_one()
        )


def stage_times(
    events: list[Event], cli: dict[str, float], run1_start: float, run1_end: float,
    run2_start: float | None, run2_end: float | None, vendor: float, returns: float,
) -> list[tuple[str, float, str]]:  # fmt: skip
    """(stage, seconds, where the figure comes from), summing to the incident's total."""
    stages: list[tuple[str, float, str]] = [
        ("import", cli["import"], "breach subjects import"),
    ]
    assess_start = find(events, "step.started", run1_start, "assess")
    assess_end = find(events, "step.finished", run1_start, "assess")
    notify_start = find(events, "step.started", run1_start, "notify")
    handed = find(events, "letters.awaiting_returns", run1_start)
    finished = find(events, "notices.finished", run1_start)
    rest = cli["declare"]
    if None in (assess_start, assess_end, notify_start):
        raise BenchFailed("the timeline of the first run lacks its assess or notify steps")
    assert assess_start is not None and assess_end is not None and notify_start is not None
    rest += assess_start - run1_start
    stages.append(("assess", assess_end - assess_start, "timeline: step assess"))
    stages.append(("report (urgent)", notify_start - assess_end, "assess end -> notify start"))
    notify_end = handed if handed is not None else finished
    if notify_end is None:
        raise BenchFailed("the first run ended neither with notices.finished nor with letters")
    label = "to letters.awaiting_returns" if handed is not None else "to notices.finished"
    stages.append(("notify", notify_end - notify_start, f"timeline: step notify {label}"))
    later_start, later_end = run1_start, run1_end
    if run2_start is not None and run2_end is not None:
        rest += run1_end - notify_end
        stages.append(("letters: the vendor", vendor, "bench: decrypt, write return file"))
        stages.append(("letters: returns import", returns, "breach letters returns"))
        later_start, later_end = run2_start, run2_end
        finished = find(events, "notices.finished", run2_start)
        if finished is None:
            raise BenchFailed("the second run did not finish notifying")
        stages.append(("notify: finish", finished - run2_start, "run #2 to notices.finished"))
    assert finished is not None
    report_start = find(events, "step.started", later_start, "report")
    report_end = find(events, "step.finished", later_start, "report", last=True)
    if report_start is None or report_end is None:
        raise BenchFailed("the timeline lacks the report step")
    stages.append(("announce", report_start - finished, "notices.finished -> report start"))
    stages.append(("report", report_end - report_start, "timeline: step report"))
    rest += later_end - report_end
    stages.append(("close, start-up, wind-down", rest, "declare; runs' start and end; close"))
    return stages


def checks(
    args: argparse.Namespace, expected: Counter[str], ledger: dict[str, Any],
    sinks: dict[str, dict[str, Any]], vendor: dict[str, int], letters: bool,
) -> list[str]:  # fmt: skip
    failures = []
    people = ledger["people"]
    if people["people"] != args.people:
        failures.append(f"{people['people']:,} people imported, {args.people:,} generated")
    if people["exactly_one"] != people["people"]:
        failures.append(
            f"not every person has exactly one final ledger row, reached: {people['without_row']:,}"
            f" without a row, {people['several_rows']:,} with several, {people['not_one_final']:,}"
            f" without exactly one final row, {people['not_reached']:,} not reached"
        )
    reached = {c: sum(ledger["by_channel"].get(c, {}).get(s, 0) for s in REACHED) for c in CHANNELS}
    other = {
        f"{c}/{s}": n
        for c, states in ledger["by_channel"].items()
        for s, n in states.items()
        if s not in REACHED
    }
    if other:
        failures.append(f"ledger rows neither sent nor delivered: {other}")
    for channel in CHANNELS:
        if reached[channel] != expected.get(channel, 0):
            failures.append(
                f"{channel}: the ledger reached {reached[channel]:,} people, the people file"
                f" gives {expected.get(channel, 0):,} that channel"
            )
    smtp, twilio, push = sinks["smtp"], sinks["twilio"], sinks["push"]
    if not smtp["messages"] == smtp["distinct_ids"] == reached["email"]:
        failures.append(
            f"email: the sink got {smtp['messages']:,} messages ({smtp['distinct_ids']:,} distinct"
            f" Message-IDs), the ledger has {reached['email']:,} sent"
        )
    if not twilio["messages"] == twilio["distinct_to"] == reached["sms"] or twilio["calls"]:
        failures.append(
            f"sms: the stand-in accepted {twilio['messages']:,} messages to"
            f" {twilio['distinct_to']:,} numbers and {twilio['calls']} calls; the ledger has"
            f" {reached['sms']:,} sent"
        )
    pushed = push["fcm"] + push["webpush"]
    distinct = push["fcm_distinct_tokens"] + push["webpush_distinct_subscriptions"]
    if not pushed == distinct == reached["push"]:
        failures.append(
            f"push: FCM took {push['fcm']:,} ({push['fcm_distinct_tokens']:,} tokens), Web Push"
            f" {push['webpush']:,} ({push['webpush_distinct_subscriptions']:,} subscriptions);"
            f" the ledger has {reached['push']:,} sent"
        )
    if push["fcm_rejections"] or push["webpush_rejections"]:
        failures.append(
            f"push: refused {push['fcm_rejections']} FCM and {push['webpush_rejections']} Web"
            " Push requests"
        )
    if letters:
        dropped = vendor.get("merge_rows", 0) + vendor.get("pdf_letters", 0)
        distinct_letters = vendor.get("distinct", 0) + vendor.get("pdf_letters", 0)
        if not dropped == distinct_letters == reached["letter"]:
            failures.append(
                f"letter: the drop folder held {dropped:,} letters ({distinct_letters:,}"
                f" distinct), the ledger has {reached['letter']:,} sent"
            )
    if ledger["state"] != "reporting":  # everyone told, reports written; a person files them
        failures.append(f"the incident ended {ledger['state']}, not reporting")
    return failures


def print_cpu(snapshots: list[Snapshot]) -> None:
    """CPU seconds per group of processes in each phase, and what other work took: the
    machine's busy time minus ours."""
    phases = list(itertools.pairwise(snapshots))
    print(f"\nCPU seconds by phase {'':<14}" + "".join(f"{b.label:>16}" for _, b in phases))
    walls = [b.at - a.at for a, b in phases]
    print(f"{'wall seconds':<35}" + "".join(f"{w:>16.1f}" for w in walls))
    tick = os.sysconf("SC_CLK_TCK")
    for group in (*GROUPS, "all of ours", "other work on the machine"):
        cells = []
        for (a, b), wall in zip(phases, walls, strict=True):
            ours = sum(b.cpu.values()) - sum(a.cpu.values())
            if group == "all of ours":
                cpu = ours
            elif group == "other work on the machine":
                cpu = max((b.busy[0] - a.busy[0]) / tick - ours, 0.0)
            else:
                cpu = b.cpu[group] - a.cpu[group]
            cells.append(f"{cpu:>9.1f} ({cpu / max(wall, 1e-9):>3.0%})")
        print(f"{group:<35}" + "".join(f"{cell:>16}" for cell in cells))
    print("(in brackets: cores busy on average, 100% is one core of the machine's "
          f"{os.cpu_count()})")  # fmt: skip


def report(
    args: argparse.Namespace, key: str, stages: list[tuple[str, float, str]], total: float,
    ended: float, events: list[Event], ledger: dict[str, Any], sinks: dict[str, dict[str, Any]],
    vendor: dict[str, int], prefect: dict[str, Any], sizes: dict[str, int], monitor: Monitor,
    busy: float, wall: float,
) -> None:  # fmt: skip
    people = args.people
    print(f"\n== {key}: {people:,} people, {args.workers} workers, machine {busy:.0%} busy")
    print(f"{'stage':<28} {'seconds':>8} {'share':>6} {'people/s':>9}  from")
    for stage, seconds, source in stages:
        rate = f"{people / seconds:,.0f}" if seconds > 0.05 else "-"
        print(f"{stage:<28} {seconds:>8.1f} {seconds / total:>6.1%} {rate:>9}  {source}")
    print(f"{'total':<28} {total:>8.1f} {1:>6.0%} {people / total:>9,.0f}  declare to reporting")
    target = args.target_minutes * 60
    verdict = "met" if total <= target else "NOT met"
    print(
        f"ratio to the target: {total / target:.3f} of {args.target_minutes:g} min ({verdict}); "
        f"the whole bench, set-up and checks included: {wall:.0f} s"
    )

    # Per channel: the ledger, the sink, when its lane finished.
    notify_start = find(events, "step.started", 0, "notify") or 0.0
    lanes: dict[str, list[float]] = defaultdict(list)
    for event in events:
        if event.kind == "notices.batch_sent":
            lanes[event.payload.get("channel", "?")].append(event.at)
    smtp, twilio, push = sinks["smtp"], sinks["twilio"], sinks["push"]
    sink_counts = {
        "email": f"{smtp['messages']:,} messages, {smtp['distinct_ids']:,} distinct",
        "sms": f"{twilio['messages']:,} messages to {twilio['distinct_to']:,} numbers, "
        f"{_achieved(twilio):.1f}/s first to last, busiest second {twilio['busiest_second']}",
        "push": f"FCM {push['fcm']:,} ({push['fcm_distinct_tokens']:,} tokens), Web Push "
        f"{push['webpush']:,} ({push['webpush_distinct_subscriptions']:,} subscriptions)",
        "letter": f"{vendor.get('merge_rows', 0):,} merge rows in {vendor.get('handovers', 0)} "
        f"hand-overs ({vendor.get('distinct', 0):,} distinct), "
        f"{vendor.get('pdf_letters', 0):,} PDFs",
    }
    print(f"\n{'channel':<8} {'ledger':<34} {'batches':>7} {'lane s':>7} {'per s':>7}  sink")
    for channel in CHANNELS:
        states = ledger["by_channel"].get(channel, {})
        shown = ", ".join(f"{s} {n:,}" for s, n in sorted(states.items())) or "-"
        batches = lanes.get(channel, [])
        lane = max(batches) - notify_start if batches else 0.0
        count = sum(states.values())
        rate = f"{count / lane:,.0f}" if lane > 0 else "-"
        print(f"{channel:<8} {shown:<34} {len(batches):>7} {lane:>7.1f} {rate:>7}  "
              f"{sink_counts[channel]}")  # fmt: skip
    p = ledger["people"]
    print(
        f"people: {p['people']:,}; exactly one final ledger row, reached: {p['exactly_one']:,}"
        f" (without a row {p['without_row']:,}, several rows {p['several_rows']:,});"
        f" incident {ledger['state']}"
    )
    print(
        f"\nPrefect: {prefect['flow_runs']:,} flow runs {prefect['flow_runs_by_flow']} "
        f"{prefect['flow_run_states']}, {prefect['task_runs']:,} task runs "
        f"({prefect['task_runs_completed']:,} completed); its database "
        f"{sizes['prefect'] / MB:,.0f} MB. Our database {sizes['ours'] / MB:,.0f} MB "
        f"({sizes['ours'] / people / 1024:.1f} KB a person)."
    )
    by_task = prefect["task_runs_by_task"]
    batches = sum(len(v) for v in lanes.values())
    print(
        "  task runs per task: " + ", ".join(f"{name} {n:,}" for name, n in by_task.items())
        + f"; {batches:,} batches sent (notices.batch_sent), so"
        f" {max(by_task.get('send-batch', 0) - batches, 0):,} send-batch runs leased nothing"
    )  # fmt: skip

    print(f"\n{'process':<44} {'count':>5} {'peak RSS MB':>11} {'CPU s':>8}")
    groups: dict[str, list[Seen]] = defaultdict(list)
    helpers: Counter[str] = Counter()
    for role, seen in monitor.by_role().items():
        _, _, child = role.partition(": ")
        if child and child not in ("shard runs", "worker processes", "python children"):
            helpers[child] += len(seen)  # gcc, ld, ldconfig: ctypes finding libraries
            role = "helper programs"
        groups[role] += seen
    rows = sorted(groups.items(), key=lambda item: min(s.first for s in item[1]))
    cpu_total = 0.0
    for role, seen in rows:
        peak = max(s.peak_kb for s in seen) / 1024
        cpu = sum(s.cpu for s in seen)
        cpu_total += cpu
        print(f"{role:<44} {len(seen):>5} {peak:>11,.0f} {cpu:>8.1f}")
    if helpers:
        print("  helper programs: " + ", ".join(f"{n} {name}" for name, n in helpers.items()))
    postgres = monitor.postgres_cpu()
    print(f"{'PostgreSQL (backends of our 2 databases)':<44} {'':>5} {'':>11} {postgres:>8.1f}")
    print(
        f"CPU: {cpu_total + postgres:,.0f} s over the bench's {wall:,.0f} s on "
        f"{os.cpu_count()} cores; the incident's {total:,.0f} s had the machine {busy:.0%} busy"
    )


# --- the command -------------------------------------------------------------------------------


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2, help="breach worker processes")
    parser.add_argument("--keep", action="store_true", help="keep the databases and the folder")
    parser.add_argument("--skip-letters", action="store_true", help="no letters: 87%% email")
    parser.add_argument("--sms-rate", type=float, default=100.0, help="BREACH_SMS_RATE_PER_SECOND")
    parser.add_argument(
        "--letter-vendor-threshold", type=int, default=0, help="BREACH_LETTER_VENDOR_THRESHOLD"
    )
    parser.add_argument("--batch-size", type=int, help="BREACH_BATCH_SIZE (default: its own)")
    parser.add_argument("--target-minutes", type=float, default=TARGET_MINUTES)
    parser.add_argument("--pg-url", default=os.environ.get("BREACH_BENCH_POSTGRES_URL", DEFAULT_PG))
    args = parser.parse_args()
    if args.people < 100 or args.workers < 1:
        parser.error("--people must be at least 100 and --workers at least 1")

    idle = machine_busy()
    time.sleep(1)
    busy = machine_busy(idle)
    warning = "  <- not idle: other work distorts these figures" if busy > 0.1 else ""
    print(
        f"machine: {os.cpu_count()} cores, {busy:.0%} busy in the second before the start, "
        f"load average {os.getloadavg()[0]:.2f}{warning}"
    )
    run_and_clean_up(args, run, "breach-incident-")


def run_and_clean_up(
    args: argparse.Namespace, run: Callable[[argparse.Namespace, Bench], int], prefix: str
) -> NoReturn:
    """``run`` in a new temporary folder; exits with its code after cleaning up, on a
    failure, Ctrl-C or SIGTERM too."""
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    bench = Bench(args, Path(tempfile.mkdtemp(prefix=prefix)))
    code = 1
    try:
        code = run(args, bench)
    except BenchFailed as exc:
        print(f"\nFAILED: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        print("\ninterrupted: cleaning up", file=sys.stderr)
        code = 130
    finally:
        cleanup(bench, args)
    sys.exit(code)


def cleanup(bench: Bench, args: argparse.Namespace) -> None:
    """Processes, then databases, then the folder; each part even if another fails."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not stop the clean-up
    try:
        bench.stop_all()
    finally:
        bench.monitor.close()
        if args.keep:
            print(f"kept: databases {', '.join(bench.databases)}; folder {bench.tmp}")
        else:
            for name in bench.databases:
                try:
                    drop_database(args.pg_url, name)
                except Exception as exc:
                    print(f"could not drop database {name}: {exc}", file=sys.stderr)
            shutil.rmtree(bench.tmp, ignore_errors=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)


if __name__ == "__main__":
    main()
