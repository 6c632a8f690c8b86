"""What both push providers share: contact kinds and validation, text budgets, results."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec

from breachflow.models.delivery import DeliveryResult, DeliveryStatus, OutboundMessage
from breachflow.notifiers.email_message import scrub

PushKind = Literal["fcm", "webpush"]


#: Both providers cap a message at 4 KB; these budgets leave room for the link and JSON.
TITLE_BUDGET = 200  # UTF-8 bytes
BODY_BUDGET = 1000  # UTF-8 bytes
ELLIPSIS = "…"

#: Plain-HTTP endpoints are refused except on the loopback, where the tests' push service runs.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
P256_POINT_LENGTH = 65  # an uncompressed P-256 public key
AUTH_SECRET_LENGTH = 16  # RFC 8291
ENDPOINT_MAX_LENGTH = 2048
FCM_TOKEN_LENGTH = (16, 4096)  # real tokens are ~150 to ~250 characters


# --- contacts ------------------------------------------------------------------------------


def push_kind(recipient: str) -> PushKind:
    """A Web Push subscription is JSON text; anything else is an FCM registration token."""
    return "webpush" if recipient.lstrip().startswith("{") else "fcm"


def validate_push_contact(value: str) -> str:
    """The push contact in normal form, or ValueError with a reason that does not quote it.

    A subscription keeps only ``endpoint`` and its two keys (unpadded); browsers add fields
    such as ``expirationTime`` that the push service does not need.
    """
    text = value.strip()
    if not text:
        raise ValueError("the push contact is empty")
    if push_kind(text) == "webpush":
        return _normal_subscription(text)
    return normal_fcm_token(text)


def normal_fcm_token(token: str) -> str:
    low, high = FCM_TOKEN_LENGTH
    if not low <= len(token) <= high:
        raise ValueError(f"an FCM registration token has {low} to {high} characters")
    if not token.isascii() or not token.isprintable() or any(c.isspace() for c in token):
        raise ValueError("an FCM registration token is printable ASCII without spaces")
    return token


def _normal_subscription(text: str) -> str:
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise ValueError("the web push subscription is not valid JSON") from None
    if not isinstance(data, dict):
        raise ValueError("the web push subscription is not a JSON object")
    endpoint = _check_endpoint(data.get("endpoint"))
    keys = data.get("keys")
    if not isinstance(keys, dict):
        raise ValueError("the web push subscription has no 'keys' object")
    p256dh = _b64url_field(keys, "p256dh", P256_POINT_LENGTH)
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), _b64url_decode(p256dh))
    except ValueError:
        raise ValueError("the subscription's p256dh key is not a P-256 public key") from None
    auth = _b64url_field(keys, "auth", AUTH_SECRET_LENGTH)
    normal = {"endpoint": endpoint, "keys": {"p256dh": p256dh, "auth": auth}}
    return json.dumps(normal, separators=(",", ":"))


def _check_endpoint(endpoint: object) -> str:
    if not isinstance(endpoint, str) or not endpoint:
        raise ValueError("the web push subscription has no endpoint")
    if len(endpoint) > ENDPOINT_MAX_LENGTH:
        raise ValueError(f"the subscription endpoint is longer than {ENDPOINT_MAX_LENGTH}")
    try:
        url = urlsplit(endpoint)
        host = url.hostname
    except ValueError:
        raise ValueError("the subscription endpoint is not a URL") from None
    if not host:
        raise ValueError("the subscription endpoint has no host")
    if url.scheme == "https" or (url.scheme == "http" and host in LOOPBACK_HOSTS):
        return endpoint
    raise ValueError("the subscription endpoint must be an https URL")


def _b64url_field(keys: dict[str, Any], name: str, length: int) -> str:
    """The key ``name`` without padding, checked to decode to ``length`` bytes."""
    value = keys.get(name)
    if not isinstance(value, str):
        raise ValueError(f"the web push subscription has no '{name}' key")
    unpadded = value.strip().rstrip("=")
    try:
        raw = _b64url_decode(unpadded)
    except ValueError:
        raise ValueError(f"the subscription's '{name}' key is not base64url") from None
    if len(raw) != length:
        raise ValueError(f"the subscription's '{name}' key is not {length} bytes long")
    return unpadded


def _b64url_decode(text: str) -> bytes:
    if not text.isascii() or any(c in "+/" for c in text):
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error:
        raise ValueError("not base64url") from None


# --- shared helpers ------------------------------------------------------------------------


def fit(text: str, budget: int) -> str:
    """``text`` within ``budget`` UTF-8 bytes: cut at a word if one is near, marked with …"""
    text = text.strip()
    if len(text.encode()) <= budget:
        return text
    room = budget - len(ELLIPSIS.encode())
    cut = text.encode()[:room].decode(errors="ignore")
    space = max(cut.rfind(" "), cut.rfind("\n"))
    if space > len(cut) * 0.7:  # a word boundary near the end; CJK text has none
        cut = cut[:space]
    return cut.rstrip() + ELLIPSIS


def notice_title(msg: OutboundMessage) -> str:
    return fit(msg.subject, TITLE_BUDGET)


def notice_body(msg: OutboundMessage) -> str:
    """The short text written for push and SMS when there is one, else the notice."""
    return fit(msg.short_text or msg.text, BODY_BUDGET)


def retry_after_seconds(value: str | None) -> float | None:
    """HTTP ``Retry-After`` (seconds or an HTTP date) as seconds from now."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def push_result(
    msg: OutboundMessage,
    status: DeliveryStatus,
    detail: str,
    *,
    retry_after: float | None = None,
    contact_dead: bool = False,
) -> DeliveryResult:
    return DeliveryResult(
        notification_id=msg.notification_id,
        status=status,
        detail=scrub(detail, msg.recipient),
        retry_after=retry_after,
        contact_dead=contact_dead,
    )


def sent_result(msg: OutboundMessage, provider_message_id: str) -> DeliveryResult:
    return DeliveryResult(
        notification_id=msg.notification_id,
        status=DeliveryStatus.SENT,
        provider_message_id=provider_message_id,
    )
