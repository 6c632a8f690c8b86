"""Alert intake: signed alerts, a storm making one incident, rules that declare, and the
real Prometheus Alertmanager (Debian's package) posting to the intake on loopback."""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from breachflow.flows.intake.sources import add_source
from breachflow.models import commands, runtime
from breachflow.models.alert import AlertGroup
from breachflow.models.apikey import Role, create_key
from breachflow.models.base import utcnow
from breachflow.models.incident import Incident
from breachflow.models.timeline import TimelineEvent
from tests.api.test_callbacks import AppServer
from tests.conftest import SQLITE_ONLY, free_port
from tests.flows.test_incident_flow import timeline_kinds

ALERTMANAGER = shutil.which("prometheus-alertmanager")
ALERT = {
    "title": "Bulk export of the customer table",
    "labels": {"alertname": "DataExfiltration", "instance": "db-1"},
    "severity": "high",
}


@pytest.fixture
def intake(settings) -> Iterator[tuple[AppServer, str]]:
    secret = add_source("siem", "test")
    with AppServer(free_port()) as server:
        yield server, secret


def signed(secret: str, body: bytes, *, source: str = "siem", at: float | None = None):
    stamp = str(int(at if at is not None else time.time()))
    digest = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256)
    return {
        "X-Breachflow-Source": source,
        "X-Breachflow-Timestamp": stamp,
        "X-Breachflow-Signature": f"sha256={digest.hexdigest()}",
        "Content-Type": "application/json",
    }


def post(server: AppServer, secret: str, alert: dict, **options) -> httpx.Response:
    body = json.dumps(alert).encode()
    return httpx.post(
        f"{server.url}/api/v1/alerts", content=body, headers=signed(secret, body, **options)
    )


def groups(db) -> list[AlertGroup]:
    with db.unit_of_work() as session:
        found = list(session.scalars(select(AlertGroup).order_by(AlertGroup.id)))
        session.expunge_all()
    return found


def test_a_signed_alert_opens_a_suspected_incident_and_repeats_are_counted(db, intake):
    server, secret = intake
    first = post(server, secret, ALERT)
    assert first.status_code == 202, first.text
    key = first.json()["incident"]
    assert first.json()["action"] == "suspected"
    again = post(server, secret, ALERT, at=time.time() + 1)  # a new request, a new signature
    assert again.json() == {**first.json(), "action": "counted", "received": 2}

    resolved = post(server, secret, {**ALERT, "status": "resolved"}, at=time.time() + 2)
    assert resolved.json()["action"] == "resolved"
    with db.unit_of_work() as session:
        assert commands.get_incident(session, key).state == "suspected"  # not closed by it
    kinds = timeline_kinds(db, key)
    assert kinds[:2] == ["incident.suspected", "alert.received"]
    assert kinds.count("alert.resolved") == 1
    assert [(g.received, g.status) for g in groups(db)] == [(3, "resolved")]


def test_forged_stale_replayed_or_unsigned_alerts_are_refused_and_record_nothing(db, intake):
    server, secret = intake
    body = json.dumps(ALERT).encode()
    headers = signed(secret, body)
    assert (
        httpx.post(f"{server.url}/api/v1/alerts", content=body, headers=headers).status_code == 202
    )
    replay = httpx.post(f"{server.url}/api/v1/alerts", content=body, headers=headers)
    tampered = httpx.post(
        f"{server.url}/api/v1/alerts", content=body.replace(b"db-1", b"db-2"), headers=headers
    )
    stale = post(server, secret, ALERT, at=time.time() - 600)
    wrong_key = post(server, "not-the-secret", ALERT)
    unknown = post(server, secret, ALERT, source="nobody")
    unsigned = httpx.post(f"{server.url}/api/v1/alerts", json=ALERT)
    for refused in (replay, tampered, stale, wrong_key, unknown, unsigned):
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"
    assert [g.received for g in groups(db)] == [1]

    invalid = post(server, secret, {"labels": {}}, at=time.time() + 1)  # signed, no title
    assert invalid.status_code == 422 and "title" in invalid.json()["detail"]


