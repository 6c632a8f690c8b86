"""Opsgenie's Alert API: a deadline in danger creates an alert whose ``alias`` is the
deadline's (Opsgenie folds an alert with an open alias into it, counting it), and the same
alias closes it once the deadline is met.

``POST {BREACH_OPSGENIE_URL}/v2/alerts`` and ``…/v2/alerts/{alias}/close?identifierType=
alias``, with ``Authorization: GenieKey <key>``; Opsgenie answers ``202`` with ``{"result":
"Request will be processed", "requestId": …}``, ``401``/``403`` for a bad key, ``422`` for
an invalid alert, ``429`` when throttled.
"""

from __future__ import annotations

from urllib.parse import quote

import httpx

from breachflow.notifiers.oncall.delivery import post
from breachflow.notifiers.oncall.pagerduty import Page

#: Our levels on Opsgenie's priorities.
PRIORITY = {"overdue": "P1", "forecast late": "P2", "90%": "P2", "75%": "P3"}


async def create(
    client: httpx.AsyncClient,
    url: str,
    key: str,
    page: Page,
    base_seconds: float = 1.0,
    max_seconds: float = 30.0,
) -> None:
    body = {
        "message": page.summary[:130],
        "alias": page.dedup_key[:512],
        "description": page.summary[:15000],
        "priority": PRIORITY.get(page.level, "P4"),
        "source": "breachflow",
        "entity": page.incident,
        "tags": ["breachflow", "deadline"],
        "details": {
            "deadline": page.deadline,
            "level": page.level,
            "due_at": page.due_at.isoformat(),
        },
    }
    await post(
        client, f"{url.rstrip('/')}/v2/alerts", body, headers=_auth(key), service="Opsgenie",
        base_seconds=base_seconds, max_seconds=max_seconds,
    )  # fmt: skip


async def close(
    client: httpx.AsyncClient,
    url: str,
    key: str,
    alias: str,
    base_seconds: float = 1.0,
    max_seconds: float = 30.0,
) -> None:
    target = f"{url.rstrip('/')}/v2/alerts/{quote(alias[:512], safe='')}/close?identifierType=alias"
    body = {"source": "breachflow", "note": "The deadline is met (or its incident closed)."}
    await post(
        client, target, body, headers=_auth(key), service="Opsgenie",
        base_seconds=base_seconds, max_seconds=max_seconds,
    )  # fmt: skip


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"GenieKey {key}"}
