"""The notify stage fanned out on Prefect: a real server on PostgreSQL, two real workers.

``prefect server start`` runs with its database on the test PostgreSQL; two ``breach
worker`` processes (Prefect's process worker) poll one work pool, one shard at a time
each. ``breach run`` submits the shards and waits. One worker, and the shard it runs, is
killed with SIGKILL mid-send, as a machine that dies: the other shard takes its expired
leases, the stage marks the dead run crashed, and everyone has exactly one ``sent`` row.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
from prefect.settings import PREFECT_API_URL, temporary_settings
from sqlalchemy import func, select

from breachflow.flows import deployments
from breachflow.flows.incident import incident_response
from breachflow.flows.notify import fanout
from breachflow.models import commands, runtime
from breachflow.models.errors import ProviderUnavailable
from breachflow.models.notification import Notification
from breachflow.models.timeline import TimelineEvent, verify_chain
from tests.conftest import BREACH, POSTGRES_URL, SQLITE_ONLY, free_port
from tests.testkit.factories import people, seed_incident

pytestmark = pytest.mark.slow
ON_POSTGRES = [
    pytest.mark.skipif(not POSTGRES_URL, reason="a Prefect server on PostgreSQL needs one"),
    pytest.mark.parametrize("database_url", ["postgresql"], indirect=True),
]

PEOPLE = 20_000
BATCH = 500
WORKER_LABEL = "prefect.worker.name"  # set by the worker that took the run


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``prefect server start`` on a database of its own on the test PostgreSQL."""
    assert POSTGRES_URL
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"breach_prefect_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.engine.make_url(POSTGRES_URL).set(drivername="postgresql+asyncpg", database=name)
    home = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")} | {
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": url.render_as_string(hide_password=False),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
    }
    log = home / "server.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [str(Path(BREACH).parent / "prefect"), "server", "start", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    api = f"http://127.0.0.1:{port}/api"
    try:
        wait_for("the Prefect server", lambda: _healthy(api), 120, server, log)
        yield api
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def _healthy(api: str) -> bool:
    try:
        return httpx.get(f"{api}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def wait_for(
    what: str,
    check: Callable[[], object],
    seconds: float,
    child: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if child is not None and child.poll() is not None:
            pytest.fail(f"{what} ended early:\n{log.read_text()[-3000:] if log else ''}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}:\n{log.read_text()[-3000:] if log else ''}")
        time.sleep(0.2)


class Workers:
    """``breach worker --name NAME --limit 1`` processes, each with its log in a file."""

    def __init__(self, env: dict[str, str], folder: Path) -> None:
        self.env, self.folder = env, folder
        self.children: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str) -> None:
        with (self.folder / f"{name}.log").open("wb") as out:
            self.children[name] = subprocess.Popen(
                [BREACH, "worker", "--name", name, "--limit", "1"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        for child in self.children.values():
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
                try:
                    child.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(child.pid, signal.SIGKILL)
                    child.wait()


@ON_POSTGRES[0]
@ON_POSTGRES[1]
def test_shards_run_on_two_workers_and_survive_one_killed_mid_shard(
    db, settings, live_smtp, prefect_server, tmp_path, monkeypatch
):
    pool = f"breachflow-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("BREACH_BATCH_SIZE", str(BATCH))
    # Long enough that no live shard loses a batch to a slow send on a busy machine (which
    # would be sent twice, and not by the kill), short enough to take the dead one's soon.
    monkeypatch.setenv("BREACH_LEASE_SECONDS", "30")
    monkeypatch.setenv("BREACH_NOTIFY_SHARDS", "2")
    monkeypatch.setenv("BREACH_WORK_POOL", pool)
    monkeypatch.setenv("BREACH_PREFECT_DEPLOYMENTS", "true")
    runtime.reset()
    key = seed_incident(db, runtime.settings(), people(PEOPLE))
    live_smtp.delay = 0.002  # a relay's pace, so that the kill lands mid-shard
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_LOGGING_LEVEL"}
    env |= {"PREFECT_API_URL": prefect_server, "PREFECT_WORKER_QUERY_SECONDS": "1"}
    workers = Workers(env, tmp_path)
    run_log = tmp_path / "run.log"
    try:
        workers.start("worker-1")
        workers.start("worker-2")
        with run_log.open("wb") as out:
            run = subprocess.Popen(
                [BREACH, "run", key], env=env, stdout=out, stderr=subprocess.STDOUT
            )
        with (
            temporary_settings(updates={PREFECT_API_URL: prefect_server}),
            get_client(sync_client=True) as prefect,
        ):
            wait_for(
                "both shards sending",
                lambda: len(_running_shards(prefect)) == 2 and len(live_smtp.received) >= 4_000,
                300,
                run,
                run_log,
            )
            victim = _running_shards(prefect)[0]
            dead_worker = victim.labels[WORKER_LABEL]
            # A machine that dies: the worker and the shard it started, no cleanup.
            os.killpg(workers.children[dead_worker].pid, signal.SIGKILL)
            os.kill(int((victim.infrastructure_pid or "").rpartition(":")[2]), signal.SIGKILL)
            sent_when_killed = len(live_smtp.received)

            assert run.wait(timeout=300) == 0, run_log.read_text()[-3000:]
            shard_runs = _shard_runs(prefect)
    finally:
        workers.stop()

    assert sent_when_killed < PEOPLE  # the kill landed mid-send
    # The shards ran on both workers, named on their flow runs; the dead one is crashed.
    assert {r.labels[WORKER_LABEL] for r in shard_runs} == {"worker-1", "worker-2"}
    states = {r.id: r.state.type.value for r in shard_runs if r.state}
    assert states[victim.id] == "CRASHED"
    assert sorted(states.values()) == ["COMPLETED", "CRASHED"]

    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        assert incident.state == "reporting"
        rows = session.execute(
            select(Notification.subject_id, Notification.state).where(
                Notification.incident_id == incident.id
            )
        ).all()
        kinds = Counter(
            session.scalars(
                select(TimelineEvent.kind).where(TimelineEvent.incident_id == incident.id)
            )
        )
        abandoned = session.scalars(
            select(TimelineEvent.payload).where(
                TimelineEvent.incident_id == incident.id,
                TimelineEvent.kind == "notices.shards_abandoned",
            )
        ).one()
        assert verify_chain(session, incident).ok
    # Everyone exactly one row, and it is sent.
    assert len(rows) == PEOPLE
    assert Counter(state for _, state in rows) == {"sent": PEOPLE}
    assert len({subject for subject, _ in rows}) == PEOPLE
    assert kinds["notices.shards_submitted"] == 1
    assert abandoned["flow_runs"] == [str(victim.id)]
    # The sink got everyone; what the dead shard had handed over unrecorded came twice,
    # at most one batch of it.
    recipients = Counter(str(m["To"]) for m in live_smtp.received)
    assert len(recipients) == PEOPLE
    assert len(live_smtp.received) - PEOPLE <= BATCH


@SQLITE_ONLY
def test_with_no_worker_on_the_pool_the_run_fails_plainly_and_sends_nothing(
    db, settings, prefect_api, monkeypatch
):
    monkeypatch.setenv("BREACH_PREFECT_DEPLOYMENTS", "true")
    monkeypatch.setenv("BREACH_WORK_POOL", f"nobody-{uuid.uuid4().hex[:8]}")
    monkeypatch.setattr(fanout, "WORKER_WAIT_SECONDS", 1)
    runtime.reset()
    key = seed_incident(db, runtime.settings(), people(3))
    with pytest.raises(ProviderUnavailable, match="no worker polls work pool 'nobody-"):
        incident_response(key, requested_by="test")
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        assert incident.state == "notifying"
        failed = session.scalars(
            select(TimelineEvent.payload).where(
                TimelineEvent.incident_id == incident.id, TimelineEvent.kind == "run.failed"
            )
        ).one()
        sent = session.scalar(
            select(func.count()).where(
                Notification.incident_id == incident.id, Notification.state != "queued"
            )
        )
    assert "breach worker" in failed["reason"]
    assert sent == 0  # everyone still queued for the next run


def _shard_runs(prefect):  # type: ignore[no-untyped-def]
    return prefect.read_flow_runs(
        deployment_filter=DeploymentFilter(
            name=DeploymentFilterName(any_=[deployments.DEPLOYMENT])
        ),
        limit=50,
    )


def _running_shards(prefect):  # type: ignore[no-untyped-def]
    return [
        r
        for r in _shard_runs(prefect)
        if r.state and r.state.is_running() and WORKER_LABEL in r.labels
    ]
