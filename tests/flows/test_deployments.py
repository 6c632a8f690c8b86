"""`breach serve` with a Prefect server: the response and the watchdog as served deployments.

A real `breach serve` process against the session's Prefect test server: it registers both
deployments and runs what the server hands it, each flow run in a child process as Prefect's
runner does. An approval given over the API becomes a deployment run that notifies and
closes the incident; a repeated run request with one idempotency key is one run; and a
scheduled watchdog run warns about the overdue deadline.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from uuid import UUID

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.sorting import FlowRunSort
from prefect.settings import PREFECT_API_URL, temporary_settings
from sqlalchemy import select

from breachflow.flows import deployments
from breachflow.flows.incident import incident_response
from breachflow.flows.intake.alerts import Alert, receive
from breachflow.models import commands, runtime
from breachflow.models.apikey import Role, create_key
from breachflow.models.errors import ProviderUnavailable
from breachflow.models.timeline import TimelineEvent
from tests.conftest import BREACH, SQLITE_ONLY, free_port
from tests.flows.test_incident_flow import timeline_kinds
from tests.testkit.factories import people, seed_incident


def wait_for(what: str, check: Callable[[], object], timeout: float = 120) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def served(settings, prefect_api, monkeypatch) -> Iterator[str]:
    """`breach serve` with deployments on (chosen by PREFECT_API_URL alone), gates on."""
    monkeypatch.setenv("BREACH_APPROVAL_GATES", '["notify"]')
    monkeypatch.delenv("BREACH_PREFECT_DEPLOYMENTS")
    runtime.reset()
    port = free_port()
    env = os.environ | {"PREFECT_API_URL": prefect_api, "PREFECT_RUNNER_POLL_FREQUENCY": "1"}
    server = subprocess.Popen(
        [BREACH, "serve", "--port", str(port), "--watchdog-every", "3600"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        with get_client(sync_client=True) as prefect:
            for name in (deployments.RESPONSE, deployments.WATCHDOG):
                wait_for(name, lambda name=name: _deployment(prefect, name), timeout=90)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.send_signal(signal.SIGINT)
        output, _ = server.communicate(timeout=30)
        print(output)  # shown when the test fails


def _named(deployment_id: UUID):  # type: ignore[no-untyped-def]
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    return DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))


def _deployment(prefect, name: str):  # type: ignore[no-untyped-def]
    from prefect.exceptions import ObjectNotFound

    try:
        return prefect.read_deployment_by_name(name)
    except ObjectNotFound:
        return None


@SQLITE_ONLY  # Prefect's scheduling and workers; the response itself runs on both elsewhere
def test_served_deployments_run_the_watchdog_on_schedule_and_the_response_on_approval(
    db, served, prefect_api
):
    key = seed_incident(db, runtime.settings(), people(4), aware_days_ago=2)
    waiting = incident_response(key, requested_by="test")  # assessed, stopped at the gate
    assert waiting.state == "assessed" and waiting.waiting_for
    with db.unit_of_work() as session:
        oncall = create_key(session, "oncall-1", Role.ONCALL, "test")
        responder = create_key(session, "responder-1", Role.RESPONDER, "test")

    with get_client(sync_client=True) as prefect:
        watchdog = prefect.read_deployment_by_name(deployments.WATCHDOG)
        assert watchdog.schedules[0].schedule.interval.total_seconds() == 3600
        # The test server runs no scheduler service: ask it to schedule a run as the service
        # would (the same insert, which SQLAlchemy 2.1 refused), at a slot of the schedule
        # already due and not taken by an earlier test on this server, and the served
        # runner picks it up.
        schedule = watchdog.schedules[0].schedule
        taken = len(
            prefect.read_flow_runs(
                deployment_filter=_named(watchdog.id), limit=100, sort=FlowRunSort.ID_DESC
            )
        )
        due = schedule.anchor_date - schedule.interval * (taken + 1)
        for _ in range(10):  # a busy Prefect server answers 503: try again, as it asks
            scheduled = httpx.post(
                f"{prefect_api}/deployments/{watchdog.id}/schedule",
                json={"start_time": due.isoformat(), "max_runs": 1},
            )
            if scheduled.status_code != 503:
                break
            time.sleep(1)
        assert scheduled.status_code < 300, scheduled.text
        wait_for(
            "the scheduled watchdog's warning",
            lambda: "deadline.warning" in timeline_kinds(db, key),
        )

        api = httpx.Client(base_url=served, timeout=30)
        started = timeline_kinds(db, key).count("run.started")
        # A retried request with the same idempotency key is the same run, not another one.
        runs = [
            api.post(
                f"/api/v1/incidents/{key}/runs",
                headers={"Authorization": f"Bearer {responder}", "Idempotency-Key": "retry-1"},
            )
            for _ in range(2)
        ]
        assert [r.status_code for r in runs] == [202, 202]
        assert runs[0].json()["run"] == runs[1].json()["run"]
        retried = UUID(runs[0].json()["run"].removeprefix("prefect flow run "))
        wait_for("the retried run", lambda: prefect.read_flow_run(retried).state.is_final())
        kinds = timeline_kinds(db, key)
        assert kinds.count("run.started") == started + 1  # one run for the two requests
        assert "notices.queued" not in kinds  # and it stopped at the gate again

        approved = api.post(
            f"/api/v1/incidents/{key}/approvals/notice",
            json={"note": "texts checked"},
            headers={"Authorization": f"Bearer {oncall}"},
        )
        assert approved.status_code == 202, approved.text
        run_id = UUID(approved.json()["run"].removeprefix("prefect flow run "))
        response = prefect.read_deployment_by_name(deployments.RESPONSE)
        assert prefect.read_flow_run(run_id).deployment_id == response.id
        wait_for("the approved run", lambda: prefect.read_flow_run(run_id).state.is_final())
        assert prefect.read_flow_run(run_id).state.is_completed()
        assert timeline_kinds(db, key).count("notices.queued") == 1
        with db.unit_of_work() as session:
            assert commands.get_incident(session, key).state == "reporting"


def test_a_prefect_server_that_cannot_be_reached_is_said_plainly_and_loses_no_alert(
    db, settings, tmp_path, monkeypatch
):
    rules = tmp_path / "alert-rules.yaml"
    rules.write_text("- match: {alertname: DataExfiltration}\n  action: declare\n")
    monkeypatch.setenv("BREACH_ALERT_RULES_FILE", str(rules))
    monkeypatch.setenv("BREACH_PREFECT_DEPLOYMENTS", "true")
    runtime.reset()
    key = seed_incident(db, runtime.settings(), people(1))
    dead = f"http://127.0.0.1:{free_port()}/api"  # nothing listens there
    with temporary_settings(updates={PREFECT_API_URL: dead}):
        with pytest.raises(ProviderUnavailable, match=f"{dead} did not take the run"):
            deployments.start_response(key, "test", "once")
        alert = Alert(title="Bulk export", labels={"alertname": "DataExfiltration"})
        intake = receive("siem", alert)
    assert intake.action == "declared"  # the alert is in; the failed start is on its timeline
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, intake.incident)
        failed = session.scalars(
            select(TimelineEvent).where(
                TimelineEvent.incident_id == incident.id, TimelineEvent.kind == "run.failed"
            )
        ).one()
    assert failed.actor == "alert:siem" and "did not take the run" in failed.payload["reason"]


def test_embedded_serve_runs_the_watchdog_beside_the_server(db, settings, prefect_api):
    """The default: no deployments, the watchdog in a loop inside `breach serve`. The
    incident is reporting, with its GDPR report still to file by hand: that deadline runs."""
    key = seed_incident(db, runtime.settings(), people(2), aware_days_ago=2)
    assert incident_response(key, requested_by="test").state == "reporting"  # reports pending
    env = os.environ | {"PREFECT_API_URL": prefect_api}  # BREACH_PREFECT_DEPLOYMENTS=false
    server = subprocess.Popen(
        [BREACH, "serve", "--port", str(free_port()), "--watchdog-every", "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for("the watchdog's warning", lambda: "deadline.warning" in timeline_kinds(db, key))
    finally:
        server.send_signal(signal.SIGINT)
        output, _ = server.communicate(timeout=30)
    assert "Serving deployments" not in output, output
    assert timeline_kinds(db, key).count("deadline.warning") == 1  # once per level, not per loop


@SQLITE_ONLY
def test_serve_with_deployments_stops_when_its_port_is_taken(settings, prefect_api):
    """The deployments run in the foreground: a web server that could not start must not
    leave them served behind a dead port."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = os.environ | {"PREFECT_API_URL": prefect_api, "BREACH_PREFECT_DEPLOYMENTS": "true"}
        done = subprocess.run(
            [BREACH, "serve", "--port", str(port)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "address already in use" in (done.stdout + done.stderr).lower()
    assert "Serving deployments" not in done.stdout
