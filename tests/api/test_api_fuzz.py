"""Schemathesis against the served OpenAPI: generated requests, from the schema's own
examples, its boundaries, random data and sequences of calls, find no server error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import schemathesis
from schemathesis.checks import not_a_server_error

from breachflow.models import runtime
from breachflow.models.apikey import Role, create_key
from tests.api.test_api import INCIDENT
from tests.api.test_callbacks import AppServer
from tests.conftest import SQLITE_ONLY, free_port

SCHEMATHESIS = str(Path(sys.executable).parent / "st")
# JSON Lines goes on the wire as the text it is (the subjects import takes it).
schemathesis.serializer.alias("application/x-ndjson", "text/plain")


@SQLITE_ONLY
def test_schemathesis_finds_no_server_error(settings, tmp_path):
    with runtime.database().unit_of_work() as session:
        token = create_key(session, "schemathesis", Role.ADMIN, "test")
    with AppServer(free_port()) as server:
        command = [SCHEMATHESIS, "run", f"{server.url}/api/v1/openapi.json"]
        command += ["--header", f"Authorization: Bearer {token}"]
        command += ["--checks", "not_a_server_error", "--max-examples", "25", "--seed", "2026"]
        command += ["--phases", "examples,coverage,fuzzing,stateful"]
        command += ["--report-dir", str(tmp_path / "report")]
        ran = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=600,
        )
    assert ran.returncode == 0, ran.stdout[-6000:] + ran.stderr[-2000:]
    assert "Server error" not in ran.stdout


@SQLITE_ONLY
def test_the_review_s_hostile_requests_as_explicit_schemathesis_examples(settings):
    """The cases the adversarial review found (issue 17) that generated requests never
    reached in 14,049 tries, sent through Schemathesis's own cases and checks: each is a
    4xx with a reason, never a server error."""
    with runtime.database().unit_of_work() as session:
        admin = create_key(session, "examples-admin", Role.ADMIN, "test")
        responder = create_key(session, "examples-responder", Role.RESPONDER, "test")
        source = create_key(session, "examples-alerts", Role.ALERT_SOURCE, "test")
    with AppServer(free_port()) as server:
        schema = schemathesis.openapi.from_url(f"{server.url}/api/v1/openapi.json")

        def send(path: str, method: str, token: str, **parts: Any) -> Any:
            case = schema[path][method].Case(**parts)
            response = case.call(base_url=server.url, headers={"Authorization": f"Bearer {token}"})
            case.validate_response(response, checks=[not_a_server_error])
            return response

        # Item 9: a detected_at in year 1 once overflowed into a 500.
        declared = send(
            "/api/v1/incidents",
            "POST",
            admin,
            body={**INCIDENT, "detected_at": "0001-01-01T00:00:00+00:00"},
        )
        assert declared.status_code == 422, declared.text
        created = send("/api/v1/incidents", "POST", admin, body=INCIDENT)
        assert created.status_code == 201, created.text
        key = created.json()["key"]

        # Item 1: a responder taking the approval gate's step is refused on that path.
        gate_step = {"key": key, "step": "notification-approve-notice"}
        taken = send(
            "/api/v1/incidents/{key}/runbook/{step}",
            "POST",
            responder,
            path_parameters=gate_step,
            body={"note": "approving it myself"},
        )
        assert taken.status_code == 403, taken.text

        # Item 2: each alert that broke a whole batch, now refused (or cut) on its own.
        started = "2026-11-20T09:30:00+00:00"
        for alert, status in [
            ({"fingerprint": ""}, 422),
            ({"fingerprint": "f" * 200}, 422),
            ({"fingerprint": "f-naive", "startsAt": "2026-11-20T09:30:00"}, 422),
            ({"fingerprint": "f-long", "annotations": {"description": "x" * 6000}}, 202),
        ]:
            batch = [{"status": "firing", "labels": {"alertname": "A"}, "startsAt": started}]
            batch[0].update(alert)
            body = {"version": "4", "status": "firing", "alerts": batch}
            answer = send("/api/v1/alerts/alertmanager", "POST", source, body=body)
            assert answer.status_code == status, (alert, answer.text)

        # Item 7: hostile rows are rejected one by one; the good row still lands.
        deep = "[" * 200_000 + "]" * 200_000
        lines = [
            '{"subject_id": "S1", "email": "a@example.com", "name": "A"}',
            deep,
            '{"subject_id": "S3", "email": "b@example.com", "age": ' + "9" * 5000 + "}",
        ]
        imported = send(
            "/api/v1/incidents/{key}/subjects",
            "POST",
            admin,
            path_parameters={"key": key},
            body="\n".join(lines) + "\n",
            media_type="application/x-ndjson",
        )
        assert imported.status_code == 200, imported.text
        report = imported.json()
        assert (report["rows"], report["new"], report["rejected"]) == (3, 1, 2), report
        assert [row["line"] for row in report["rejected_rows"]] == [2, 3]
