"""PagerDuty's Events API v2: a deadline in danger triggers an alert, one per deadline
(its ``dedup_key``, so a deadline that passes 75 %, then 90 %, then falls due stays one
PagerDuty incident, raised in severity), and the same key resolves it once it is met.

``POST {BREACH_PAGERDUTY_URL}`` (``https://events.pagerduty.com/v2/enqueue``) with the
service integration's routing key in the body; PagerDuty answers ``202`` with
``{"status": "success", "dedup_key": …}``, ``400`` for an invalid event, ``429`` when
throttled.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import httpx

from breachflow.notifiers.oncall.delivery import post

#: Our levels on PagerDuty's severities.
SEVERITY = {"overdue": "critical", "forecast late": "error", "90%": "error"}


@dataclass(frozen=True)
class Page:
    dedup_key: str
    summary: str
    incident: str
    deadline: str
    level: str
    due_at: datetime


async def trigger(
    client: httpx.AsyncClient,
    url: str,
    routing_key: str,
    page: Page,
    base_seconds: float = 1.0,
    max_seconds: float = 30.0,
) -> None:
    body = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": page.dedup_key,
        "payload": {
            "summary": page.summary[:1024],
            "source": "breachflow",
            "severity": SEVERITY.get(page.level, "warning"),
            "component": page.incident,
            "group": page.deadline,
            "class": "deadline",
            "custom_details": {"level": page.level, "due_at": page.due_at.isoformat()},
        },
    }
    await post(
        client, url, body, service="PagerDuty", base_seconds=base_seconds, max_seconds=max_seconds
    )


async def resolve(
    client: httpx.AsyncClient,
    url: str,
    routing_key: str,
    dedup_key: str,
    base_seconds: float = 1.0,
    max_seconds: float = 30.0,
) -> None:
    body = {"routing_key": routing_key, "event_action": "resolve", "dedup_key": dedup_key}
    await post(
        client, url, body, service="PagerDuty", base_seconds=base_seconds, max_seconds=max_seconds
    )