def test_an_alert_starting_at_an_impossible_time_is_refused_at_the_door(db, settings, intake):
    """Year 1 (Alertmanager's unset time), no offset, or the future: a 422, nothing filed
    (once such a time reached `breach assess` as an OverflowError)."""
    server, secret = intake
    with db.unit_of_work() as session:
        token = create_key(session, "alertmanager", Role.ALERT_SOURCE, "test")
    impossible = ["0001-01-01T00:00:00Z", "2026-11-20T09:30:00", "2999-01-01T00:00:00+08:00"]
    for moment in impossible:
        refused = post(server, secret, {**ALERT, "starts_at": moment})
        assert refused.status_code == 422, refused.text
        assert "starts_at" in refused.json()["detail"]
        notification = {
            "version": "4",
            "status": "firing",
            "alerts": [{"status": "firing", "labels": {"alertname": "X"}, "startsAt": moment}],
        }
        refused = httpx.post(
            f"{server.url}/api/v1/alerts/alertmanager",
            json=notification,
            headers={"Authorization": f"Bearer {token}"},
        )
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
    assert groups(db) == []
    with db.unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(Incident)) == 0

    earlier = (utcnow() - timedelta(hours=3)).isoformat()
    assert post(server, secret, {**ALERT, "starts_at": earlier}).status_code == 202
    with db.unit_of_work() as session:
        opened = session.scalars(select(Incident)).one()
        assert opened.detected_at.isoformat() == earlier


def test_each_alert_of_an_alertmanager_batch_is_taken_or_refused_on_its_own(db, intake):
    """One bad alert once gave the whole batch a 500: the alerts before it were counted
    again on every retry and those after it never taken in. Now each one is taken or
    refused, the answer says which, and the batch sent again counts nothing twice."""
    server, _ = intake
    with db.unit_of_work() as session:
        token = create_key(session, "alertmanager", Role.ALERT_SOURCE, "test")
    started = (utcnow() - timedelta(minutes=5)).isoformat()

    def alert(name: str, **fields: object) -> dict[str, object]:
        return {"status": "firing", "labels": {"alertname": name}, "startsAt": started} | fields

    batch = [
        alert("Before", fingerprint="f-before"),
        alert("LongStory", fingerprint="f-long", annotations={"description": "x" * 6000}),
        alert("Empty", fingerprint=""),
        alert("Huge", fingerprint="f" * 200),
        alert("NoOffset", fingerprint="f-naive", startsAt="2026-11-20T09:30:00"),
        alert("After", fingerprint="f-after"),
    ]

    def send(alerts: list[dict[str, object]]) -> httpx.Response:
        return httpx.post(
            f"{server.url}/api/v1/alerts/alertmanager",
            json={"version": "4", "status": "firing", "alerts": alerts},
            headers={"Authorization": f"Bearer {token}"},
        )

    first = send(batch)
    assert first.status_code == 202, first.text
    outcomes = first.json()["alerts"]
    assert [o["index"] for o in outcomes] == list(range(6))
    assert [o["action"] for o in outcomes] == [
        "suspected",
        "suspected",
        None,
        None,
        None,
        "suspected",
    ]
    assert "fingerprint" in outcomes[2]["refused"] and "fingerprint" in outcomes[3]["refused"]
    assert "startsAt" in outcomes[4]["refused"] and "f" * 50 not in first.text
    received = {g.fingerprint: g.received for g in groups(db)}
    assert received == {"f-before": 1, "f-long": 1, "f-after": 1}
    with db.unit_of_work() as session:
        long_story = session.scalars(select(Incident).where(Incident.title == "LongStory")).one()
        assert len(long_story.description) == 5000 and long_story.description.endswith("(cut)")

    again = send(batch)  # Alertmanager retries a batch, or reminds of what still fires
    assert [o["action"] for o in again.json()["alerts"]] == [
        "duplicate", "duplicate", None, None, None, "duplicate"
    ]  # fmt: skip
    assert {g.fingerprint: g.received for g in groups(db)} == received

    later = (utcnow() - timedelta(minutes=1)).isoformat()  # it fired again: a new occurrence
    counted = send([alert("Before", fingerprint="f-before", startsAt=later)]).json()["alerts"]
    assert (counted[0]["action"], counted[0]["received"]) == ("counted", 2)
    with db.unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(Incident)) == 3

    nothing = send([alert("Empty", fingerprint="")])
    assert nothing.status_code == 422 and "alert 0: fingerprint" in nothing.json()["detail"]


