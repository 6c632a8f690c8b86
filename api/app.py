"""The ASGI app ``breach serve`` runs."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from api import problems
from api.callbacks import router as callbacks
from api.limits import BodyLimit
from api.notices import router as notices
from api.public import router as public
from api.v1.alerts import router as alerts
from api.v1.incidents import router as incidents
from api.v1.runbook import router as runbook
from flows.runtime import settings


def create_app() -> FastAPI:
    app = FastAPI(
        title="Breachflow",
        version="1",
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/v1/openapi.json",
    )
    problems.install(app)
    app.add_middleware(BodyLimit)
    app.include_router(incidents)
    app.include_router(alerts)
    app.include_router(runbook)
    app.include_router(callbacks)
    app.include_router(notices)
    app.include_router(public)
    # The public announcements (flows/announce.py), when no other web server has them.
    site = settings().site
    site.mkdir(parents=True, exist_ok=True)
    app.mount("/site", StaticFiles(directory=site, html=True), name="site")
    return app
