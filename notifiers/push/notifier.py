"""Push notifications: Firebase Cloud Messaging (HTTP v1) and Web Push (RFC 8030/8291/8292).

A person's push contact is either an FCM registration token (a plain string) or a browser's
Web Push subscription as JSON text (it starts with ``{``); ``PushNotifier`` routes each
message to the client for its kind. Provider answers are reduced to the ledger's outcomes:
an unregistered token or an expired subscription is ``failed_permanent`` with
``contact_dead`` (no later run tries it again); throttling and server errors are
``failed_temporary`` with the provider's ``Retry-After``; when FCM cannot be used at all
(our credentials refused, the service unreachable) the messages not yet tried are
``deferred``. Details are written by us or scrubbed: they never quote a token or endpoint.

Pacing counts requests to the push service (including a resend after an expired access
token); the OAuth token exchange goes to Google's token endpoint, not FCM, and is not paced.
"""

from __future__ import annotations

import asyncio
from typing import Any

from breachflow.models.delivery import DeliveryResult, DeliveryStatus, OutboundMessage
from breachflow.notifiers.base import Pacer
from breachflow.notifiers.push.common import PushKind, push_kind, push_result
from breachflow.notifiers.push.fcm import FcmClient
from breachflow.notifiers.push.webpush import WebPushClient

# --- routing -------------------------------------------------------------------------------


class PushNotifier:
    """Routes each push message to FCM or Web Push by the kind of contact it carries.

    A provider we have no credentials for cannot reach that person by push at all, so the
    message is ``failed_permanent`` (not ``contact_dead``: the contact is fine) and the
    person falls back to their next channel. ``concurrency`` bounds each provider
    separately: they are different services, and FCM's pool is async while Web Push's is
    a thread pool.
    """

    name = "push"

    def __init__(
        self,
        *,
        fcm_service_account: dict[str, Any] | None = None,
        fcm_base_url: str = "https://fcm.googleapis.com",
        vapid_private_key: str | None = None,
        vapid_subject: str = "mailto:security-notice@example.com",
        concurrency: int = 8,
        timeout: float = 10.0,
        pacer: Pacer | None = None,
    ) -> None:
        options: dict[str, Any] = {"concurrency": concurrency, "timeout": timeout, "pacer": pacer}
        self._fcm: FcmClient | None = None
        self._webpush: WebPushClient | None = None
        if fcm_service_account is not None:
            self._fcm = FcmClient(fcm_service_account, base_url=fcm_base_url, **options)
        if vapid_private_key:
            self._webpush = WebPushClient(
                vapid_private_key=vapid_private_key, vapid_subject=vapid_subject, **options
            )

    async def send(self, batch: list[OutboundMessage]) -> list[DeliveryResult]:
        routes: dict[PushKind, list[OutboundMessage]] = {"fcm": [], "webpush": []}
        for msg in batch:
            routes[push_kind(msg.recipient)].append(msg)
        results: list[DeliveryResult] = []
        sending = []
        for client, messages, missing in (
            (self._fcm, routes["fcm"], "FCM is not configured"),
            (self._webpush, routes["webpush"], "web push is not configured"),
        ):
            if client is None:
                failed = DeliveryStatus.FAILED_PERMANENT
                results += [push_result(m, failed, missing) for m in messages]
            elif messages:
                sending.append(client.send(messages))
        for part in await asyncio.gather(*sending):
            results += part
        return results