def test_a_source_secret_is_rotated_with_a_grace_period_and_revoked(db, intake, breach):
    """Rotation over the API: the old secret signs for the grace period, then only the new
    one; revocation over the CLI ends both. Each change is on the source's incidents."""
    server, old = intake
    opened = post(server, old, ALERT).json()["incident"]
    with db.unit_of_work() as session:
        admin = create_key(session, "root", Role.ADMIN, "test")
        responder = create_key(session, "resp", Role.RESPONDER, "test")
    api = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {admin}"})
    url = "/api/v1/alert-sources/siem/rotate"
    refused = httpx.post(
        f"{server.url}{url}", json={}, headers={"Authorization": f"Bearer {responder}"}
    )
    assert refused.status_code == 403
    new = api.post(url, json={"grace_hours": 1}).json()["secret"]
    assert new != old
    for secret in (old, new):  # both sign during the grace period
        assert post(server, secret, {**ALERT, "title": f"t{secret[:4]}"}).status_code == 202
    newest = api.post(url, json={"grace_hours": 0}).json()["secret"]
    assert post(server, new, {**ALERT, "title": "late"}).status_code == 401  # no grace left
    assert post(server, newest, {**ALERT, "title": "newest"}).status_code == 202

    listed = breach("alerts", "list")
    assert "siem" in listed.stdout and "active" in listed.stdout
    assert all(secret not in listed.stdout for secret in (old, new, newest))
    assert api.get("/api/v1/alert-sources").json()["items"][0]["rotated_at"]
    assert breach("alerts", "revoke", "siem").returncode == 0
    assert post(server, newest, {**ALERT, "title": "after"}).status_code == 401
    again = api.post("/api/v1/alert-sources/siem/revoke")
    assert again.status_code == 422 and "revoked" in again.json()["detail"]
    assert api.post("/api/v1/alert-sources/nobody/revoke").status_code == 404

    with db.unit_of_work() as session:
        incident = commands.get_incident(session, opened)
        changes = [
            e.payload["change"]
            for e in session.scalars(
                select(TimelineEvent).where(TimelineEvent.incident_id == incident.id)
            )
            if e.kind == "alert_source.changed"
        ]
    assert changes == ["rotated", "rotated", "revoked"]


def test_a_source_opens_at_most_its_hourly_incidents_and_groups_the_rest(db, intake, monkeypatch):
    """A storm of distinct fingerprints once opened an incident each: 1,000 in 5 s."""
    monkeypatch.setenv("BREACH_ALERT_INCIDENTS_PER_HOUR", "3")
    runtime.reset()
    server, secret = intake
    actions = [post(server, secret, {**ALERT, "fingerprint": f"fp-{n}"}).json() for n in range(10)]
    assert [a["action"] for a in actions] == ["suspected"] * 3 + ["grouped"] * 7
    storm = {a["incident"] for a in actions[3:]}
    assert len(storm) == 1
    again = {**ALERT, "fingerprint": "fp-9", "description": "again"}  # another signature
    assert post(server, secret, again).json()["action"] == "counted"
    with db.unit_of_work() as session:
        incidents = session.scalars(select(Incident).order_by(Incident.id)).all()
        assert len(incidents) == 4 and incidents[-1].key in storm
        assert "Alert storm from hmac:siem" in incidents[-1].title
    kinds = timeline_kinds(db, storm.pop())
    assert kinds.count("alert.storm") == 1 and kinds.count("alert.received") == 7
    refused = post(server, secret, {**ALERT, "fingerprint": "(storm)"})
    assert refused.status_code == 422


