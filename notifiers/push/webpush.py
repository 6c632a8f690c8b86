"""Web Push (RFC 8030/8291/8292) with pywebpush and a VAPID key.

A subscription the push service no longer knows (404, 410) is ``failed_permanent`` with
``contact_dead``; throttling and server errors are ``failed_temporary``. Subscriptions
point at many push services, so one being down fails only its own messages.
"""

from __future__ import annotations

import asyncio
import binascii
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from http_ece import ECEException
from py_vapid import Vapid, VapidException
from py_vapid.utils import b64urlencode
from pywebpush import WebPusher, WebPushException

from breachflow.models.delivery import DeliveryResult, DeliveryStatus, OutboundMessage
from breachflow.notifiers.base import Pacer
from breachflow.notifiers.push.common import (
    notice_body,
    notice_title,
    push_result,
    retry_after_seconds,
    sent_result,
    validate_push_contact,
)

WEBPUSH_TTL = 24 * 3600  # a push service keeps an undelivered notice this long
VAPID_LIFETIME = 12 * 3600  # RFC 8292 allows at most 24 h

# --- Web Push ------------------------------------------------------------------------------


def load_vapid_key(private_key: str) -> Vapid:
    """The VAPID signing key from PEM, base64url DER, or base64url raw 32 bytes."""
    text = private_key.strip()
    try:
        if text.startswith("-----BEGIN"):
            vapid = Vapid.from_pem(text.encode())
        else:
            vapid = Vapid.from_string(text)
    except (ValueError, TypeError, binascii.Error, VapidException):
        raise ValueError("the VAPID private key is not a key in PEM, DER or raw form") from None
    key = vapid.private_key
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError("the VAPID private key is not a P-256 (prime256v1) key")
    return vapid


def generate_vapid_keys() -> tuple[str, str]:
    """A new VAPID key pair for an operator: (private key, application server key).

    The private key is the raw 32-byte scalar in base64url (one line, fit for an environment
    variable; ``load_vapid_key`` reads it). The public key, an uncompressed P-256 point in
    base64url, is what the site passes as ``applicationServerKey`` to
    ``PushManager.subscribe``.
    """
    vapid = Vapid()
    vapid.generate_keys()
    scalar = vapid.private_key.private_numbers().private_value.to_bytes(32, "big")
    point = vapid.public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return b64urlencode(scalar), b64urlencode(point)


def _origin(endpoint: str) -> str:
    url = urlsplit(endpoint)
    return f"{url.scheme}://{url.netloc}"


def _webpush_payload(msg: OutboundMessage) -> bytes:
    """What the site's service worker receives after decryption."""
    payload = {
        "title": notice_title(msg),
        "body": notice_body(msg),
        "link": msg.link or "",
        "notice_id": msg.message_id,
    }
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def _webpush_result(msg: OutboundMessage, response: requests.Response) -> DeliveryResult:
    status = response.status_code
    retry_after = retry_after_seconds(response.headers.get("Retry-After"))
    if status in (200, 201, 202):
        return sent_result(msg, response.headers.get("Location") or msg.message_id)
    if status in (404, 410):
        detail = f"push subscription expired ({status})"
        return push_result(msg, DeliveryStatus.FAILED_PERMANENT, detail, contact_dead=True)
    if status == 413:
        return push_result(msg, DeliveryStatus.FAILED_PERMANENT, "push payload too large (413)")
    if status == 429 or status >= 500:
        detail = f"push service busy or failing ({status})"
        return push_result(msg, DeliveryStatus.FAILED_TEMPORARY, detail, retry_after=retry_after)
    if status == 401:
        # Our VAPID signature (e.g. a skewed clock's expiry): the person is not at fault.
        detail = "push service refused our VAPID signature (401)"
        return push_result(msg, DeliveryStatus.FAILED_TEMPORARY, detail, retry_after=retry_after)
    if 400 <= status < 500:
        detail = f"push service rejected the message ({status})"
        return push_result(msg, DeliveryStatus.FAILED_PERMANENT, detail)
    detail = f"unexpected push service answer {status}"
    return push_result(msg, DeliveryStatus.FAILED_TEMPORARY, detail)


