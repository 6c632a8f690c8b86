"""Reports from the public: a page anyone can use, and the same as JSON. No key; limited
per network address and in size, and everything shown back is escaped."""

from __future__ import annotations

import ipaddress
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from breachflow.api.forms import first, form_fields
from breachflow.flows.intake.public_reports import take_in
from breachflow.models.errors import BreachError, RateLimited
from breachflow.models.runtime import settings
from breachflow.rendering.environment import environment

router = APIRouter(tags=["public reports"])
PAGE_POLICY = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"


class PublicReportIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(max_length=320)
    what_happened: str = Field(min_length=1, max_length=5000)
    data_involved: str | None = Field(default=None, max_length=1000)


@router.post("/api/v1/reports", status_code=202)
async def report_json(body: PublicReportIn, request: Request) -> dict[str, Any]:
    received = await run_in_threadpool(
        take_in, body.email, body.what_happened, body.data_involved, _client(request)
    )
    return {"reference": received.reference, "acknowledged": received.acknowledged}


@router.get("/report", response_class=HTMLResponse, include_in_schema=False)
async def page() -> HTMLResponse:
    return _page()


@router.post("/report", response_class=HTMLResponse, include_in_schema=False)
async def report_form(request: Request) -> HTMLResponse:
    form = await form_fields(request, most=10)
    if form is None:
        return _page(error="This is not the report form's post: too many fields.", status=400)

    def field(name: str, limit: int) -> str:
        return first(form, name, limit)

    try:
        received = await run_in_threadpool(
            take_in,
            field("email", 320),
            field("what_happened", 5000),
            field("data_involved", 1000),
            _client(request),
        )
    except BreachError as exc:
        status = 429 if isinstance(exc, RateLimited) else 422
        return _page(error=str(exc), status=status)
    return _page(reference=received.reference)


def _page(
    *, reference: str | None = None, error: str | None = None, status: int = 200
) -> HTMLResponse:
    config = settings()
    html = (
        environment()
        .get_template("public/report.en.html.j2")
        .render(
            organisation=config.organisation_name,
            contact_point=config.contact_point,
            reference=reference,
            error=error,
        )
    )
    return HTMLResponse(html, status_code=status, headers={"Content-Security-Policy": PAGE_POLICY})


def _client(request: Request) -> str:
    """The address a limit counts: the client's (``api/clients.py``), and for IPv6 its
    /64, which one household or one attacker's machine has whole."""
    host = request.client.host if request.client else "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return host