def test_a_storm_of_identical_alerts_makes_one_incident(db, intake):
    server, secret = intake
    per_thread, threads = 40, 6

    def storm(offset: int) -> None:
        with httpx.Client() as client:
            for n in range(per_thread):
                body = json.dumps({**ALERT, "description": f"sample {offset}-{n}"}).encode()
                headers = signed(secret, body)
                answer = client.post(f"{server.url}/api/v1/alerts", content=body, headers=headers)
                assert answer.status_code == 202, answer.text

    workers = [threading.Thread(target=storm, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    (group,) = groups(db)
    assert group.received == per_thread * threads
    with db.unit_of_work() as session:
        count = session.scalar(select(func.count()).select_from(Incident))
    assert count == 1


@pytest.mark.usefixtures("prefect_api")
def test_an_alert_rule_declares_the_incident_and_starts_the_response(
    db, settings, tmp_path, monkeypatch
):
    rules = tmp_path / "alert-rules.yaml"
    rules.write_text(
        "- match: {alertname: DataExfiltration}\n"
        "  action: declare\n"
        "  severity: critical\n"
        "  data_categories: [email, name]\n"
    )
    monkeypatch.setenv("BREACH_ALERT_RULES_FILE", str(rules))
    runtime.reset()
    secret = add_source("siem", "test")
    with AppServer(free_port()) as server:
        answer = post(server, secret, ALERT)
        assert answer.json()["action"] == "declared"
        key = answer.json()["incident"]
        deadline = time.monotonic() + 60
        while "run.failed" not in timeline_kinds(db, key):  # no notice texts or people yet
            assert time.monotonic() < deadline, timeline_kinds(db, key)
            time.sleep(0.5)
    with db.unit_of_work() as session:
        incident = commands.get_incident(session, key)
        assert (incident.state, incident.severity) == ("declared", "critical")
        assert incident.data_categories == ["email", "name"]


def test_prometheus_alertmanager_posts_its_alerts_to_the_intake(db, settings, tmp_path):
    assert ALERTMANAGER, "apt-get install prometheus-alertmanager (see README, Tests)"
    with db.unit_of_work() as session:
        token = create_key(session, "alertmanager", Role.ALERT_SOURCE, "test")
    with AppServer(free_port()) as server, _alertmanager(tmp_path, server.url, token) as am:
        alert = {
            "labels": {"alertname": "DataExfiltration", "severity": "critical", "db": "crm"},
            "annotations": {"summary": "Bulk export of the CRM database"},
        }
        for _ in range(3):  # Alertmanager groups them: still one alert, one incident
            assert httpx.post(f"{am}/api/v2/alerts", json=[alert]).status_code == 200
        firing = _wait_for(db, lambda g: g.status == "firing")
        assert firing.source == "alertmanager:alertmanager"
        assert firing.title == "Bulk export of the CRM database"

        ended = (utcnow() - timedelta(seconds=1)).isoformat()
        assert httpx.post(f"{am}/api/v2/alerts", json=[{**alert, "endsAt": ended}]).is_success
        _wait_for(db, lambda g: g.status == "resolved")
    with db.unit_of_work() as session:
        incidents = session.scalars(select(Incident)).all()
        assert [(i.state, i.severity) for i in incidents] == [("suspected", "critical")]


def _wait_for(db, condition, seconds: float = 60) -> AlertGroup:
    deadline = time.monotonic() + seconds
    while True:
        found = [g for g in groups(db) if condition(g)]
        if found:
            return found[0]
        assert time.monotonic() < deadline, "Alertmanager did not deliver in time"
        time.sleep(0.2)


class _alertmanager:
    """Debian's Alertmanager, configured to post to our intake with the key as bearer."""

    def __init__(self, folder: Path, intake_url: str, token: str) -> None:
        self.port = free_port()
        self.folder = folder
        config = folder / "alertmanager.yml"
        config.write_text(
            "route:\n"
            "  receiver: breachflow\n"
            "  group_by: [alertname]\n"
            "  group_wait: 0s\n"
            "  group_interval: 1s\n"
            "  repeat_interval: 1h\n"
            "receivers:\n"
            "  - name: breachflow\n"
            "    webhook_configs:\n"
            f"      - url: {intake_url}/api/v1/alerts/alertmanager\n"
            "        send_resolved: true\n"
            "        http_config:\n"
            "          authorization:\n"
            f"            credentials: {token}\n"
        )
        self.command = [
            str(ALERTMANAGER),
            f"--config.file={config}",
            f"--storage.path={folder / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--cluster.listen-address=",
        ]

    def __enter__(self) -> str:
        log = (self.folder / "alertmanager.log").open("w")
        self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/-/ready").status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
            assert self.process.poll() is None, (self.folder / "alertmanager.log").read_text()
            assert time.monotonic() < deadline, "Alertmanager did not start in 30 s"
            time.sleep(0.2)

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@SQLITE_ONLY
def test_triage_lists_suspected_incidents_and_a_person_confirms_or_dismisses_each(
    db, settings, breach
):
    from breachflow.flows.intake.alerts import Alert, receive

    kept = receive("hmac:siem", Alert(title="Exfiltration from db-1", labels={"db": "1"}))
    noise = receive("hmac:siem", Alert(title="Port scan", labels={"db": "2"}))
    receive("hmac:siem", Alert(title="Port scan", labels={"db": "2"}))

    listed = breach("triage")
    assert listed.returncode == 0, listed.stderr
    assert kept.incident in listed.stdout and "Port scan" in listed.stdout
    refused = breach("run", kept.incident)
    assert refused.returncode == 1 and f"breach confirm {kept.incident}" in refused.stderr

    confirmed = breach("confirm", kept.incident, "--reason", "Export verified in the DB logs")
    dismissed = breach("dismiss", noise.incident, "--reason", "Scheduled scan by the red team")
    assert confirmed.returncode == dismissed.returncode == 0
    with db.unit_of_work() as session:
        assert commands.get_incident(session, kept.incident).state == "declared"
        assert commands.get_incident(session, noise.incident).state == "dismissed"
    assert "incident.triaged" in timeline_kinds(db, kept.incident)
    assert breach("triage").stdout.strip() == "Nothing to triage."
    again = breach("dismiss", kept.incident, "--reason", "x")
    assert again.returncode == 1 and "only a suspected incident" in again.stderr


def test_different_alerts_at_the_same_moment_each_open_their_own_numbered_incident(db, intake):
    """Declarations racing for the next incident number each get one (found by the
    intake benchmark on PostgreSQL: two alerts took the same number, one got a 500)."""
    server, secret = intake
    barrier = threading.Barrier(12)
    answers: list[httpx.Response] = []

    def one(n: int) -> None:
        alert = {**ALERT, "labels": {"instance": f"db-{n}"}}
        body = json.dumps(alert).encode()
        headers = signed(secret, body)
        barrier.wait()
        answers.append(httpx.post(f"{server.url}/api/v1/alerts", content=body, headers=headers))

    workers = [threading.Thread(target=one, args=(n,)) for n in range(12)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert sorted(a.status_code for a in answers) == [202] * 12
    keys = {a.json()["incident"] for a in answers}
    assert len(keys) == 12
    with db.unit_of_work() as session:
        assert sorted(session.scalars(select(Incident.key))) == sorted(keys)
