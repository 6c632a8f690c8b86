"""Benchmark: notify N people by email through Breachflow, against a bare aiosmtplib loop.

    python bench/notify.py                      # 100,000 people, SQLite and PostgreSQL, + SMS
    python bench/notify.py --people 5000 --backend postgresql --skip-sms

Email: an aiosmtpd sink in its own process counts what it receives (messages and distinct
Message-IDs, so nothing lost and nothing twice). The baseline is a bare aiosmtplib loop
sending the same N notices, rendered and built beforehand by Breachflow's own
``render_notice`` and ``build_email``, over the same
number of connections (``BREACH_SMTP_POOL_SIZE``, ``--connections``); only the sending is
timed. Then, per backend, in a fresh process: an incident with N email-only people (imported
from a generated CSV, not timed), a warm-up run on a small incident (starts Prefect's
ephemeral server, compiles the templates: not timed), the assess step (not timed), and then
the timed part: the ``notify`` flow, that is queueing everyone in the ledger
(``queue_notices``), dispatching until every row is final (``notify_shard``: claim, decrypt,
render, build, send, record results and the batch's timeline event) and ``finish_notify``.
Prints messages/s, the ratio to the baseline (target: at least 0.85 on PostgreSQL), where
the time went (from the timeline) and the CPU used by the dispatchers and the sink.
``--dispatchers N`` sends with N processes: the ``notify`` flow and N - 1 ``breach dispatch``
started once the notices are queued (timed), sharing the same SMTP connections.

SMS: ``tests/testkit/twilio_server.py`` in its own process (its standalone mode, with Nagle's
algorithm off: see ``twilio_main``; ``--sms-latency`` makes it take that long per request,
as the real API does), M phone-only people, live mode at ``BREACH_SMS_RATE_PER_SECOND``
(``--sms-rate``, 200). Status callbacks go to a closed port and ``notify`` does not wait for
them (``BREACH_REPORT_WAIT_SECONDS=0``): what is timed is the sending. From the server's
record of accepted requests: the achieved rate from the first to the last request
((M - 1) / span), the busiest sliding one-second window, and the pauses in the stream (gaps
over ten slots, e.g. between batches). Each dispatcher also records when each request left
it (``Pacer.depart``, just before the request is handed to its connection): the busiest
second of those is the pacer's promise, and must not exceed the rate. Target: within ±5%,
and never above as the requests left; the stand-in's busiest second is printed beside it
(its threads' scheduling shifts arrivals by a few milliseconds). ``--dispatchers N`` sends
SMS with N processes too.

Other work on the machine distorts every figure here: the first line says how busy it was.

PostgreSQL: ``BREACH_BENCH_POSTGRES_URL`` (default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``; a database is created and dropped per
run). ``--profile DIR`` runs each timed ``notify`` under cProfile (figures then are not
comparable) and writes ``DIR/<backend>-<channel>.prof``.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import itertools
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from scratch import create_database, drop_database

SELF = Path(__file__).resolve()
ROOT = SELF.parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
HEADER = ["subject_id", "name", "email", "phone", "locale", "country"]
WARM_UP_PEOPLE = 20
CPU_TARGET = 2.0  # dispatcher CPU per message over the bare client's
TARGET_RATIO = 0.85
SMS_TOLERANCE = 0.05
TWILIO_ACCOUNT = "AC" + "b" * 32
TWILIO_TOKEN = "bench-auth-token"  # noqa: S105 - the local stand-in's, not a secret
TWILIO_FROM = "+15005550006"


# --- the people -------------------------------------------------------------------------------


def person(n: int, *, phone: bool) -> list[str]:
    """Row ``n``: 40% Chinese, 60% English; email-only, or phone-only when ``phone``."""
    if n % 5 < 2:
        name, locale, country, domain = f"王{n % 997}", "zh-CN", "CN", "cn"
        number = f"+86 139 {n % 10_000_000:08d}"
    else:
        name, locale, country, domain = f"Alex Smith {n % 997}", "en-US", "US", "com"
        number = f"+1 415 {200 + n // 10_000 % 800} {n % 10_000:04d}"
    if phone:
        return [f"P{n:09d}", name, "", number, locale, country]
    return [f"E{n:09d}", name, f"u{n}@example.{domain}", "", locale, country]


def write_people(path: Path, start: int, count: int, *, phone: bool) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for n in range(start, start + count):
            writer.writerow(person(n, phone=phone))
    return path


# --- the SMTP sink: its own process, counts and nothing else ------------------------------------


def sink_main() -> None:
    """Serve SMTP on a free port and a one-line control protocol on another; print both."""
    from aiosmtpd.smtp import SMTP

    class Counter:
        def __init__(self) -> None:
            self.reset()

        def reset(self) -> None:
            self.messages = self.recipients = 0
            self.ids: set[bytes] = set()
            self.first = self.last = 0.0

        async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
            content = envelope.original_content or b""
            head = content[: content.find(b"\r\n\r\n")]
            start = head.find(b"\nMessage-ID:")
            if start >= 0:
                end = head.find(b"\r\n", start + 1)
                self.ids.add(head[start + 12 : end if end >= 0 else None].strip())
            now = time.time()
            self.first = self.first or now
            self.last = now
            self.messages += 1
            self.recipients += len(envelope.rcpt_tos)
            return "250 2.0.0 OK"

        def stats(self) -> dict[str, Any]:
            return {
                "messages": self.messages,
                "distinct_ids": len(self.ids),
                "recipients": self.recipients,
                "first": self.first,
                "last": self.last,
                "cpu": time.process_time(),
            }

    counter = Counter()

    async def control(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            if line.strip() == b"RESET":
                counter.reset()
            writer.write(json.dumps(counter.stats()).encode() + b"\n")
            await writer.drain()
        writer.close()

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        smtp = await loop.create_server(
            lambda: SMTP(counter, hostname="sink", ident="bench-sink"), "127.0.0.1", 0
        )
        ctl = await asyncio.start_server(control, "127.0.0.1", 0)
        ports = {
            "smtp": smtp.sockets[0].getsockname()[1],
            "control": ctl.sockets[0].getsockname()[1],
        }
        print(json.dumps(ports), flush=True)
        # Stop when the benchmark closes our stdin (or dies).
        stdin = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
        await stdin.read()

    asyncio.run(serve())


def sink_command(port: int, command: str = "STATS") -> dict[str, Any]:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(command.encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
    return json.loads(data)


# --- the baseline: a bare aiosmtplib loop over the same rendered messages ------------------------


def _render_chunk(numbers: list[int]) -> list[tuple[str, bytes]]:
    """In a worker process: each person's notice as Breachflow renders and builds it."""
    from datetime import timedelta
    from types import SimpleNamespace

    import yaml

    from breachflow.models import runtime
    from breachflow.models.base import utcnow
    from breachflow.models.delivery import Channel, OutboundMessage
    from breachflow.models.notice import parse_notice_texts
    from breachflow.models.notification import idempotency_key
    from breachflow.notifiers.email_message import build_email, message_id
    from breachflow.rendering.notices import notice_content, notice_link, render_notice

    config = runtime.settings()
    texts = parse_notice_texts(yaml.safe_load((ROOT / "examples/notice.yaml").read_text("utf-8")))
    now = utcnow()
    incident = SimpleNamespace(
        key="INC-2026-0001", detected_at=now - timedelta(days=2), aware_at=now - timedelta(days=1)
    )
    out = []
    for n in numbers:
        _, name, email, _, locale, _ = person(n, phone=False)
        locale = "zh-CN" if locale == "zh-CN" else "en"
        link = notice_link(config, incident.key, locale)
        content = notice_content(incident, texts[locale], locale, config, name=name, link=link)  # type: ignore[arg-type]
        rendered = render_notice(content, Channel.EMAIL)
        msg = OutboundMessage(
            notification_id=n,
            message_id=message_id(idempotency_key("INC-BENCH", n, "email", 1), config.sender),
            channel=Channel.EMAIL,
            recipient=email,
            recipient_name=name,
            locale=locale,
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            link=link,
        )
        out.append((email, build_email(msg, config.sender, config.organisation_name)))
    return out


