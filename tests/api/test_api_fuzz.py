"""Schemathesis against the served OpenAPI: generated requests, from the schema's own
examples, its boundaries, random data and sequences of calls, find no server error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from breachflow.models import runtime
from breachflow.models.apikey import Role, create_key
from tests.api.test_callbacks import AppServer
from tests.conftest import SQLITE_ONLY, free_port

SCHEMATHESIS = str(Path(sys.executable).parent / "st")


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
