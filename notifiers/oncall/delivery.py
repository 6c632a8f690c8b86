"""One POST to a staff-facing service, retried the way such services ask.

A ``429`` (after its ``Retry-After``, bounded), a ``5xx`` or a transport error is tried
again with exponential backoff; any other ``4xx`` is the request's fault and is not: it
raises :class:`StaffDeliveryError` with the service's own words, cut short. Nothing here
puts an affected person's details in a request: only incident keys, deadlines and counts.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

ATTEMPTS = 4


class StaffDeliveryError(Exception):
    """The service refused or could not be reached after the retries; the message says."""


async def post(
    client: httpx.AsyncClient,
    url: str,
    body: Any,
    *,
    headers: dict[str, str] | None = None,
    base_seconds: float = 1.0,
    max_seconds: float = 30.0,
    service: str,
) -> httpx.Response:
    """POST ``body`` as JSON; the answer once it is a success."""
    content = json.dumps(body, ensure_ascii=False).encode()
    headers = {"Content-Type": "application/json"} | (headers or {})
    return await post_bytes(
        client, url, content, headers=headers, service=service,
        base_seconds=base_seconds, max_seconds=max_seconds,
    )  # fmt: skip


async def post_bytes(
    client: httpx.AsyncClient,
    url: str,
    content: bytes,
    *,
    headers: dict[str, str],
    base_seconds: float = 1.0,
    max_seconds: float = 30.0,
    service: str,
) -> httpx.Response:
    """POST ``content`` as it is (signed bodies must go out byte for byte)."""
    problem = ""
    for attempt in range(ATTEMPTS):
        if attempt:
            await asyncio.sleep(min(max_seconds, base_seconds * 2 ** (attempt - 1)))
        try:
            answer = await client.post(url, content=content, headers=headers)
        except httpx.TransportError as exc:
            problem = f"{service} unreachable: {type(exc).__name__}"
            continue
        if answer.is_success:
            return answer
        problem = f"{service} answered {answer.status_code}: {answer.text[:200]}"
        if answer.status_code == 429:
            wait = answer.headers.get("retry-after", "")
            if wait.isdigit():
                await asyncio.sleep(min(max_seconds, float(wait)))
            continue
        if answer.status_code < 500:
            raise StaffDeliveryError(problem)
    raise StaffDeliveryError(f"{problem} (after {ATTEMPTS} attempts)")
