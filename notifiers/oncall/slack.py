"""Slack's incoming webhooks: a message in the incident channel.

``POST`` the webhook URL (a secret: it is all a sender needs) with ``{"text": …}``; Slack
answers ``200 ok``, or ``400 invalid_payload``, ``403 action_prohibited``, ``404
no_service``, ``410 channel_is_archived``, ``429`` with ``Retry-After``.
"""

from __future__ import annotations

import httpx

from breachflow.notifiers.oncall.delivery import post


async def say(
    client: httpx.AsyncClient,
    url: str,
    text: str,
    base_seconds: float = 1.0,
    max_seconds: float = 30.0,
) -> None:
    await post(
        client,
        url,
        {"text": text[:3000], "unfurl_links": False},
        service="Slack",
        base_seconds=base_seconds,
        max_seconds=max_seconds,
    )
