"""The HTTP API under uvicorn: keys and roles on every route, problem details, limits."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
import yaml

from breachflow.models import runtime
from breachflow.models.apikey import Role, create_key, revoke_key
from breachflow.models.base import utcnow
from tests.api.test_callbacks import AppServer
from tests.conftest import SQLITE_ONLY, free_port
from tests.testkit.factories import EXAMPLE_NOTICE

NOW = utcnow().replace(microsecond=0)
INCIDENT = {
    "title": "Support credential misuse",
    "description": "A stolen support credential was used to export customer records.",
    "severity": "high",
    "detected_at": (NOW - timedelta(days=2)).isoformat(),
    "aware_at": (NOW - timedelta(days=1)).isoformat(),
    "data_categories": ["email", "name"],
}
PEOPLE = (
    "subject_id,name,email,locale,country\n"
    "S1,Ada,ada@example.com,en,GB\n"
    "S2,Bo,bo@example.cn,zh-CN,CN\n"
    "S3,Cy,not-an-address,en,GB\n"
    "S4,Di\n"  # a malformed row: rejected with its line, the rest goes on
)


@pytest.fixture
def api(settings) -> Iterator[tuple[AppServer, dict[str, str]]]:
    """The app on a free port, and one live key per role (plus a revoked admin key)."""
    tokens: dict[str, str] = {}
    with runtime.database().unit_of_work() as session:
        for role in Role:
            tokens[role] = create_key(session, f"{role}-key", role, "test")
        tokens["revoked"] = create_key(session, "old-admin", Role.ADMIN, "test")
        revoke_key(session, "old-admin", "test")
    with AppServer(free_port()) as server:
        yield server, tokens


def _client(server: AppServer, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=server.url, headers=headers, timeout=30)


def _declare(server: AppServer, token: str) -> str:
    created = _client(server, token).post("/api/v1/incidents", json=INCIDENT)
    assert created.status_code == 201, created.text
    return created.json()["key"]


READ, WRITE, ALERTS, STEPS, APPROVE = "read", "write", "alerts", "steps", "approve"
CLOSE, ADMIN, TRIAGE = "close", "admin", "triage"
#: Every route of /api/v1, with what it needs; ``{key}`` is an incident of the test.
ROUTES = [
    ("POST", "/api/v1/incidents", WRITE, {"json": INCIDENT}),
    ("GET", "/api/v1/incidents", READ, {}),
    ("GET", "/api/v1/incidents/{key}", READ, {}),
    ("PATCH", "/api/v1/incidents/{key}", WRITE, {"json": {"risk": "high"}}),
    ("PUT", "/api/v1/incidents/{key}/notice", WRITE, {"json": {}}),
    ("POST", "/api/v1/incidents/{key}/subjects", WRITE, {"content": b"", "headers": {}}),
    ("POST", "/api/v1/incidents/{key}/runs", WRITE, {}),
    ("GET", "/api/v1/incidents/{key}/obligations", READ, {}),
    ("GET", "/api/v1/incidents/{key}/notifications", READ, {}),
    ("GET", "/api/v1/incidents/{key}/forecast", READ, {}),
    ("GET", "/api/v1/incidents/{key}/announcement", READ, {}),
    ("GET", "/api/v1/incidents/{key}/reports", READ, {}),
    ("GET", "/api/v1/incidents/{key}/timeline", READ, {}),
    ("GET", "/api/v1/incidents/{key}/runbook", READ, {}),
    ("POST", "/api/v1/incidents/{key}/runbook/{step}", STEPS, {"json": {}}),
    (
        "POST",
        "/api/v1/incidents/{key}/runbook/{step}/evidence",
        STEPS,
        {"params": {"filename": "log.txt"}, "content": b"x"},
    ),
    ("POST", "/api/v1/incidents/{key}/approvals/{gate}", APPROVE, {"json": {}}),
    ("POST", "/api/v1/incidents/{key}/close", CLOSE, {"json": {"reason": "x" * 20}}),
    (
        "POST",
        "/api/v1/incidents/{key}/triage",
        TRIAGE,
        {"json": {"decision": "dismiss", "reason": "a test"}},
    ),
    (
        "POST",
        "/api/v1/alerts/alertmanager",
        ALERTS,
        {"json": {"version": "4", "status": "firing", "alerts": []}},
    ),
    (
        "POST",
        "/api/v1/alerts/grafana",
        ALERTS,
        {"json": {"version": "1", "status": "firing", "alerts": []}},
    ),
    ("POST", "/api/v1/alerts/cloudevents", ALERTS, {"json": {}}),
    ("GET", "/api/v1/alert-sources", ADMIN, {}),
    ("POST", "/api/v1/alert-sources", ADMIN, {"json": {"name": ""}}),
    ("POST", "/api/v1/alert-sources/{name}/rotate", ADMIN, {"json": {}}),
    ("POST", "/api/v1/alert-sources/{name}/revoke", ADMIN, {}),
]
#: Without a key: alerts are signed with their source's secret (test_alerts.py), reports
#: from the public are limited per address (test_public_reports.py).
NO_KEY = [("POST", "/api/v1/alerts"), ("POST", "/api/v1/reports")]
ALLOWED = {
    READ: {Role.ADMIN, Role.RESPONDER, Role.ONCALL, Role.COMPLIANCE},
    WRITE: {Role.ADMIN, Role.RESPONDER},
    ALERTS: {Role.ADMIN, Role.ALERT_SOURCE},
    STEPS: {Role.ADMIN, Role.ONCALL, Role.RESPONDER},
    APPROVE: {Role.ADMIN, Role.ONCALL},  # the notice; the closure: compliance and admin
    CLOSE: {Role.ADMIN, Role.COMPLIANCE},
    TRIAGE: {Role.ADMIN, Role.ONCALL, Role.RESPONDER},
    ADMIN: {Role.ADMIN},
}


@SQLITE_ONLY
def test_every_route_admits_exactly_its_roles_and_no_key_or_a_revoked_one_is_401(api):
    server, tokens = api
    key = _declare(server, tokens[Role.ADMIN])
    documented = {
        (method.upper(), path)
        for path, item in httpx.get(f"{server.url}/api/v1/openapi.json").json()["paths"].items()
        for method in item
        if path.startswith("/api/v1/")
    }
    assert documented == {(method, path) for method, path, _, _ in ROUTES} | set(NO_KEY)

    for method, path, need, options in ROUTES:
        url = path.format(key=key, step="no-such-step", gate="notice", name="nobody")
        for role in Role:
            # Only the door is tested: a 422 (this incident has no notice, no people) is in.
            answer = _client(server, tokens[role]).request(method, url, **options)
            if role in ALLOWED[need]:
                assert answer.status_code not in (401, 403), (method, path, role, answer.text)
            else:
                assert answer.status_code == 403, (method, path, role, answer.text)
                assert answer.headers["content-type"] == "application/problem+json"
                assert role in answer.json()["detail"]
        for token in (None, tokens["revoked"], "bf_0000_guess"):
            refused = _client(server, token).request(method, url, **options)
            assert refused.status_code == 401, (method, path, token)
            assert refused.headers["www-authenticate"] == "Bearer"


def test_a_responder_declares_updates_and_every_write_names_the_key_on_the_timeline(api):
    server, tokens = api
    responder = _client(server, tokens[Role.RESPONDER])
    created = responder.post("/api/v1/incidents", json=INCIDENT)
    assert created.status_code == 201
    key = created.json()["key"]
    assert created.headers["location"] == f"/api/v1/incidents/{key}"

    changed = responder.patch(f"/api/v1/incidents/{key}", json={"risk": "high"})
    assert changed.status_code == 200 and changed.json()["changed"]["risk"]["to"] == "high"
    notice = yaml.safe_load(EXAMPLE_NOTICE.read_text(encoding="utf-8"))
    assert responder.put(f"/api/v1/incidents/{key}/notice", json=notice).json()["version"] == 1
    imported = responder.post(
        f"/api/v1/incidents/{key}/subjects",
        content=PEOPLE.encode(),
        headers={"Content-Type": "text/csv"},
    ).json()
    assert (imported["new"], imported["rejected"]) == (3, 1)
    assert imported["rejected_rows"][0]["line"] == 5

    compliance = _client(server, tokens[Role.COMPLIANCE])
    events = compliance.get(f"/api/v1/incidents/{key}/timeline").json()
    assert events["chain"]["verified"] is True
    actors = {e["kind"]: e["actor"] for e in events["items"]}
    for kind in ("incident.declared", "incident.updated", "notice.set", "subjects.imported"):
        assert actors[kind] == "api-key:responder-key", kind
    listed = compliance.get("/api/v1/incidents", params={"state": "declared", "limit": 1}).json()
    assert listed["total"] == 1 and listed["items"][0]["key"] == key
    assert compliance.get("/api/v1/incidents", params={"severity": "low"}).json()["total"] == 0


@pytest.mark.usefixtures("prefect_api")
def test_a_run_started_over_the_api_notifies_and_a_named_person_closes_it(api):
    server, tokens = api
    responder = _client(server, tokens[Role.RESPONDER])
    key = _declare(server, tokens[Role.RESPONDER])
    notice = yaml.safe_load(EXAMPLE_NOTICE.read_text(encoding="utf-8"))
    responder.put(f"/api/v1/incidents/{key}/notice", json=notice)
    responder.post(
        f"/api/v1/incidents/{key}/subjects",
        content=PEOPLE.encode(),
        headers={"Content-Type": "text/csv"},
    )
    started = responder.post(f"/api/v1/incidents/{key}/runs")
    assert started.status_code == 202
    deadline = time.monotonic() + 120
    while responder.get(f"/api/v1/incidents/{key}").json()["state"] != "reporting":
        assert time.monotonic() < deadline, "the run did not notify everyone in 2 minutes"
        time.sleep(0.5)
    shown = responder.get(f"/api/v1/incidents/{key}").json()
    assert any("uk-gdpr" in line for line in shown["open_before_closing"])
    counts = responder.get(f"/api/v1/incidents/{key}/notifications").json()
    assert (counts["reached"], counts["unreachable"]) == (2, 1)
    reports = responder.get(f"/api/v1/incidents/{key}/reports").json()
    assert {r["regime"] for r in reports} >= {"uk-gdpr", "cn-pipl"}
    reason = {"reason": "Filed by post by the DPO; references in ticket DPO-4."}
    closed = _client(server, tokens[Role.COMPLIANCE]).post(
        f"/api/v1/incidents/{key}/close", json=reason
    )
    assert closed.status_code == 200 and closed.json()["open_when_closed"], closed.text
    again = responder.post(f"/api/v1/incidents/{key}/runs")
    assert again.status_code == 422 and "closed" in again.json()["detail"]


@SQLITE_ONLY
def test_errors_are_problem_details_and_bodies_have_a_size_limit(api):
    server, tokens = api
    admin = _client(server, tokens[Role.ADMIN])
    missing = admin.get("/api/v1/incidents/INC-1999-0001")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["title"] == "Not Found" and "INC-1999-0001" in missing.json()["detail"]

    invalid = admin.post("/api/v1/incidents", json={**INCIDENT, "severity": "apocalyptic"})
    assert invalid.status_code == 422 and "severity" in invalid.json()["detail"]
    future = admin.post(
        "/api/v1/incidents",
        json={**INCIDENT, "aware_at": (NOW + timedelta(days=3)).isoformat()},
    )
    assert future.status_code == 422 and "in the future" in future.json()["detail"]
    for impossible in ("0001-01-01T00:00:00Z", "2026-11-20T09:30:00"):  # year 1, no offset
        refused = admin.post("/api/v1/incidents", json={**INCIDENT, "detected_at": impossible})
        assert refused.status_code == 422 and "detected_at" in refused.json()["detail"], impossible

    key = _declare(server, tokens[Role.ADMIN])  # two server errors schemathesis once found:
    cleared = admin.patch(f"/api/v1/incidents/{key}", json={"aware_at": None})
    assert cleared.status_code == 422 and "cannot be cleared" in cleared.json()["detail"]
    far = admin.get(f"/api/v1/incidents/{key}/timeline", params={"offset": 10**20})
    assert far.status_code == 422

    huge = {**INCIDENT, "description": "x" * (2 << 20)}
    too_large = admin.post("/api/v1/incidents", json=huge)
    assert too_large.status_code == 413
    assert too_large.headers["content-type"] == "application/problem+json"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"title": "' + b"x" * (1 << 20)
        yield b"x" * (1 << 20) + b'"}'

    streamed = admin.post(
        "/api/v1/incidents", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert streamed.status_code == 413


@SQLITE_ONLY
def test_a_gate_is_given_only_by_its_roles_and_never_by_the_notices_author(api, monkeypatch):
    """Once a responder could mark the notice approval done as a runbook step and then
    start a run that notified everyone. The gate's step is refused as a step to every
    role, its approval to roles outside the gate, and to whoever set the texts."""
    monkeypatch.setenv("BREACH_APPROVAL_GATES", '["notify", "close"]')
    runtime.reset()
    server, tokens = api
    key = _declare(server, tokens[Role.RESPONDER])
    notice = yaml.safe_load(EXAMPLE_NOTICE.read_text(encoding="utf-8"))
    oncall = _client(server, tokens[Role.ONCALL])
    assert oncall.put(f"/api/v1/incidents/{key}/notice", json=notice).status_code == 403
    admin = _client(server, tokens[Role.ADMIN])
    assert admin.put(f"/api/v1/incidents/{key}/notice", json=notice).status_code == 200
    gate_step = f"/api/v1/incidents/{key}/runbook/notification-approve-notice"
    for role in Role:
        client = _client(server, tokens[role])
        for answer in (
            client.post(gate_step, json={"note": "looks fine"}),
            client.post(f"{gate_step}/evidence", params={"filename": "ok.txt"}, content=b"x"),
        ):
            assert answer.status_code == 403, (role, answer.text)
    responder = _client(server, tokens[Role.RESPONDER])
    refused = responder.post(f"/api/v1/incidents/{key}/approvals/notice", json={})
    assert refused.status_code == 403 and "responder" in refused.json()["detail"]
    own = admin.post(f"/api/v1/incidents/{key}/approvals/notice", json={})
    assert own.status_code == 403 and "four eyes" in own.json()["detail"], own.text

    checklist = oncall.get(f"/api/v1/incidents/{key}/runbook").json()
    assert "approves it" in checklist["waiting_for"]
    kinds = [e["kind"] for e in oncall.get(f"/api/v1/incidents/{key}/timeline").json()["items"]]
    assert "approval.given" not in kinds


@SQLITE_ONLY
def test_on_call_marks_a_step_done_with_its_evidence_uploaded_and_hashed(api, settings):
    server, tokens = api
    key = _declare(server, tokens[Role.ADMIN])
    oncall = _client(server, tokens[Role.ONCALL])
    step = f"/api/v1/incidents/{key}/runbook/containment-preserve-evidence"

    without = oncall.post(step, json={"note": "imaged"})
    assert without.status_code == 422 and "needs evidence" in without.json()["detail"]
    for name in ("../../etc/passwd", ".hidden", "a/b.txt"):
        refused = oncall.post(f"{step}/evidence", params={"filename": name}, content=b"x")
        assert refused.status_code == 422, name

    custody = b"disk image sha256 1f2e... taken 09:14 by carol\n"
    done = oncall.post(
        f"{step}/evidence",
        params={"filename": "custody log.txt", "note": "disk imaged"},
        content=custody,
    )
    assert done.status_code == 200, done.text
    assert done.json()["evidence_sha256"] == hashlib.sha256(custody).hexdigest()
    kept = settings.home / "evidence" / key / "containment-preserve-evidence-custody log.txt"
    assert kept.read_bytes() == custody
    events = oncall.get(f"/api/v1/incidents/{key}/timeline").json()["items"]
    marked = [e for e in events if e["kind"] == "runbook.step_done"]
    assert marked[-1]["actor"] == "api-key:oncall-key"
    assert marked[-1]["payload"]["evidence_sha256"] == hashlib.sha256(custody).hexdigest()

    big = oncall.post(f"{step}/evidence", params={"filename": "big.bin"}, content=b"x" * (51 << 20))
    assert big.status_code == 413
