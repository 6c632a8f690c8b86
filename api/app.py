"""The ASGI app ``breach serve`` runs."""

from __future__ import annotations

from fastapi import FastAPI

from api.callbacks import router as callbacks
from api.notices import router as notices


def create_app() -> FastAPI:
    app = FastAPI(title="Breachflow", docs_url=None, redoc_url=None)
    app.include_router(callbacks)
    app.include_router(notices)
    return app
