"""Local servers speaking the wire formats of the services Breachflow tells staff through:
PagerDuty's Events API v2, Opsgenie's Alert API, Slack's and Teams' incoming webhooks, and
a receiver of our signed CloudEvents. Each checks the request as the
real service does (shape, key, limits), answers as it does (success, invalid, throttled,
down) and records what it accepted."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.conftest import free_port

SEVERITIES = {"critical", "error", "warning", "info"}
ACTIONS = {"trigger", "acknowledge", "resolve"}


@dataclass
class StaffServers:
    url: str
    routing_key: str = "R0UT1NGKEY0000000000000000000000"  # 32 characters, as PagerDuty's
    slack_path: str = "/services/T000/B000/XXXXXXXXXXXXXXXX"
    #: Status codes to answer the next requests with, before answering normally.
    pagerduty_script: list[int] = field(default_factory=list)
    slack_script: list[int] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)  # accepted by "PagerDuty"
    messages: list[str] = field(default_factory=list)  # accepted by "Slack"
    refused: list[str] = field(default_factory=list)
    genie_key: str = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
    genie_alerts: dict[str, str] = field(default_factory=dict)  # alias → open | closed
    cards: list[str] = field(default_factory=list)  # the text of each Teams card
    webhook_secret: str = "whsec-test-0000"
    cloud_events: list[Any] = field(default_factory=list)  # verified, parsed

    @property
    def opsgenie_url(self) -> str:
        return self.url

    @property
    def teams_url(self) -> str:
        return f"{self.url}/teams/webhook"

    @property
    def webhook_url(self) -> str:
        return f"{self.url}/hooks/breachflow"

    @property
    def pagerduty_url(self) -> str:
        return f"{self.url}/v2/enqueue"

    @property
    def slack_url(self) -> str:
        return f"{self.url}{self.slack_path}"

    def open_alerts(self) -> set[str]:
        """PagerDuty's view: dedup keys triggered and not resolved since."""
        state: dict[str, str] = {}
        for event in self.events:
            state[event["dedup_key"]] = event["event_action"]
        return {key for key, action in state.items() if action == "trigger"}


