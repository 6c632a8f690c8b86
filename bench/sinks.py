"""Counting provider stand-ins, each in a process of its own, for the benchmarks.

    python bench/sinks.py smtp                     # aiosmtpd (bench/notify.py's sink)
    python bench/sinks.py twilio --auth-token T    # tests/testkit/twilio_server.py
    python bench/sinks.py push --out DIR --webpush 100 --vapid-public KEY

Each prints one JSON line when it is ready (its URLs or ports, and ``control``: a port
where the line ``STATS`` is answered with one JSON line of counts) and serves until its
stdin is closed (the benchmark closes it, or dies). They count, and keep what is needed to
tell a message received twice from two messages; they never fail a request the real
provider would accept.

- ``smtp``: ``bench/notify.py``'s ``sink_main`` (messages, distinct Message-IDs).
- ``twilio``: the Twilio stand-in of ``tests/testkit/twilio_server.py`` with its status
  callbacks left out: nobody listens for them in a benchmark (``BREACH_REPORT_WAIT_SECONDS=0``
  and ``BREACH_PUBLIC_URL`` on a closed port), and posting two failing callbacks per
  message would load the machine for nothing. Counts messages and calls, distinct
  destinations, and the busiest sliding second (the shared rate limit must hold).
- ``push``: ``FakeFcm`` (OAuth2 token endpoint and FCM HTTP v1) and ``FakePushService``
  (Web Push with VAPID, payloads decrypted as a browser would) from
  ``tests/testkit/push_servers.py``, which have no standalone mode. Writes the FCM
  service-account file and ``--webpush`` subscriptions (JSON, one a line) to ``--out``
  before it says it is ready. Counts accepted messages, distinct tokens and subscriptions,
  distinct notice ids, and rejections (there must be none).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

Stats = Callable[[], dict[str, Any]]


def busiest_second(times: list[float]) -> int:
    """The most timestamps in any half-open window ``[t, t + 1)`` (``times`` sorted)."""
    best, start = 0, 0
    for end, moment in enumerate(times):
        while times[start] <= moment - 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


def serve_control(stats: Stats) -> int:
    """A thread answering ``STATS`` lines on a free loopback port; returns the port."""
    listener = socket.create_server(("127.0.0.1", 0))

    def answer(conn: socket.socket) -> None:
        with conn, conn.makefile("rwb") as stream:
            for _ in stream:
                stream.write(json.dumps(stats()).encode() + b"\n")
                stream.flush()

    def accept() -> None:
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return int(listener.getsockname()[1])


def ready(line: dict[str, Any]) -> None:
    """Say where we are, then serve until the benchmark closes our stdin."""
    print(json.dumps(line), flush=True)
    sys.stdin.read()


def command(port: int, line: str = "STATS") -> dict[str, Any]:
    """Ask a sink's control port (every sink here, and bench/notify.py's SMTP sink)."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as conn:
        conn.sendall(line.encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = conn.recv(1 << 20)
            if not chunk:
                break
            data += chunk
    return dict(json.loads(data))


# --- Twilio ------------------------------------------------------------------------------------


def twilio_main(argv: list[str]) -> None:
    from tests.testkit.twilio_server import Accepted, TwilioServer

    parser = argparse.ArgumentParser(prog="sinks.py twilio")
    parser.add_argument("--auth-token", required=True)
    args = parser.parse_args(argv)

    class CountingTwilio(TwilioServer):
        def _queue_callbacks(self, record: Accepted) -> None:
            """Status callbacks are not posted: nobody listens for them here."""

        def stats(self) -> dict[str, Any]:
            with self._lock:
                accepted = list(self._state.accepted)
                unauthorized = self._state.unauthorized
                attempts = sum(self._state.attempts.values())
            messages = sorted(a.at for a in accepted if a.resource == "Messages")
            return {
                "messages": len(messages),
                "distinct_to": len({a.to for a in accepted if a.resource == "Messages"}),
                "calls": sum(1 for a in accepted if a.resource == "Calls"),
                "requests": attempts,
                "refused": attempts - len(accepted),
                "unauthorized": unauthorized,
                "first": messages[0] if messages else 0.0,
                "last": messages[-1] if messages else 0.0,
                "busiest_second": busiest_second(messages),
                "cpu": time.process_time(),
            }

    server = CountingTwilio(auth_token=args.auth_token).start()
    ready({"url": server.url, "control": serve_control(server.stats)})


# --- FCM and Web Push --------------------------------------------------------------------------


def push_main(argv: list[str]) -> None:
    from tests.testkit.push_servers import FakeFcm, FakePushService

    parser = argparse.ArgumentParser(prog="sinks.py push")
    parser.add_argument("--out", type=Path, required=True, help="folder for the files we write")
    parser.add_argument("--webpush", type=int, default=0, help="subscriptions to make")
    parser.add_argument("--vapid-public", required=True, help="the application server key")
    args = parser.parse_args(argv)

    fcm = FakeFcm().__enter__()
    service = FakePushService(application_server_key=args.vapid_public).__enter__()
    args.out.mkdir(parents=True, exist_ok=True)
    account = args.out / "fcm-service-account.json"
    account.write_text(json.dumps(fcm.service_account()), encoding="utf-8")
    subscriptions = args.out / "webpush-subscriptions.jsonl"
    with subscriptions.open("w", encoding="utf-8") as out:
        for _ in range(args.webpush):
            out.write(service.subscribe().recipient + "\n")

    def stats() -> dict[str, Any]:
        with fcm.lock:
            accepted = list(fcm.accepted)
            fcm_counts = (fcm.send_requests, fcm.token_requests, len(fcm.rejections))
        with service.lock:
            deliveries = list(service.deliveries)
            push_counts = (service.requests, len(service.rejections))
        return {
            "fcm": len(accepted),
            "fcm_distinct_tokens": len({m["token"] for m in accepted}),
            "fcm_distinct_notices": len({m["data"]["notice_id"] for m in accepted}),
            "fcm_requests": fcm_counts[0],
            "fcm_token_requests": fcm_counts[1],
            "fcm_rejections": fcm_counts[2],
            "webpush": len(deliveries),
            "webpush_distinct_subscriptions": len({d.subscription_id for d in deliveries}),
            "webpush_distinct_notices": len({d.payload["notice_id"] for d in deliveries}),
            "webpush_requests": push_counts[0],
            "webpush_rejections": push_counts[1],
            "cpu": time.process_time(),
        }

    ready(
        {
            "fcm": fcm.url,
            "webpush": service.url,
            "service_account": str(account),
            "subscriptions": str(subscriptions),
            "control": serve_control(stats),
        }
    )


# --- SMTP --------------------------------------------------------------------------------------


def smtp_main(argv: list[str]) -> None:
    """bench/notify.py's aiosmtpd sink (answers STATS and RESET on its control port)."""
    from notify import sink_main

    del argv
    sink_main()


def main() -> None:
    sinks = {"smtp": smtp_main, "twilio": twilio_main, "push": push_main}
    if len(sys.argv) < 2 or sys.argv[1] not in sinks:
        raise SystemExit(f"usage: sinks.py {{{','.join(sinks)}}} [options]")
    with contextlib.suppress(KeyboardInterrupt):
        sinks[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()
