"""Generic outbound webhooks: each stage and warning as a CloudEvent 1.0 (structured JSON,
``cloudevents``), HMAC-signed like our own signed alert intake, retried.

Headers: ``X-Breachflow-Timestamp: <unix seconds>`` and ``X-Breachflow-Signature:
sha256=<hex>``, HMAC-SHA256 with ``BREACH_WEBHOOK_SECRET`` over ``<timestamp>.<body>``, so
a receiver can check the sender and refuse a replay. The event's ``id`` is the timeline
event's (incident and sequence number): a receiver that sees it twice (a retry after a
lost answer) can tell.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import datetime
from typing import Any

import httpx
from cloudevents.core.bindings.http import to_structured_event
from cloudevents.core.v1.event import CloudEvent

from breachflow.notifiers.oncall.delivery import post_bytes


def event(incident: str, seq: int, kind: str, at: datetime, data: dict[str, Any]) -> CloudEvent:
    attributes = {
        "specversion": "1.0",
        "id": f"{incident}/{seq}",
        "source": "breachflow",
        "type": f"io.breachflow.{kind}",
        "subject": incident,
        "time": at,
        "datacontenttype": "application/json",
    }
    return CloudEvent(attributes, data)


def signature(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


async def send(
    client: httpx.AsyncClient,
    url: str,
    secret: str,
    cloud_event: CloudEvent,
    base_seconds: float = 1.0,
    max_seconds: float = 30.0,
) -> None:
    message = to_structured_event(cloud_event)
    stamp = str(int(time.time()))
    headers = dict(message.headers) | {
        "X-Breachflow-Timestamp": stamp,
        "X-Breachflow-Signature": signature(secret, stamp, message.body),
    }
    await post_bytes(
        client, url, message.body, headers=headers, service="Webhook",
        base_seconds=base_seconds, max_seconds=max_seconds,
    )  # fmt: skip