def _app(servers: StaffServers) -> Starlette:
    async def enqueue(request: Request) -> Response:
        if servers.pagerduty_script:
            code = servers.pagerduty_script.pop(0)
            if code == 429:
                return JSONResponse(
                    {
                        "status": "throttle event",
                        "message": "Requests for this service are arriving too quickly.",
                    },
                    429,
                )
            return JSONResponse({"status": "error", "message": "Internal error"}, code)
        try:
            body = json.loads(await request.body())
        except ValueError:
            return JSONResponse(
                {
                    "status": "invalid event",
                    "message": "Event object is invalid",
                    "errors": ["body is not JSON"],
                },
                400,
            )
        errors = _pagerduty_errors(body, servers.routing_key)
        if errors:
            servers.refused.append("; ".join(errors))
            return JSONResponse(
                {"status": "invalid event", "message": "Event object is invalid", "errors": errors},
                400,
            )
        servers.events.append(body)
        return JSONResponse(
            {"status": "success", "message": "Event processed", "dedup_key": body["dedup_key"]}, 202
        )

    async def webhook(request: Request) -> Response:
        if servers.slack_script:
            code = servers.slack_script.pop(0)
            headers = {"Retry-After": "1"} if code == 429 else {}
            return PlainTextResponse(
                "rate_limited" if code == 429 else "service_unavailable", code, headers=headers
            )
        if request.url.path != servers.slack_path:
            return PlainTextResponse("no_service", 404)
        try:
            body = json.loads(await request.body())
        except ValueError:
            return PlainTextResponse("invalid_payload", 400)
        if not isinstance(body, dict) or not isinstance(body.get("text"), str) or not body["text"]:
            return PlainTextResponse("no_text", 400)
        servers.messages.append(body["text"])
        return PlainTextResponse("ok")

    async def genie_create(request: Request) -> Response:
        if request.headers.get("authorization") != f"GenieKey {servers.genie_key}":
            return JSONResponse({"message": "Could not authenticate", "took": 0.0}, 401)
        body = json.loads(await request.body())
        message, alias = body.get("message", ""), body.get("alias", "")
        if not message or len(message) > 130 or len(alias) > 512:
            return JSONResponse({"message": "Request body is not processable", "took": 0.0}, 422)
        if body.get("priority") not in {"P1", "P2", "P3", "P4", "P5"}:
            return JSONResponse({"message": "Priority should be one of P1..P5", "took": 0.0}, 422)
        servers.genie_alerts[alias] = "open"
        return JSONResponse(
            {"result": "Request will be processed", "took": 0.01, "requestId": alias}, 202
        )

    async def genie_close(request: Request) -> Response:
        if request.headers.get("authorization") != f"GenieKey {servers.genie_key}":
            return JSONResponse({"message": "Could not authenticate", "took": 0.0}, 401)
        if request.query_params.get("identifierType") != "alias":
            return JSONResponse({"message": "identifierType must be given", "took": 0.0}, 422)
        servers.genie_alerts[request.path_params["alias"]] = "closed"
        return JSONResponse(
            {"result": "Request will be processed", "took": 0.01, "requestId": "x"}, 202
        )

    async def teams_hook(request: Request) -> Response:
        body = json.loads(await request.body())
        try:
            (attachment,) = body["attachments"]
            assert body["type"] == "message"
            assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
            card = attachment["content"]
            assert card["type"] == "AdaptiveCard"
            text = card["body"][0]["text"]
        except (KeyError, ValueError, AssertionError, IndexError, TypeError):
            return PlainTextResponse("Bad payload: not an Adaptive Card message", 400)
        servers.cards.append(text)
        return Response(status_code=202)

    async def receive(request: Request) -> Response:
        from cloudevents.core.bindings.http import HTTPMessage, from_http_event

        from breachflow.notifiers.oncall.webhook import signature

        body = await request.body()
        stamp = request.headers.get("x-breachflow-timestamp", "")
        expected = signature(servers.webhook_secret, stamp, body)
        if request.headers.get("x-breachflow-signature") != expected:
            return PlainTextResponse("bad signature", 401)
        headers = {k.lower(): v for k, v in request.headers.items()}
        servers.cloud_events.append(from_http_event(HTTPMessage(headers, body)))
        return Response(status_code=204)

    return Starlette(
        routes=[
            Route("/v2/enqueue", enqueue, methods=["POST"]),
            Route("/services/{path:path}", webhook, methods=["POST"]),
            Route("/v2/alerts", genie_create, methods=["POST"]),
            Route("/v2/alerts/{alias:path}/close", genie_close, methods=["POST"]),
            Route("/teams/webhook", teams_hook, methods=["POST"]),
            Route("/hooks/breachflow", receive, methods=["POST"]),
        ]
    )


def _pagerduty_errors(body: Any, routing_key: str) -> list[str]:
    """What PagerDuty's Events API v2 checks of an event."""
    if not isinstance(body, dict):
        return ["Event object must be a JSON object"]
    errors = []
    if body.get("routing_key") != routing_key:
        errors.append("Invalid routing key")
    if body.get("event_action") not in ACTIONS:
        errors.append("'event_action' is invalid (must be one of: trigger, acknowledge, resolve)")
    key = body.get("dedup_key")
    if body.get("event_action") != "trigger" and not key:
        errors.append("'dedup_key' is required for acknowledge and resolve")
    if key is not None and (not isinstance(key, str) or len(key) > 255):
        errors.append("'dedup_key' must be a string of at most 255 characters")
    if body.get("event_action") == "trigger":
        payload = body.get("payload") or {}
        for name in ("summary", "source", "severity"):
            if not payload.get(name):
                errors.append(f"'payload.{name}' is missing or blank")
        if payload.get("severity") and payload["severity"] not in SEVERITIES:
            errors.append("'payload.severity' is invalid")
        if len(str(payload.get("summary", ""))) > 1024:
            errors.append("'payload.summary' is longer than 1024 characters")
    return errors


@contextmanager
def staff_servers() -> Iterator[StaffServers]:
    port = free_port()
    servers = StaffServers(f"http://127.0.0.1:{port}")
    config = uvicorn.Config(_app(servers), host="127.0.0.1", port=port, log_level="critical")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        thread.join(0.05)
    try:
        yield servers
    finally:
        server.should_exit = True
        thread.join(10)
