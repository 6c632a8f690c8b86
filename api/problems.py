"""Errors as RFC 9457 problem details (``application/problem+json``), with a message a
person can act on; never a traceback, never the request's data quoted back."""

from __future__ import annotations

from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from breachflow.models.errors import (
    BreachError,
    Forbidden,
    IllegalTransition,
    InvalidInput,
    NotFound,
    ProviderUnavailable,
    RateLimited,
)

MEDIA_TYPE = "application/problem+json"


def problem(status: int, detail: str, *, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def install(app: FastAPI) -> None:
    """Every error the app can give, as a problem."""

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        return problem(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'][1:]) or 'body'}: {err['msg']}"
            for err in exc.errors()
        )
        return problem(422, problems or "the request is not valid")

    @app.exception_handler(BreachError)
    async def _ours(request: Request, exc: BreachError) -> JSONResponse:
        status = {
            NotFound: 404,
            IllegalTransition: 409,
            InvalidInput: 422,
            Forbidden: 403,
            RateLimited: 429,
            ProviderUnavailable: 503,
        }.get(type(exc), 400)
        return problem(status, str(exc))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return problem(500, f"unexpected {type(exc).__name__}; the server log has the details")
