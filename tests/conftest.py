"""Shared fixtures: real databases, a real SMTP server, a real Prefect API.

Database tests run on SQLite and, when ``BREACH_TEST_POSTGRES_URL`` is set, on PostgreSQL
too, each test in a database of its own. If that URL is set and PostgreSQL cannot be
reached, the tests error: CI must fail, not skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

# Prefect reads its settings at import: point it at a throwaway home first.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="breach-prefect-")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from breachflow.models import runtime
from breachflow.models.anchor import Witness, write_key_pair
from breachflow.models.crypto import generate_key
from breachflow.models.db import Database
from breachflow.models.settings import Settings

POSTGRES_URL = os.environ.get("BREACH_TEST_POSTGRES_URL")
BACKENDS = ["sqlite", "postgresql"] if POSTGRES_URL else ["sqlite"]
#: For tests of a layer the database does not change (command-line output, HTTP status
#: codes): run once, on SQLite. Anything that locks, counts or races runs on both.
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _postgres_database(template: str | None = None) -> Iterator[str]:
    """A new PostgreSQL database, a copy of ``template`` when given, dropped afterwards."""
    assert POSTGRES_URL
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"breach_test_{uuid.uuid4().hex[:12]}"
    copy = f' TEMPLATE "{template}"' if template else ""
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"{copy}')
    except sa.exc.OperationalError as exc:
        pytest.fail(f"BREACH_TEST_POSTGRES_URL is set but PostgreSQL is unreachable: {exc}")
    try:
        yield (
            sa.engine.make_url(POSTGRES_URL)
            .set(database=name)
            .render_as_string(hide_password=False)
        )
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(scope="session")
def _migrated_postgres() -> Iterator[str]:
    """A database at the newest migration, copied for each test: running the migrations
    took a second per test, copying a fifth of one."""
    for url in _postgres_database():
        database = Database(url)
        database.upgrade()
        database.dispose()
        yield sa.engine.make_url(url).database or ""


@pytest.fixture(scope="session")
def _migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("schema") / "breach.db"
    database = Database(f"sqlite:///{path}")
    database.upgrade()
    database.dispose()
    return path


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database for one test, already at the newest migration (the migrations have
    tests of their own, from an empty database)."""
    if request.param == "sqlite":
        path = tmp_path / "breach.db"
        shutil.copyfile(request.getfixturevalue("_migrated_sqlite"), path)
        yield f"sqlite:///{path}"
    else:
        yield from _postgres_database(request.getfixturevalue("_migrated_postgres"))


@pytest.fixture
def settings(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    """Settings for one test: its own home, database, and fast retries."""
    for name in list(os.environ):
        if name.startswith("BREACH_") and name != "BREACH_TEST_POSTGRES_URL":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BREACH_HOME", str(tmp_path / ".breach"))
    monkeypatch.setenv("BREACH_DATABASE_URL", database_url)
    monkeypatch.setenv("BREACH_RETRY_BASE_SECONDS", "0.05")
    monkeypatch.setenv("BREACH_RETRY_MAX_SECONDS", "0.2")
    monkeypatch.setenv("BREACH_DATA_KEY", generate_key())
    # Tests of the response run it through; the approval gate has tests of its own.
    monkeypatch.setenv("BREACH_APPROVAL_GATES", "[]")
    # The test server is a Prefect server, but nothing serves deployments on it: unattended
    # runs go to threads, except in the test of `breach serve` with deployments.
    monkeypatch.setenv("BREACH_PREFECT_DEPLOYMENTS", "false")
    runtime.reset()
    yield runtime.settings()
    runtime.reset()


@pytest.fixture
def db(settings: Settings) -> Database:
    return runtime.database()


@pytest.fixture
def anchored(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, Witness]:
    """A checkpoint signing key and a witness folder outside the database (ask for it
    before ``db``); returns the public key's path and the witness."""
    key = tmp_path / "keys" / "checkpoint.key"
    public = write_key_pair(key)
    monkeypatch.setenv("BREACH_CHECKPOINT_KEY_FILE", str(key))
    monkeypatch.setenv("BREACH_WITNESS_DIR", str(tmp_path / "witness"))
    runtime.reset()
    return public, Witness(tmp_path / "witness")


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[str]:
    """One Prefect test server for the session; yields its API URL for child processes."""
    from prefect.settings import get_current_settings
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield str(get_current_settings().api.url)


@dataclass
class RecordingHandler:
    """An SMTP peer that records what it accepts and refuses recipients on request.

    ``script[address]`` is a list of reply codes given to successive attempts for that
    address (e.g. ``[451, 451]`` then accept); ``always[address]`` refuses every time;
    ``greylist_seconds`` greylists: every address is refused with 451 until that long after
    it was first tried, as many mail servers do to new senders.
    """

    received: list[EmailMessage] = field(default_factory=list)
    script: dict[str, list[int]] = field(default_factory=dict)
    always: dict[str, int] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    delay: float = 0.0
    greylist_seconds: float = 0.0
    first_seen: dict[str, float] = field(default_factory=dict)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        self.attempts[address] += 1
        first = self.first_seen.setdefault(address, time.monotonic())
        if time.monotonic() - first < self.greylist_seconds:
            return f"451 4.7.1 Greylisted, try again later <{address}>"
        code = self.always.get(address)
        if code is None and self.script.get(address):
            code = self.script[address].pop(0)
        if code is not None:
            kind = "4.2.0 Mailbox busy, try again later" if code < 500 else "5.1.1 User unknown"
            return f"{code} {kind} <{address}>"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        if self.delay:
            import asyncio

            await asyncio.sleep(self.delay)
        message = message_from_bytes(envelope.original_content, policy=policy.default)
        self.received.append(message)  # type: ignore[arg-type]
        return "250 2.0.0 Message accepted"

    def by_recipient(self) -> dict[str, list[EmailMessage]]:
        grouped: dict[str, list[EmailMessage]] = defaultdict(list)
        for message in self.received:
            grouped[message["To"].addresses[0].addr_spec].append(message)
        return grouped


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp_server() -> Iterator[tuple[Controller, RecordingHandler]]:
    handler = RecordingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller, handler
    finally:
        controller.stop()


@pytest.fixture
def live_smtp(
    settings: Settings,
    smtp_server: tuple[Controller, RecordingHandler],
    monkeypatch: pytest.MonkeyPatch,
) -> RecordingHandler:
    """Settings switched to live sending through the test's SMTP server."""
    controller, handler = smtp_server
    monkeypatch.setenv("BREACH_NOTIFIER_MODE", "live")
    monkeypatch.setenv("BREACH_SMTP_URL", f"smtp://{controller.hostname}:{controller.port}")
    runtime.reset()
    return handler


BREACH = str(Path(sys.executable).parent / "breach")


@pytest.fixture
def breach(settings, prefect_api):
    """Run ``breach ARGS`` (``NAME=value`` keywords add to its environment) in the test's
    home; returns the completed process."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_LOGGING_LEVEL"}  # as a user's
    env |= {"PREFECT_API_URL": prefect_api, "COLUMNS": "200"}

    def run(*args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [BREACH, *args],
            env=env | extra_env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    return run
