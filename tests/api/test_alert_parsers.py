"""Property tests for the two alert parsers (issue 17): whatever a sender posts, the parser
gives an alert within our bounds or a validation error that names where, never the value
and never another exception (which would be a 500 and, for a batch, a lost alert)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from breachflow.api.v1.alerts import DESCRIPTION_MAX, AlertmanagerAlert, _problems
from breachflow.flows.intake.alerts import Alert, occurrence

#: Marks text the sender chose, to check a refusal never quotes it back.
MARK = "S3CRET-VALUE"

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
#: Fields the parsers read, filled with anything: the shapes a sender might get wrong.
texts = st.text(max_size=6000) | st.sampled_from(["", "x" * 129, "f" * 200, MARK])
instants = st.sampled_from(
    [
        "2026-11-20T09:30:00+00:00",
        "2026-11-20T09:30:00",  # no offset
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59+14:00",
        "2026-02-30T00:00:00Z",
        "yesterday",
    ]
) | st.text(max_size=30)
alertmanager_alerts = (
    st.fixed_dictionaries(
        {},
        optional={
            "status": st.sampled_from(["firing", "resolved", "weird"]) | json_values,
            "labels": st.dictionaries(st.text(max_size=20), texts, max_size=80) | json_values,
            "annotations": st.dictionaries(
                st.sampled_from(["summary", "description", "runbook"]), texts
            )
            | json_values,
            "startsAt": instants | json_values,
            "fingerprint": texts | json_values,
            "generatorURL": texts,
        },
    )
    | json_values
)


def _assert_within_bounds(alert: Alert) -> None:
    assert 1 <= len(alert.title) <= 300
    assert alert.description is None or len(alert.description) <= DESCRIPTION_MAX
    assert len(alert.labels) <= 64
    assert alert.fingerprint is None or 1 <= len(alert.fingerprint) <= 128
    # What intake computes of every alert must work on every alert the parser lets in.
    assert len(occurrence("alertmanager:test", alert)) == 64
    json.dumps(alert.model_dump(mode="json"), ensure_ascii=False).encode()


def _assert_refusal_names_no_value(exc: ValidationError, raw: Any) -> None:
    reason = _problems(exc)
    assert reason
    if MARK in json.dumps(raw, default=str):
        assert MARK not in reason


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(alertmanager_alerts)
@example({"status": "firing", "fingerprint": "", "labels": {"alertname": "A"}})
@example({"status": "firing", "fingerprint": "f" * 200})
@example({"status": "firing", "startsAt": "2026-11-20T09:30:00"})
@example({"status": "firing", "annotations": {"description": "x" * 6000}})
@example({"status": "firing", "labels": {"alertname": "\ud800"}})
@example({"status": "firing", "fingerprint": MARK * 20})
def test_an_alertmanager_alert_is_taken_within_bounds_or_refused_by_name(raw):
    try:
        alert = AlertmanagerAlert.model_validate(raw).alert()
    except ValidationError as exc:
        _assert_refusal_names_no_value(exc, raw)
        return
    _assert_within_bounds(alert)


generic_bodies = st.fixed_dictionaries(
    {"title": texts},
    optional={
        "description": texts,
        "status": st.sampled_from(["firing", "resolved", "weird"]),
        "severity": st.sampled_from(["low", "medium", "high", "critical", "urgent"]),
        "fingerprint": texts,
        "labels": st.dictionaries(st.text(max_size=20), texts, max_size=70),
        "starts_at": instants,
        "extra": json_values,
    },
).map(lambda body: json.dumps(body).encode())
raw_bodies = generic_bodies | st.binary(max_size=200)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw_bodies)
@example(b'{"title": "\\ud800"}')
@example(b'{"title": "A", "labels": {"\\udfff": "x"}}')
@example(b'{"title": "A", "starts_at": "0001-01-01T00:00:00Z"}')
@example(b"[" * 10_000 + b"]" * 10_000)
@example(b'{"title": "' + MARK.encode() * 30 + b'"}')
def test_a_signed_alert_body_is_taken_within_bounds_or_refused_by_name(body):
    try:
        alert = Alert.model_validate_json(body)
    except ValidationError as exc:
        _assert_refusal_names_no_value(exc, body.decode(errors="replace"))
        return
    _assert_within_bounds(alert)
