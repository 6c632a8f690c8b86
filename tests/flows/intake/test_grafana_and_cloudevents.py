"""More alert sources (issue 18, item 6): Grafana alerting's webhook, in the shape Grafana
documents for its webhook contact point, and CloudEvents 1.0 in both HTTP modes, made by
the CloudEvents SDK as a sender would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from cloudevents.core.bindings.http import to_binary_event, to_structured_event
from cloudevents.core.v1.event import CloudEvent
from sqlalchemy import select

from breachflow.models.alert import AlertGroup
from breachflow.models.apikey import Role, create_key
from breachflow.models.base import utcnow
from breachflow.models.incident import Incident
from tests.api.test_callbacks import AppServer
from tests.conftest import SQLITE_ONLY, free_port


def _grafana(started: str, **first: object) -> dict[str, object]:
    """Grafana's webhook body (payload version 1) with two alerts."""
    alert = {
        "status": "firing",
        "labels": {"alertname": "High CRM export volume", "team": "blue", "severity": "critical"},
        "annotations": {
            "description": "10,000 customer rows exported in 5 minutes",
            "runbook_url": "https://runbooks.example/crm",
            "summary": "CRM bulk export",
        },
        "startsAt": started,
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "https://grafana.example/alerting/1afz29v7z/edit",
        "fingerprint": "c6eadffa33fcdf37",
        "silenceURL": "https://grafana.example/alerting/silence/new",
        "dashboardURL": "",
        "panelURL": "",
        "values": {"B": 10000, "C": 1},
        "valueString": "[ var='B' labels={} value=10000 ]",
    }
    other = alert | {"fingerprint": "bc97ff14869b13e3", "labels": {"alertname": "Disk"}}
    return {
        "receiver": "breachflow",
        "status": "firing",
        "orgId": 1,
        "alerts": [alert | first, other],
        "groupLabels": {"alertname": "High CRM export volume"},
        "commonLabels": {"team": "blue"},
        "commonAnnotations": {},
        "externalURL": "https://grafana.example/",
        "version": "1",
        "groupKey": '{}:{alertname="High CRM export volume"}',
        "truncatedAlerts": 0,
        "title": "[FIRING:2] High CRM export volume",
        "state": "alerting",
        "message": "**Firing** ...",
    }


@SQLITE_ONLY
def test_grafana_s_webhook_opens_suspected_incidents_and_counts_each_alert_once(db, settings):
    with db.unit_of_work() as session:
        token = create_key(session, "grafana", Role.ALERT_SOURCE, "test")
    started = (utcnow() - timedelta(minutes=3)).isoformat()
    auth = {"Authorization": f"Bearer {token}"}
    with AppServer(free_port()) as server:
        url = f"{server.url}/api/v1/alerts/grafana"
        first = httpx.post(url, json=_grafana(started), headers=auth)
        again = httpx.post(url, json=_grafana(started), headers=auth)  # Grafana re-sends
        old = httpx.post(url, json=_grafana(started) | {"version": "0"}, headers=auth)
        nobody = httpx.post(url, json=_grafana(started))
        bad = httpx.post(url, json=_grafana(started, fingerprint="", startsAt="x"), headers=auth)
    assert first.status_code == 202, first.text
    assert [a["action"] for a in first.json()["alerts"]] == ["suspected", "suspected"]
    assert [a["action"] for a in again.json()["alerts"]] == ["duplicate", "duplicate"]
    assert old.status_code == 422 and "only 1 is read" in old.json()["detail"]
    assert nobody.status_code == 401
    taken = bad.json()["alerts"]
    assert taken[0]["refused"] and taken[1]["action"] == "duplicate"  # one refused, alone
    with db.unit_of_work() as session:
        groups = session.scalars(select(AlertGroup).order_by(AlertGroup.id)).all()
        assert [(g.source, g.fingerprint, g.received) for g in groups] == [
            ("grafana:grafana", "c6eadffa33fcdf37", 1),
            ("grafana:grafana", "bc97ff14869b13e3", 1),
        ]
        incident = session.get(Incident, groups[0].incident_id)
        assert incident is not None
        assert (incident.title, str(incident.severity)) == ("CRM bulk export", "critical")


@SQLITE_ONLY
def test_a_cloudevent_in_either_mode_is_an_alert_taken_once(db, settings):
    with db.unit_of_work() as session:
        token = create_key(session, "eventbus", Role.ALERT_SOURCE, "test")
    happened = datetime.now(UTC) - timedelta(minutes=10)
    auth = {"Authorization": f"Bearer {token}"}

    def event(event_id: str, **data: object) -> CloudEvent:
        attributes = {
            "type": "com.example.siem.alert",
            "source": "//siem.example/rules/42",
            "id": event_id,
            "specversion": "1.0",
            "time": happened,
            "datacontenttype": "application/json",
        }
        body = {"title": "Credential stuffing on the customer portal", "severity": "high"}
        return CloudEvent(attributes, body | data)

    structured = to_structured_event(event("e-1", fingerprint="portal-stuffing"))
    binary = to_binary_event(event("e-2", fingerprint="portal-stuffing", status="resolved"))
    with AppServer(free_port()) as server:
        url = f"{server.url}/api/v1/alerts/cloudevents"

        def post(message: object, **extra: str) -> httpx.Response:
            headers = dict(message.headers) | auth | extra  # type: ignore[attr-defined]
            return httpx.post(url, content=message.body, headers=headers)  # type: ignore[attr-defined]

        opened = post(structured)
        replayed = post(structured)
        resolved = post(binary)
        not_an_event = httpx.post(url, json={"title": "x"}, headers=auth)
        not_an_alert = post(to_structured_event(event("e-3", title="")))
        text_data = httpx.post(
            url,
            content=b"hello",
            headers=auth
            | {"ce-id": "e-4", "ce-source": "s", "ce-type": "t", "ce-specversion": "1.0"}
            | {"content-type": "text/plain"},
        )
    assert opened.status_code == 202, opened.text
    assert opened.json()["action"] == "suspected"
    assert replayed.json()["action"] == "duplicate"
    assert resolved.json()["action"] == "resolved"
    assert not_an_event.status_code == 422 and "not a CloudEvent" in not_an_event.json()["detail"]
    assert not_an_alert.status_code == 422 and "title" in not_an_alert.json()["detail"]
    assert text_data.status_code == 422 and "JSON object" in text_data.json()["detail"]
    with db.unit_of_work() as session:
        (group,) = session.scalars(select(AlertGroup)).all()
        assert (group.source, group.fingerprint, group.status) == (
            "cloudevents:eventbus",
            "portal-stuffing",
            "resolved",
        )
        assert group.first_seen <= utcnow()