class WebPushClient:
    """Web Push with VAPID through pywebpush, whose requests calls run in a bounded pool.

    Subscriptions point at many push services (Mozilla's, Google's, Apple's...), so one
    unreachable endpoint says nothing about the others: a connection error is
    ``failed_temporary`` for that message only, never a deferral of the batch.
    """

    name = "webpush"

    def __init__(
        self,
        *,
        vapid_private_key: str,
        vapid_subject: str = "mailto:security-notice@example.com",
        concurrency: int = 8,
        timeout: float = 10.0,
        ttl: int = WEBPUSH_TTL,
        pacer: Pacer | None = None,
    ) -> None:
        self._vapid = load_vapid_key(vapid_private_key)
        self._subject = vapid_subject
        self._concurrency = concurrency
        self._timeout = timeout
        self._ttl = ttl
        self._pacer = pacer
        try:  # a subject py_vapid would refuse fails here, not once per person
            self._vapid_headers("https://push.example")
        except VapidException:
            raise ValueError("the VAPID subject must be a mailto: or https: URL") from None

    async def send(self, batch: list[OutboundMessage]) -> list[DeliveryResult]:
        if not batch:
            return []
        slots = asyncio.Semaphore(self._concurrency)
        workers = min(self._concurrency, len(batch))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="webpush") as pool:
            attempts = (self._attempt(msg, slots, pool) for msg in batch)
            return list(await asyncio.gather(*attempts))

    async def _attempt(
        self, msg: OutboundMessage, slots: asyncio.Semaphore, pool: ThreadPoolExecutor
    ) -> DeliveryResult:
        try:
            subscription = json.loads(validate_push_contact(msg.recipient))
        except ValueError as exc:
            detail = f"push subscription malformed: {exc}"
            return push_result(msg, DeliveryStatus.FAILED_PERMANENT, detail, contact_dead=True)
        payload = _webpush_payload(msg)
        async with slots:
            slot = await self._pacer.wait() if self._pacer is not None else None
            loop = asyncio.get_running_loop()
            try:
                response = await loop.run_in_executor(pool, self._post, subscription, payload, slot)
            except requests.RequestException as exc:
                detail = f"push service unreachable: {type(exc).__name__}"
                return push_result(msg, DeliveryStatus.FAILED_TEMPORARY, detail)
            except (WebPushException, ECEException, ValueError):
                detail = "push subscription keys unusable for encryption"
                return push_result(msg, DeliveryStatus.FAILED_PERMANENT, detail, contact_dead=True)
            except VapidException:  # py_vapid takes no IPv6 literal as the audience
                detail = "cannot sign VAPID for this push service's address"
                return push_result(msg, DeliveryStatus.FAILED_PERMANENT, detail)
        return _webpush_result(msg, response)

    def _post(
        self, subscription: dict[str, Any], payload: bytes, slot: float | None
    ) -> requests.Response:
        """Encrypt (aes128gcm) and POST; runs in a worker thread, leaving on ``slot``."""
        headers = self._vapid_headers(_origin(subscription["endpoint"]))
        pusher = WebPusher(subscription)
        if self._pacer is not None and slot is not None:
            self._pacer.depart(slot)
        response = pusher.send(
            payload, headers, ttl=self._ttl, content_encoding="aes128gcm", timeout=self._timeout
        )
        assert isinstance(response, requests.Response)  # not a curl dump: curl=False
        return response

    def _vapid_headers(self, audience: str) -> dict[str, str]:
        claims = {"sub": self._subject, "aud": audience, "exp": int(time.time()) + VAPID_LIFETIME}
        return self._vapid.sign(claims)
