"""What an SRE runs `breach serve` with (issue 18, item 2): health and readiness probes,
Prometheus metrics checked by Prometheus' own `promtool`, an access log and JSON logs that
never carry a contact detail, and example alert rules that Prometheus accepts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from breachflow import shipped
from breachflow.flows.incident import incident_response
from breachflow.models.apikey import Role, create_key
from tests.api.test_callbacks import AppServer
from tests.conftest import SQLITE_ONLY, free_port
from tests.testkit.factories import people, seed_incident
from tests.testkit.serve import breach_serve

PROMTOOL = shutil.which("promtool")
RULES = shipped("examples") / "prometheus" / "breachflow.rules.yaml"


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_count_the_ledger_and_pass_promtool(db, settings, live_smtp):
    assert PROMTOOL, "apt-get install prometheus (its promtool checks the format; see README)"
    persons = people(6, broken_every=4)  # one has no usable address
    key = seed_incident(db, settings, persons)
    incident_response(key, requested_by="test")
    with db.unit_of_work() as session:
        scraper = create_key(session, "prometheus", Role.METRICS, "test")
        responder = create_key(session, "resp", Role.RESPONDER, "test")
    with AppServer(free_port()) as server:
        assert httpx.get(f"{server.url}/metrics").status_code == 401
        refused = httpx.get(
            f"{server.url}/metrics", headers={"Authorization": f"Bearer {responder}"}
        )
        assert refused.status_code == 403
        assert httpx.get(f"{server.url}/healthz").status_code == 200
        scraped = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {scraper}"})
        # The metrics key opens nothing else.
        elsewhere = httpx.get(
            f"{server.url}/api/v1/incidents", headers={"Authorization": f"Bearer {scraper}"}
        )
    assert scraped.status_code == 200 and elsewhere.status_code == 403
    assert scraped.headers["content-type"].startswith("text/plain; version=")
    checked = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=scraped.text, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr

    samples = _samples(scraped.text)
    assert samples[("breachflow_notices", (("channel", "email"), ("state", "sent")))] == 5
    assert samples[("breachflow_notices_sent_total", (("channel", "email"),))] == 5
    assert samples[("breachflow_provider_errors_total", (("channel", "email"),))] == 0
    assert ("breachflow_last_sent_timestamp_seconds", (("channel", "email"),)) in samples
    assert samples[("breachflow_alerts_received_total", ())] == 0
    deadlines = {
        labels[0][1]: value for (name, labels), value in samples.items()
        if name == "breachflow_deadlines"
    }  # fmt: skip
    assert sum(deadlines.values()) >= 1 and set(deadlines) >= {"met", "pending", "overdue"}
    latency = ("breachflow_http_request_duration_seconds_count",
               (("method", "GET"), ("route", "/healthz"), ("status", "200")))  # fmt: skip
    assert samples[latency] == 1
    for person in persons:  # counts only: no contact detail reaches the metrics
        assert person.email not in scraped.text


@SQLITE_ONLY
def test_readiness_says_which_part_is_not_ready(settings):
    with AppServer(free_port()) as server:
        ready = httpx.get(f"{server.url}/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": "ok"}}

    # The response runs on a Prefect server that does not answer, and the database is gone:
    # the app in a process of its own, so Prefect reads its settings from that environment.
    port = free_port()
    env = os.environ | {
        "BREACH_PREFECT_DEPLOYMENTS": "true",
        "PREFECT_API_URL": f"http://127.0.0.1:{free_port()}/api",
        "BREACH_DATABASE_URL": f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/x",
    }
    app = "import uvicorn; from breachflow.api.app import create_app; "
    app += f"uvicorn.run(create_app(), port={port}, log_level='critical')"
    process = subprocess.Popen([sys.executable, "-c", app], env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10)
                break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.2)
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert answer.status_code == 503
    checks = answer.json()["checks"]
    assert checks["database"].startswith("unreachable")
    assert checks["prefect"].startswith("unreachable")


@SQLITE_ONLY
@pytest.mark.parametrize("form", ["json", "text"])
def test_breach_serve_logs_each_request_without_query_or_contact(db, settings, form):
    with db.unit_of_work() as session:
        token = create_key(session, "reader", Role.COMPLIANCE, "test")
    with breach_serve(BREACH_LOG_FORMAT=form) as served:
        searched = httpx.get(
            f"{served.url}/api/v1/incidents/INC-2026-0042/timeline",
            params={"q": "alice@example.com"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert searched.status_code == 404
    assert "alice@example.com" not in served.output
    lines = [line for line in served.output.splitlines() if "/timeline" in line]
    assert len(lines) == 1, served.output
    if form == "json":
        entry = json.loads(lines[0])
        assert entry["logger"] == "breachflow.access"
        assert entry["route"] == "/api/v1/incidents/{key}/timeline"
        assert (entry["method"], entry["status"], entry["client"]) == ("GET", 404, "127.0.0.1")
        assert entry["duration_ms"] >= 0 and "time" in entry and entry["level"] == "INFO"
        started = [json.loads(line) for line in served.output.splitlines() if "Uvicorn" in line]
        assert started and started[0]["logger"] == "uvicorn.error"  # uvicorn's own, as JSON
    else:
        assert "breachflow.access: GET /api/v1/incidents/{key}/timeline 404" in lines[0]


def test_the_example_alert_rules_pass_promtool():
    assert PROMTOOL, "apt-get install prometheus"
    checked = subprocess.run(
        [PROMTOOL, "check", "rules", str(RULES)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 6 rules found" in checked.stdout
