"""``/healthz`` and ``/readyz``: what a load balancer or Kubernetes asks before sending work.

``/healthz`` says the process answers. ``/readyz`` says it can do its work: the database
answers a query and, when the response runs on a Prefect server, that server answers its
health check. Neither needs a key, and neither says more than which part is not ready.
"""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from breachflow.flows.deployments import use_deployments
from breachflow.models.runtime import database

router = APIRouter(tags=["operations"])
#: How long a readiness check waits for each part before it calls it not ready.
CHECK_SECONDS = 3.0


@router.get("/healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", include_in_schema=False)
async def readyz() -> JSONResponse:
    checks = {"database": await run_in_threadpool(_database)}
    if use_deployments():
        checks["prefect"] = await _prefect()
    ready = all(state == "ok" for state in checks.values())
    body: dict[str, Any] = {"status": "ready" if ready else "not ready", "checks": checks}
    return JSONResponse(body, status_code=200 if ready else 503)


def _database() -> str:
    try:
        with database().engine.connect() as conn:
            conn.execute(text("select 1"))
    except SQLAlchemyError as exc:
        return f"unreachable ({type(exc).__name__})"
    return "ok"


async def _prefect() -> str:
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    if not url:
        return "not configured (PREFECT_API_URL)"
    try:
        async with httpx.AsyncClient(timeout=CHECK_SECONDS) as client:
            answer = await client.get(f"{url.rstrip('/')}/health")
    except httpx.HTTPError as exc:
        return f"unreachable ({type(exc).__name__})"
    return "ok" if answer.is_success else f"answered {answer.status_code}"
