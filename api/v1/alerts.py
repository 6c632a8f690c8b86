"""``/api/v1/alerts``: monitoring systems open incidents.

- ``POST /api/v1/alerts``: one alert as JSON (``flows.intake.Alert``), from a source made
  with ``breach alerts add-source``. Signed: ``X-Breachflow-Source: <name>``,
  ``X-Breachflow-Timestamp: <unix seconds>`` and ``X-Breachflow-Signature: sha256=<hex>``,
  HMAC-SHA256 with the source's secret over ``<timestamp>.<body>``. A timestamp more than
  five minutes away, or a signature seen before, is refused.
- ``POST /api/v1/alerts/alertmanager``: Prometheus Alertmanager's webhook (payload
  version 4), with the bearer token of an ``alert-source`` API key in its ``http_config``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from breachflow.api.auth import Caller, allow
from breachflow.flows.intake.alerts import Alert, ReplayedAlert, receive, verify_signature
from breachflow.models.apikey import Role
from breachflow.models.errors import InvalidInput
from breachflow.models.incident import Severity
from breachflow.models.instants import Instant

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])

SOURCES = frozenset({Role.ALERT_SOURCE, Role.ADMIN})
AlertSource = Annotated[Caller, allow(SOURCES)]
#: Alertmanager's customary ``severity`` label values, on our scale.
SEVERITIES = {
    "critical": Severity.CRITICAL,
    "page": Severity.CRITICAL,
    "high": Severity.HIGH,
    "error": Severity.HIGH,
    "warning": Severity.MEDIUM,
    "medium": Severity.MEDIUM,
    "info": Severity.LOW,
    "low": Severity.LOW,
}


class IntakeOut(BaseModel):
    fingerprint: str
    incident: str | None
    action: str
    received: int


@router.post("", status_code=202, response_model=IntakeOut)
async def generic(request: Request) -> Any:
    body = await request.body()
    headers = request.headers
    source = headers.get("x-breachflow-source", "")
    digest = await run_in_threadpool(
        verify_signature,
        source,
        headers.get("x-breachflow-timestamp", ""),
        headers.get("x-breachflow-signature", ""),
        body,
    )
    if digest is None:
        raise HTTPException(
            401,
            "the alert is not signed by a known source within the last five minutes, or its"
            " signature was used before (X-Breachflow-Source, -Timestamp, -Signature)",
        )
    try:
        alert = Alert.model_validate_json(body)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()
        )
        raise InvalidInput(f"the alert is not valid: {problems}") from None
    try:
        intake = await run_in_threadpool(receive, f"hmac:{source}", alert, digest)
    except ReplayedAlert:
        raise HTTPException(401, "this signed alert was received before (a replay)") from None
    return IntakeOut(**vars(intake))


class AlertmanagerAlert(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: str
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: Instant | None = None
    fingerprint: str | None = None


class AlertmanagerWebhook(BaseModel):
    model_config = ConfigDict(extra="ignore")

    version: str
    status: str
    alerts: list[AlertmanagerAlert] = Field(max_length=1000)


@router.post("/alertmanager", status_code=202)
async def alertmanager(
    payload: AlertmanagerWebhook, who: AlertSource
) -> dict[str, list[IntakeOut]]:
    if payload.version != "4":
        raise InvalidInput(f"Alertmanager webhook version {payload.version}: only 4 is read")
    results = []
    for item in payload.alerts:
        alert = Alert(
            title=(item.annotations.get("summary") or item.labels.get("alertname") or "alert")[
                :300
            ],
            description=item.annotations.get("description"),
            status="resolved" if item.status == "resolved" else "firing",
            severity=SEVERITIES.get(item.labels.get("severity", "").lower()),
            fingerprint=item.fingerprint,
            labels=dict(list(item.labels.items())[:64]),
            starts_at=item.startsAt,
        )
        intake = await run_in_threadpool(receive, f"alertmanager:{who.name}", alert)
        results.append(IntakeOut(**vars(intake)))
    return {"alerts": results}
