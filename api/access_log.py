"""The access log (and each request's latency), and the format of every log line ``breach
serve`` writes.

One line per request: method, route template, status, duration and the client's address
(as :mod:`api.clients` resolved it: this middleware sits inside that one). Never the query
string nor the raw path: a search on the timeline page may carry an address, and a path
carries identifiers. With
``BREACH_LOG_FORMAT=json`` each line is one JSON object (python-json-logger), ready for a
log pipeline; the default is plain text.
"""

from __future__ import annotations

import logging
import sys
import time

from prometheus_client import Histogram
from pythonjsonlogger.json import JsonFormatter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from breachflow.api.metrics import route_of

log = logging.getLogger("breachflow.access")
TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure(format: str, level: int = logging.INFO) -> None:
    """Send Breachflow's logs (and uvicorn's errors) to stderr as text or JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    if format == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(logging.Formatter(TEXT))
    for name in ("breachflow", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(level)
        logger.propagate = False


class RequestLog:
    """ASGI middleware: for each HTTP request, one access-log line and one observation of
    its duration in the latency histogram (:mod:`api.metrics`)."""

    def __init__(self, app: ASGIApp, histogram: Histogram) -> None:
        self.app, self.histogram = app, histogram

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), [500]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route, seconds = route_of(scope), time.perf_counter() - started
            self.histogram.labels(scope["method"], route, str(status[0])).observe(seconds)
            took = round(seconds * 1000, 1)
            log.info(
                "%s %s %s %.1f ms",
                scope["method"],
                route,
                status[0],
                took,
                extra={
                    "method": scope["method"],
                    "route": route,
                    "status": status[0],
                    "duration_ms": took,
                    "client": (scope.get("client") or ("-",))[0],
                },
            )
