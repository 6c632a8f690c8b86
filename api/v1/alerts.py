"""``/api/v1/alerts``: monitoring systems open incidents.

- ``POST /api/v1/alerts``: one alert as JSON (``flows.intake.Alert``), from a source made
  with ``breach alerts add-source``. Signed: ``X-Breachflow-Source: <name>``,
  ``X-Breachflow-Timestamp: <unix seconds>`` and ``X-Breachflow-Signature: sha256=<hex>``,
  HMAC-SHA256 with the source's secret over ``<timestamp>.<body>``. A timestamp more than
  five minutes away, or a signature seen before, is refused.
- ``POST /api/v1/alerts/alertmanager``: Prometheus Alertmanager's webhook (payload
  version 4), with the bearer token of an ``alert-source`` API key in its ``http_config``.
- ``POST /api/v1/alerts/grafana``: Grafana alerting's webhook contact point (payload
  version 1, whose alerts have Alertmanager's fields), with the same kind of key in its
  Authorization header.
- ``POST /api/v1/alerts/cloudevents``: one CloudEvent 1.0, structured
  (``application/cloudevents+json``) or binary (``ce-*`` headers), whose data is the
  generic alert's JSON; each event (its source and id) is taken once.
"""

from __future__ import annotations

from typing import Annotated, Any

from cloudevents.core.bindings.http import HTTPMessage, from_http_event
from cloudevents.core.exceptions import BaseCloudEventException
from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from breachflow.api.auth import Caller, allow
from breachflow.flows.intake.alerts import (
    OCCURRENCE_MEMORY,
    Alert,
    ReplayedAlert,
    occurrence,
    receive,
)
from breachflow.flows.intake.sources import verify_signature
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
        raise InvalidInput(f"the alert is not valid: {_problems(exc)}") from None
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

    def alert(self) -> Alert:
        """Ours: the summary as title, the description cut to what we keep (a long
        templated annotation must not lose the alert); a bad fingerprint is refused."""
        title = self.annotations.get("summary") or self.labels.get("alertname") or "alert"
        description = self.annotations.get("description")
        if description and len(description) > DESCRIPTION_MAX:
            description = description[: DESCRIPTION_MAX - len(CUT)] + CUT
        return Alert(
            title=title[:300],
            description=description,
            status="resolved" if self.status == "resolved" else "firing",
            severity=SEVERITIES.get(self.labels.get("severity", "").lower()),
            fingerprint=self.fingerprint,
            labels=dict(list(self.labels.items())[:64]),
            starts_at=self.startsAt,
        )


DESCRIPTION_MAX = 5000
CUT = " … (cut)"


class AlertmanagerWebhook(BaseModel):
    model_config = ConfigDict(extra="ignore")

    version: str
    status: str
    #: Read one by one: one bad alert is refused on its own, never the whole batch.
    alerts: list[Any] = Field(max_length=1000)


class GrafanaWebhook(AlertmanagerWebhook):
    """Grafana alerting's webhook: Alertmanager's shape (its alerts have the same fields,
    read by :class:`AlertmanagerAlert`) with Grafana's own ``version``, ``title`` and
    ``message`` besides, which are not needed."""


class AlertOutcome(BaseModel):
    """What became of one alert of a batch: taken (``action``) or refused (``refused``)."""

    index: int
    fingerprint: str | None = None
    incident: str | None = None
    action: str | None = None  # suspected, declared, counted, resolved, duplicate
    received: int | None = None
    refused: str | None = None


@router.post("/alertmanager", status_code=202)
async def alertmanager(
    payload: AlertmanagerWebhook, who: AlertSource
) -> dict[str, list[AlertOutcome]]:
    """Each alert is taken or refused on its own, and the answer says which. An alert sent
    again (a retried batch, Alertmanager's reminders) is a ``duplicate`` and counts nothing.
    A batch of which nothing could be taken is a 422."""
    if payload.version != "4":
        raise InvalidInput(f"Alertmanager webhook version {payload.version}: only 4 is read")
    return await _batch(f"alertmanager:{who.name}", payload.alerts)


@router.post("/grafana", status_code=202)
async def grafana(payload: GrafanaWebhook, who: AlertSource) -> dict[str, list[AlertOutcome]]:
    """Grafana's alerts, each taken or refused on its own as Alertmanager's are (a
    re-sent alert is a ``duplicate``); a batch of which nothing could be taken is a 422."""
    if payload.version != "1":
        raise InvalidInput(f"Grafana webhook version {payload.version}: only 1 is read")
    return await _batch(f"grafana:{who.name}", payload.alerts)


async def _batch(source: str, alerts: list[Any]) -> dict[str, list[AlertOutcome]]:
    outcomes = [await _take(source, index, raw) for index, raw in enumerate(alerts)]
    refused = [o for o in outcomes if o.refused]
    if refused and len(refused) == len(outcomes):
        raise InvalidInput(
            "no alert could be taken: "
            + "; ".join(f"alert {o.index}: {o.refused}" for o in refused[:10])
        )
    return {"alerts": outcomes}


@router.post("/cloudevents", status_code=202)
async def cloudevents(request: Request, who: AlertSource) -> AlertOutcome:
    """One CloudEvent whose data is an alert (``title``, ``severity``, ``fingerprint``
    …, as the signed generic alert); its ``time`` is when the problem began unless the
    data says. The same event (source and id) sent again is a ``duplicate``."""
    headers = {name.lower(): value for name, value in request.headers.items()}
    try:
        event = from_http_event(HTTPMessage(headers, await request.body()))
    except (BaseCloudEventException, ValueError, TypeError, RecursionError) as exc:
        raise InvalidInput(f"not a CloudEvent 1.0: {str(exc)[:300]}") from None
    data = event.get_data()
    if not isinstance(data, dict):
        raise InvalidInput("the CloudEvent's data must be a JSON object: the alert")
    if event.get_time() is not None:
        data.setdefault("starts_at", event.get_time())
    try:
        alert = Alert.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(f"the alert is not valid: {_problems(exc)}") from None
    source = f"cloudevents:{who.name}"
    seen = occurrence(source, alert, event=f"{event.get_source()}\0{event.get_id()}")
    try:
        intake = await run_in_threadpool(receive, source, alert, seen, OCCURRENCE_MEMORY)
    except ReplayedAlert:
        return AlertOutcome(index=0, fingerprint=alert.key(), action="duplicate")
    return AlertOutcome(index=0, **vars(intake))


async def _take(source: str, index: int, raw: Any) -> AlertOutcome:
    try:
        alert = AlertmanagerAlert.model_validate(raw).alert()
    except ValidationError as exc:
        return AlertOutcome(index=index, refused=_problems(exc))
    try:
        intake = await run_in_threadpool(
            receive, source, alert, occurrence(source, alert), OCCURRENCE_MEMORY
        )
    except ReplayedAlert:
        return AlertOutcome(index=index, fingerprint=alert.key(), action="duplicate")
    return AlertOutcome(index=index, **vars(intake))


def _problems(exc: ValidationError) -> str:
    """Where and what, never the value (an alert may carry anything)."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'alert'}: {e['msg']}" for e in exc.errors())