def child_baseline(people: int, host: str, port: int, connections: int) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    import aiosmtplib

    from breachflow.models import runtime

    sender = runtime.settings().sender
    chunks = [list(range(i, min(i + 2000, people + 1))) for i in range(1, people + 1, 2000)]
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=2, mp_context=spawn) as pool:
        messages = [m for chunk in pool.map(_render_chunk, chunks) for m in chunk]

    async def blast() -> None:
        pending = iter(messages)

        async def connection() -> None:
            smtp = aiosmtplib.SMTP(hostname=host, port=port, timeout=60)
            await smtp.connect()
            for recipient, data in pending:
                await smtp.sendmail(sender, [recipient], data)
            await smtp.quit()

        await asyncio.gather(*(connection() for _ in range(connections)))

    cpu = _cpu()
    started = time.perf_counter()
    asyncio.run(blast())
    seconds = time.perf_counter() - started
    print(json.dumps({"messages": len(messages), "seconds": seconds, "cpu": _cpu() - cpu}))


# --- Breachflow: a fresh process per backend ---------------------------------------------------


def record_departures() -> list[float]:
    """In a dispatching process: note when each paced request left (``Pacer.depart``), the
    moment the pacer's promise is about, and write them to ``BENCH_DEPARTURES/<pid>`` at
    exit. The stand-in's own arrival times add its threads' scheduling to ours."""
    import atexit

    from breachflow.models.pacing import DatabasePacer

    departed: list[float] = []
    folder = os.environ.get("BENCH_DEPARTURES")
    if not folder:
        return departed
    depart = DatabasePacer.depart

    def recording(self: DatabasePacer, slot: float) -> float:
        departed.append(depart(self, slot))
        return departed[-1]

    DatabasePacer.depart = recording  # type: ignore[method-assign]
    atexit.register(
        lambda: Path(folder, str(os.getpid())).write_text("\n".join(map(repr, departed)))
    )
    return departed


