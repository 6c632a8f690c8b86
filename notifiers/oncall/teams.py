"""Microsoft Teams' incoming webhooks (a Workflows "post to a channel when a webhook request
is received" flow, or a legacy connector): an Adaptive Card with the line.

``POST`` the webhook URL (a secret) with a ``message`` whose attachment is the card; Teams
answers ``200`` or ``202``, ``400`` for a card it cannot read, ``429`` when throttled.
"""

from __future__ import annotations

import httpx

from breachflow.notifiers.oncall.delivery import post


def card(text: str) -> dict[str, object]:
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": [{"type": "TextBlock", "text": text[:3000], "wrap": True}],
                },
            }
        ],
    }


async def say(
    client: httpx.AsyncClient,
    url: str,
    text: str,
    base_seconds: float = 1.0,
    max_seconds: float = 30.0,
) -> None:
    await post(
        client, url, card(text), service="Teams", base_seconds=base_seconds, max_seconds=max_seconds
    )
