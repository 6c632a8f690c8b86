"""Request bodies are refused above a size, whether they announce it or stream it."""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Incidents, alerts and notices are small; a file of affected people may be large.
DEFAULT_LIMIT = 1 << 20  # 1 MiB
UPLOAD_LIMIT = 512 << 20  # 512 MiB, for subjects imports
EVIDENCE_LIMIT = 50 << 20  # 50 MiB: a runbook step's evidence (logs, screenshots, a disk hash)
PUBLIC_LIMIT = 64 << 10  # 64 KiB: what anyone on the internet may send us


class BodyLimit:
    """ASGI middleware: 413 when a body exceeds its limit. ``Content-Length`` is checked
    before anything is read; a chunked body is counted as it arrives."""

    def __init__(self, app: ASGIApp, limit: int = DEFAULT_LIMIT) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        limit = self.limit
        if path.endswith("/subjects"):
            limit = UPLOAD_LIMIT
        elif path.endswith("/evidence"):
            limit = EVIDENCE_LIMIT
        elif path in ("/report", "/api/v1/reports"):
            limit = PUBLIC_LIMIT
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await _refuse(send, limit)
            return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:  # FastAPI lets an HTTPException through as it is
                    raise HTTPException(413, f"the request body is larger than {limit:,} bytes")
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except HTTPException as exc:
            if exc.status_code != 413 or started:
                raise
            await _refuse(send, limit)


async def _refuse(send: Send, limit: int) -> None:
    body = json.dumps(
        {
            "type": "about:blank",
            "title": "Content Too Large",
            "status": 413,
            "detail": f"the request body is larger than {limit:,} bytes",
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
