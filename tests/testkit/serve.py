"""``breach serve`` as a user starts it: a real process, waited for until it is healthy."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from tests.conftest import BREACH, free_port


@dataclass
class Served:
    url: str
    process: subprocess.Popen[str]
    #: stdout and stderr together, once the server has stopped.
    output: str = ""


@contextmanager
def breach_serve(*args: str, seconds: float = 60, **env: str) -> Iterator[Served]:
    """Run ``breach serve --port P --watchdog-every 0 ARGS`` (``NAME=value`` keywords add to
    its environment; no Prefect server), wait for ``/healthz``, stop it with Ctrl-C."""
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"} | env
    process = subprocess.Popen(
        [BREACH, "serve", "--port", str(port), "--watchdog-every", "0", *args],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    served = Served(f"http://127.0.0.1:{port}", process)
    try:
        deadline = time.monotonic() + seconds
        while True:
            try:
                if httpx.get(f"{served.url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"breach serve did not start: {process.communicate()[0]}")
            time.sleep(0.2)
        yield served
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        served.output = process.communicate(timeout=30)[0] or ""
