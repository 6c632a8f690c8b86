"""The ASGI app ``breach serve`` runs."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from api.callbacks import router as callbacks
from api.notices import router as notices
from flows.runtime import settings


def create_app() -> FastAPI:
    app = FastAPI(title="Breachflow", docs_url=None, redoc_url=None)
    app.include_router(callbacks)
    app.include_router(notices)
    # The public announcements (flows/announce.py), when no other web server has them.
    site = settings().site
    site.mkdir(parents=True, exist_ok=True)
    app.mount("/site", StaticFiles(directory=site, html=True), name="site")
    return app