def child_dispatch(key: str) -> None:
    """A helper dispatcher: what ``breach dispatch KEY`` does, with departures recorded."""
    from breachflow.flows.notify.dispatch import notify_shard

    record_departures()
    notify_shard(key)


def child_breachflow(channel: str, people: Path, warm_up: Path, profile: Path | None) -> None:
    """Seed, warm up, assess (none of it timed), then time the ``notify`` flow."""
    import httpx
    from prefect import flow
    from sqlalchemy import select

    from breachflow.flows.assess.step import assess
    from breachflow.flows.incident import incident_response
    from breachflow.flows.notify.step import notify, queue_notices
    from breachflow.models import ledger, runtime
    from breachflow.models.base import utcnow
    from breachflow.models.commands import get_incident
    from breachflow.models.timeline import TimelineEvent

    config, keys, db = runtime.settings(), runtime.vault(), runtime.database()
    sink_port = int(os.environ.get("BENCH_SINK_CONTROL", "0"))
    departed = record_departures()

    def reset_receiver() -> None:
        if channel == "email":
            sink_command(sink_port, "RESET")
        else:
            httpx.post(f"{config.twilio_base_url}/_test/reset").raise_for_status()

    @flow(name="bench-assess")
    def assess_only(incident_key: str) -> None:
        assess(incident_key, "bench")

    @flow(name="bench-queue")
    def queue_only(incident_key: str) -> None:
        queue_notices(incident_key, "bench")

    def notify_with_helpers(incident_key: str, helpers: int) -> None:
        """Queue, start ``helpers`` more dispatchers (``breach dispatch``'s work, each with
        its own Prefect home), send with this process's ``notify`` too, and wait for them."""
        queue_only(incident_key)
        started = [
            subprocess.Popen(
                [sys.executable, str(SELF), "--child", "dispatch", "--key", incident_key],
                env=os.environ | {"PREFECT_HOME": f"{os.environ['PREFECT_HOME']}-d{n}"},
                stdout=subprocess.DEVNULL,
            )
            for n in range(helpers)
        ]
        notify(incident_key, "bench")
        if any(process.wait() != 0 for process in started):
            raise SystemExit("a helper dispatcher failed")

    warm_key = _seed(db, config, keys, warm_up, "warm-up")
    incident_response(warm_key, requested_by="bench")  # Prefect's first start happens here
    reset_receiver()
    departed.clear()
    key = _seed(db, config, keys, people, "bench")
    assess_only(key)

    sink_before = sink_command(sink_port) if channel == "email" else None
    busy, cpu, wall = _machine_busy(), _cpu(), utcnow()
    started = time.perf_counter()
    if profile:
        import cProfile

        with cProfile.Profile() as prof:
            notify(key, "bench")
        prof.dump_stats(profile)
    elif helpers := int(os.environ.get("BENCH_DISPATCHERS", "1")) - 1:
        notify_with_helpers(key, helpers)
    else:
        notify(key, "bench")
    seconds = time.perf_counter() - started
    cpu, busy = _cpu() - cpu, _machine_busy(busy)
    sink = sink_command(sink_port) if channel == "email" else None

    with db.unit_of_work() as session:
        incident = get_incident(session, key)
        counts = ledger.counts(session, incident)
        events = session.execute(
            select(TimelineEvent.kind, TimelineEvent.recorded_at)
            .where(
                TimelineEvent.incident_id == incident.id,
                TimelineEvent.kind.in_(
                    ["notices.queued", "notices.batch_sent", "notices.finished"]
                ),
            )
            .order_by(TimelineEvent.seq)
        ).all()
    times = {kind: [(at - wall).total_seconds() for k, at in events if k == kind] for kind in {
        "notices.queued", "notices.batch_sent", "notices.finished"}}  # fmt: skip
    print(json.dumps({
        "seconds": seconds, "counts": counts, "cpu": cpu, "machine_busy": busy,
        "queued_at": times["notices.queued"][0], "batches": len(times["notices.batch_sent"]),
        "last_batch_at": max(times["notices.batch_sent"], default=0.0),
        "finished_at": times["notices.finished"][0],
        "sink_before": sink_before, "sink": sink,
    }))  # fmt: skip


