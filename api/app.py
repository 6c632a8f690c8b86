"""The ASGI app ``breach serve`` runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry

from breachflow.api import problems
from breachflow.api.access_log import RequestLog
from breachflow.api.callbacks import router as callbacks
from breachflow.api.clients import ClientAddress
from breachflow.api.health import router as health
from breachflow.api.limits import BodyLimit
from breachflow.api.metrics import DatabaseCollector, latency_histogram
from breachflow.api.metrics import router_for as metrics_router_for
from breachflow.api.notices import router as notices
from breachflow.api.pages import router as pages
from breachflow.api.pages import sso
from breachflow.api.public import router as public
from breachflow.api.v1.alerts import router as alerts
from breachflow.api.v1.incidents import router as incidents
from breachflow.api.v1.runbook import router as runbook
from breachflow.api.v1.sources import router as alert_sources
from breachflow.models.runtime import settings


@asynccontextmanager
async def bounded_threads(app: FastAPI) -> AsyncIterator[None]:
    """Database work runs in worker threads, which share one interpreter lock. With many
    of them, a thread holding a row lock waits for the interpreter while the others wait
    for the row: at 100 alerts/s on PostgreSQL, 40 threads (the default) fell behind at
    44-71/s, 8 kept up (bench/intake.py). Requests beyond the bound wait their turn."""
    anyio.to_thread.current_default_thread_limiter().total_tokens = settings().serve_threads
    yield


def create_app() -> FastAPI:
    app = FastAPI(
        title="Breachflow",
        version="1",
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/v1/openapi.json",
        lifespan=bounded_threads,
    )
    problems.install(app)
    registry = CollectorRegistry()
    registry.register(DatabaseCollector())
    # Innermost first: the request log sees the route the router matched and the client
    # ClientAddress resolved.
    app.add_middleware(RequestLog, histogram=latency_histogram(registry))
    app.add_middleware(BodyLimit)
    sso.install(app)  # the sign-in round trip's state cookie, when single sign-on is on
    app.add_middleware(ClientAddress)
    app.include_router(health)
    app.include_router(metrics_router_for(registry))
    app.include_router(incidents)
    app.include_router(alerts)
    app.include_router(alert_sources)
    app.include_router(runbook)
    app.include_router(callbacks)
    app.include_router(notices)
    app.include_router(public)
    app.include_router(pages)  # /ui: the compliance pages

    @app.get("/", include_in_schema=False)
    def front_door() -> RedirectResponse:
        """A person who types the server's address wants the pages (which ask to log in)."""
        return RedirectResponse("/ui/", status_code=307)

    # The public announcements (flows/announce/), when no other web server has them.
    site = settings().site
    site.mkdir(parents=True, exist_ok=True)
    app.mount("/site", StaticFiles(directory=site, html=True), name="site")
    return app