def _seed(db: Any, config: Any, keys: Any, path: Path, title: str) -> str:
    from datetime import timedelta

    import yaml

    from breachflow.flows.assess.subjects import import_subjects
    from breachflow.models import commands
    from breachflow.models.base import utcnow
    from breachflow.models.incident import Severity
    from breachflow.models.notice import parse_notice_texts

    texts = parse_notice_texts(yaml.safe_load((ROOT / "examples/notice.yaml").read_text("utf-8")))
    with db.unit_of_work() as session:
        incident = commands.declare(
            session, title=title, description="bench", severity=Severity.HIGH,
            detected_at=utcnow() - timedelta(days=2), aware_at=utcnow() - timedelta(days=1),
            data_categories=["email", "phone", "name"], actor="bench",
        )  # fmt: skip
        commands.set_notice(session, incident, texts, "bench")
        import_subjects(
            session, incident, path, actor="bench", vault=keys, default_locale="en",
            rejects_dir=config.home / "rejects", workers=2,
        )  # fmt: skip
        return incident.key


def _cpu() -> float:
    """CPU seconds of this process and of its children that have ended (helper dispatchers)."""
    return sum(
        usage.ru_utime + usage.ru_stime
        for usage in map(resource.getrusage, (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    )


def _machine_busy(since: tuple[int, int] | None = None) -> Any:
    """(busy, total) jiffies of all cores; given an earlier reading, the busy fraction since."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    total, busy = sum(fields[:8]), sum(fields[:8]) - fields[3] - fields[4]
    if since is None:
        return busy, total
    return (busy - since[0]) / max(total - since[1], 1)


# --- the parent: processes, databases, figures --------------------------------------------------


def run_child(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run this file with ``args`` in a fresh process, in its home (no stray .env or
    breach.toml is read); returns the JSON it prints last."""
    out = subprocess.run(
        [sys.executable, str(SELF), *args], env=env, cwd=env["BREACH_HOME"],
        capture_output=True, text=True,
    )  # fmt: skip
    if out.returncode != 0:
        sys.stderr.write(out.stdout[-5000:] + out.stderr[-20000:])
        raise SystemExit(f"the {args[1]} run failed (exit {out.returncode})")
    return json.loads(out.stdout.strip().splitlines()[-1])


def base_env(home: Path) -> dict[str, str]:
    (home / "prefect").mkdir(parents=True, exist_ok=True)
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("BREACH_", "PREFECT_", "BENCH_"))
    }
    return env | {
        "BREACH_HOME": str(home),
        "BREACH_DATA_KEY": _key(),
        "BREACH_APPROVAL_GATES": "[]",  # what is measured is sending, not waiting for a person
        "PREFECT_HOME": str(home / "prefect"),
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
        "PYTHONPATH": str(ROOT),
    }


def _key() -> str:
    from breachflow.models.crypto import generate_key

    return generate_key()


def run_breachflow(
    channel: str, backend: str, args: argparse.Namespace, files: tuple[Path, Path],
    home: Path, extra_env: dict[str, str],
) -> dict[str, Any]:  # fmt: skip
    env = base_env(home) | extra_env | {"BREACH_NOTIFIER_MODE": "live"}
    if args.batch_size:
        env["BREACH_BATCH_SIZE"] = str(args.batch_size)
    database = None
    if backend == "postgresql":
        database = create_database(args.pg_url)
        env["BREACH_DATABASE_URL"] = database[1]
    command = ["--child", "breachflow", "--channel", channel, "--people-file", str(files[0]),
               "--warm-up-file", str(files[1])]  # fmt: skip
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
        command += ["--profile", str(args.profile.resolve() / f"{backend}-{channel}.prof")]
    try:
        return run_child(command, env)
    finally:
        if database:
            drop_database(args.pg_url, database[0])


def start_process(command: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    """Start a helper process; returns it and the first line it prints."""
    process = subprocess.Popen(
        [sys.executable, *command], env=env, cwd=env["BREACH_HOME"], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        raise SystemExit(f"{command[0]} did not start")
    return process, line.strip()


def stop_process(process: subprocess.Popen[str]) -> None:
    if process.stdin:
        process.stdin.close()
    try:
        process.wait(timeout=2)
    except subprocess.TimeoutExpired:
        process.terminate()
        process.wait(timeout=10)


def bench_email(args: argparse.Namespace, tmp: Path) -> None:
    files = (
        write_people(tmp / "email-people.csv", 1, args.people, phone=False),
        write_people(tmp / "email-warm-up.csv", 10_000_001, WARM_UP_PEOPLE, phone=False),
    )
    sink, ports = start_process([str(SELF), "--sink"], base_env(tmp / "sink"))
    smtp, control = json.loads(ports)["smtp"], json.loads(ports)["control"]
    try:
        before = sink_command(control, "RESET")
        base = run_child(["--child", "baseline", "--people", str(args.people), "--smtp-port",
                          str(smtp), "--connections", str(args.connections)],
                         base_env(tmp / "baseline"))  # fmt: skip
        after = sink_command(control)
        _check_sink(after, args.people, "baseline")
        base_rate = base["messages"] / base["seconds"]
        sink_busy = (after["cpu"] - before["cpu"]) / base["seconds"]
        print(
            f"email, {args.people:,} people, {args.connections} SMTP connections: baseline "
            f"(bare aiosmtplib loop) {base['seconds']:.1f} s = {base_rate:,.0f} msg/s; "
            f"CPU: client {base['cpu'] / base['seconds']:.0%} of a core, sink "
            f"{sink_busy:.0%}"
        )  # fmt: skip
        if sink_busy > 0.8:
            print("  the sink is (nearly) saturated: this baseline is the sink's own ceiling")
        print(f"{'backend':<11} {'messages':>9} {'seconds':>8} {'msg/s':>7} {'baseline':>9} "
              f"{'ratio':>6}  target ≥ {TARGET_RATIO}")  # fmt: skip
        notes = []
        for backend in args.backend:
            env = {
                "BREACH_SMTP_HOST": "127.0.0.1",
                "BREACH_SMTP_PORT": str(smtp),
                # The same connections as the baseline, shared by the dispatchers.
                "BREACH_SMTP_POOL_SIZE": str(max(1, args.connections // args.dispatchers)),
                "BREACH_SMTP_MAX_CONNECTIONS": str(args.connections),
                "BENCH_DISPATCHERS": str(args.dispatchers),
                "BENCH_SINK_CONTROL": str(control),
            }
            result = run_breachflow("email", backend, args, files, tmp / f"email-{backend}", env)
            _check_sink(result["sink"], args.people, backend)
            if result["counts"] != {"sent": args.people}:
                raise SystemExit(f"{backend}: the ledger ended as {result['counts']}")
            sent = result["counts"].get("sent", 0)
            rate = sent / result["seconds"]
            ratio = rate / base_rate
            met = "met" if ratio >= TARGET_RATIO else "NOT met"
            print(f"{backend:<11} {sent:>9,} {result['seconds']:>8.1f} {rate:>7,.0f} "
                  f"{base_rate:>9,.0f} {ratio:>6.3f}  {met}")  # fmt: skip
            notes.append(_breakdown(backend, result))
            notes.append(_cpu_per_message(backend, result["cpu"], base["cpu"], args.people))
        for note in notes:
            print(note)
    finally:
        stop_process(sink)


def _check_sink(stats: dict[str, Any], people: int, what: str) -> None:
    if not stats["messages"] == stats["distinct_ids"] == people:
        raise SystemExit(
            f"{what}: the sink received {stats['messages']:,} messages with "
            f"{stats['distinct_ids']:,} distinct Message-IDs; expected {people:,} of each"
        )


def _cpu_per_message(backend: str, dispatchers: float, client: float, people: int) -> str:
    """CPU per message, ours against the bare client's: wall time depends on the sink and
    the machine, CPU on what each message costs us."""
    ours, bare = dispatchers / people * 1000, client / people * 1000
    met = "met" if ours <= CPU_TARGET * bare else "NOT met"
    return (
        f"  {backend}: CPU per message {ours:.3f} ms, bare client {bare:.3f} ms: "
        f"{ours / bare:.2f}x (target ≤ {CPU_TARGET}x: {met})"
    )


def _breakdown(backend: str, result: dict[str, Any]) -> str:
    batches = max(result["batches"], 1)
    dispatch = result["last_batch_at"] - result["queued_at"]
    sink = result["sink"]
    sink_cpu = sink["cpu"] - result["sink_before"]["cpu"] if sink else 0.0
    seconds = result["seconds"]
    line = (
        f"  {backend}: queue {result['queued_at']:.1f} s, {result['batches']} batches in "
        f"{dispatch:.1f} s ({dispatch / batches * 1000:.0f} ms each), finish "
        f"{result['finished_at'] - result['last_batch_at']:.1f} s; CPU: dispatchers "
        f"{result['cpu'] / seconds:.0%} of a core"
    )
    if sink:
        line += f", sink {sink_cpu / seconds:.0%}"
    busy = result["machine_busy"]
    return line + f", machine {busy:.0%} of 2 cores busy; ledger {result['counts']}"


def bench_sms(args: argparse.Namespace, tmp: Path) -> None:
    import httpx

    files = (
        write_people(tmp / "sms-people.csv", 1, args.sms_people, phone=True),
        write_people(tmp / "sms-warm-up.csv", 10_000_001, WARM_UP_PEOPLE, phone=True),
    )
    server, url = start_process(
        [str(SELF), "--twilio-server", "--port", "0", "--auth-token", TWILIO_TOKEN,
         "--latency", str(args.sms_latency)],
        base_env(tmp / "twilio"),
    )  # fmt: skip
    try:
        for backend in args.backend:
            env = {
                "BREACH_TWILIO_ACCOUNT_SID": TWILIO_ACCOUNT,
                "BREACH_TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
                "BREACH_TWILIO_FROM_NUMBER": TWILIO_FROM,
                "BREACH_TWILIO_BASE_URL": url,
                "BREACH_SMS_RATE_PER_SECOND": str(args.sms_rate),
                # Status callbacks go nowhere: nothing listens there, refused at once; so
                # notify must not wait for them (it would for 5 minutes by default).
                "BREACH_PUBLIC_URL": f"http://127.0.0.1:{_closed_port()}",
                "BREACH_ALLOW_LOCAL_PUBLIC_URL": "true",  # loopback stand-ins
                "BREACH_REPORT_WAIT_SECONDS": "0",
                "BENCH_DISPATCHERS": str(args.dispatchers),
                "BENCH_DEPARTURES": str(departures := tmp / f"sms-{backend}-departures"),
            }
            departures.mkdir()
            result = run_breachflow("sms", backend, args, files, tmp / f"sms-{backend}", env)
            state = httpx.get(f"{url}/_test/state", timeout=60).json()
            per_process = [path.read_text().split() for path in departures.iterdir()]
            left = sorted(float(line) for lines in per_process for line in lines)
            senders = sum(1 for lines in per_process if lines)
            print(_sms_line(backend, args, result, state, left, senders))
    finally:
        stop_process(server)


def _sms_line(
    backend: str,
    args: argparse.Namespace,
    result: dict[str, Any],
    state: dict[str, Any],
    departures: list[float],
    senders: int,
) -> str:
    """The rate as the dispatchers let requests go (the pacer's promise: never above) and
    as the stand-in saw them arrive (its threads' scheduling shifts arrivals by a few ms)."""
    accepted = [a for a in state["accepted"] if a["resource"] == "Messages"]
    times = sorted(a["at"] for a in accepted)
    distinct = len({a["to"] for a in accepted})
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    achieved = (len(times) - 1) / span if span else 0.0
    busiest = max_in_window(times, 1.0)
    left = max_in_window(departures, 1.0) if departures else 0
    within = abs(achieved - args.sms_rate) <= SMS_TOLERANCE * args.sms_rate
    never_above = 0 < left <= args.sms_rate and len(departures) == len(times)
    pauses = [b - a for a, b in itertools.pairwise(times) if b - a > 10 / args.sms_rate]
    sent = result["counts"].get("sent", 0)
    complete = len(times) == distinct == args.sms_people
    ok = "met" if within and never_above and complete else "NOT met"
    return (
        f"sms ({backend}): {len(times):,} requests accepted ({distinct:,} numbers, ledger "
        f"{sent:,} sent) at a configured {args.sms_rate:g}/s: achieved {achieved:.1f}/s "
        f"(first to last request, {span:.2f} s), busiest 1-s window as they left "
        f"{left} ({len(departures):,} departures from {senders} processes) and as they "
        f"arrived {busiest}; within ±5%: "
        f"{'yes' if within else 'no'}, never above: {'yes' if never_above else 'no'} -> {ok}; "
        f"{len(pauses)} pauses (> {10000 / args.sms_rate:.0f} ms) totalling {sum(pauses):.2f} s; "
        f"notify took {result['seconds']:.1f} s"
    )


def max_in_window(times: list[float], width: float) -> int:
    """The most timestamps in any half-open window ``[t, t + width)``."""
    best, start = 0, 0
    for end, moment in enumerate(times):
        while times[start] <= moment - width:
            start += 1
        best = max(best, end - start + 1)
    return best


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def twilio_main(argv: list[str]) -> None:
    """The Twilio stand-in (``tests/testkit/twilio_server.py``) standalone, from our sys.path."""
    from tests.testkit import twilio_server

    sys.argv = ["twilio_server.py", *argv]
    twilio_server.main()


def main() -> None:
    if sys.argv[1:2] == ["--twilio-server"]:
        twilio_main(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--backend", action="append", choices=["sqlite", "postgresql"])
    parser.add_argument(
        "--connections", type=int, default=int(os.environ.get("BREACH_SMTP_POOL_SIZE", "4"))
    )
    parser.add_argument("--batch-size", type=int, help="BREACH_BATCH_SIZE (default: its own)")
    parser.add_argument(
        "--dispatchers",
        type=int,
        default=1,
        help="email: dispatcher processes (the notify flow and N-1 `breach dispatch`)",
    )
    parser.add_argument("--sms-people", type=int, default=2_000)
    parser.add_argument("--sms-rate", type=float, default=200.0)
    parser.add_argument(
        "--sms-latency",
        type=float,
        default=0.0,
        help="seconds the Twilio stand-in takes per request",
    )
    parser.add_argument("--skip-sms", action="store_true")
    parser.add_argument("--skip-email", action="store_true")
    parser.add_argument("--pg-url", default=os.environ.get("BREACH_BENCH_POSTGRES_URL", DEFAULT_PG))
    parser.add_argument("--profile", type=Path, help="cProfile each timed notify into DIR")
    parser.add_argument("--sink", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--child", choices=["baseline", "breachflow", "dispatch"], help=argparse.SUPPRESS
    )
    parser.add_argument("--key", help=argparse.SUPPRESS)
    parser.add_argument("--channel", choices=["email", "sms"], help=argparse.SUPPRESS)
    parser.add_argument("--people-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--warm-up-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--smtp-port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink:
        sink_main()
        return
    if args.child == "baseline":
        child_baseline(args.people, "127.0.0.1", args.smtp_port, args.connections)
        return
    if args.child == "breachflow":
        child_breachflow(args.channel, args.people_file, args.warm_up_file, args.profile)
        return
    if args.child == "dispatch":
        child_dispatch(args.key)
        return
    args.backend = args.backend or ["sqlite", "postgresql"]
    idle = _machine_busy()
    time.sleep(1)
    busy = _machine_busy(idle)
    warning = "  <- not idle: other work distorts these figures" if busy > 0.1 else ""
    print(
        f"machine: {os.cpu_count()} cores, {busy:.0%} busy in the second before the start, "
        f"load average {os.getloadavg()[0]:.2f}{warning}"
    )
    with tempfile.TemporaryDirectory(prefix="breach-bench-") as tmp:
        if not args.skip_email:
            bench_email(args, Path(tmp))
        if not args.skip_sms:
            bench_sms(args, Path(tmp))


if __name__ == "__main__":
    main()
