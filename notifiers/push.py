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
import base64
import binascii
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

import httpx
import jwt
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from http_ece import ECEException
from py_vapid import Vapid, VapidException
from py_vapid.utils import b64urlencode
from pywebpush import WebPusher, WebPushException

from models.delivery import DeliveryResult, DeliveryStatus, OutboundMessage
from notifiers.email_message import scrub

PushKind = Literal["fcm", "webpush"]

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GOOGLE_OAUTH_ENDPOINT = "https://oauth2.googleapis.com/token"
ASSERTION_LIFETIME = 3600  # Google's maximum for a service-account assertion
TOKEN_REFRESH_MARGIN = 300.0  # fetch a new access token this long before the old one expires

#: Both providers cap a message at 4 KB; these budgets leave room for the link and JSON.
TITLE_BUDGET = 200  # UTF-8 bytes
BODY_BUDGET = 1000  # UTF-8 bytes
ELLIPSIS = "…"

WEBPUSH_TTL = 24 * 3600  # a push service keeps an undelivered notice this long
VAPID_LIFETIME = 12 * 3600  # RFC 8292 allows at most 24 h
#: Plain-HTTP endpoints are refused except on the loopback, where the tests' push service runs.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
P256_POINT_LENGTH = 65  # an uncompressed P-256 public key
AUTH_SECRET_LENGTH = 16  # RFC 8291
ENDPOINT_MAX_LENGTH = 2048
FCM_TOKEN_LENGTH = (16, 4096)  # real tokens are ~150 to ~250 characters


class Pacer(Protocol):
    """The dispatcher's cross-process rate limiter: awaited before each provider request."""

    async def wait(self) -> None: ...


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
    return _normal_fcm_token(text)


def _normal_fcm_token(token: str) -> str:
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


def _result(
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


def _sent(msg: OutboundMessage, provider_message_id: str) -> DeliveryResult:
    return DeliveryResult(
        notification_id=msg.notification_id,
        status=DeliveryStatus.SENT,
        provider_message_id=provider_message_id,
    )


# --- Firebase Cloud Messaging --------------------------------------------------------------


class _FcmUnusable(Exception):
    """FCM cannot be used by us right now: the rest of the batch is deferred, not tried."""


@dataclass(frozen=True)
class _AccessToken:
    value: str
    refresh_at: float  # time.monotonic()

    def fresh(self) -> bool:
        return time.monotonic() < self.refresh_at


@dataclass
class _FcmRun:
    """What one batch shares: its HTTP client, the token lock, and whether FCM gave out."""

    http: httpx.AsyncClient
    slots: asyncio.Semaphore
    token_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    unusable: str | None = None


@dataclass(frozen=True)
class _FcmError:
    """The parts of FCM's error body (a google.rpc.Status with FcmError details) we use."""

    status: str = ""  # e.g. NOT_FOUND
    code: str = ""  # FcmError.errorCode, e.g. UNREGISTERED
    message: str = ""
    names_token: bool = False  # a BadRequest field violation points at message.token


@dataclass(frozen=True)
class _ServiceAccount:
    client_email: str
    private_key: rsa.RSAPrivateKey
    private_key_id: str | None
    project_id: str
    token_uri: str


def _read_service_account(account: dict[str, Any]) -> _ServiceAccount:
    """The fields of Google's service-account JSON we need; ValueError names what is wrong."""
    for name in ("client_email", "private_key", "project_id"):
        if not isinstance(account.get(name), str) or not account[name]:
            raise ValueError(f"the FCM service account has no '{name}'")
    try:
        key = serialization.load_pem_private_key(account["private_key"].encode(), password=None)
    except (ValueError, TypeError):
        raise ValueError("the FCM service account's private_key is not a PEM key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the FCM service account's private_key is not an RSA key")
    return _ServiceAccount(
        client_email=account["client_email"],
        private_key=key,
        private_key_id=account.get("private_key_id") or None,
        project_id=account["project_id"],
        token_uri=account.get("token_uri") or GOOGLE_OAUTH_ENDPOINT,
    )


def _fcm_message(msg: OutboundMessage) -> dict[str, Any]:
    return {
        "message": {
            "token": msg.recipient,
            "notification": {"title": notice_title(msg), "body": notice_body(msg)},
            "data": {"link": msg.link or "", "notice_id": msg.message_id},
        }
    }


def _fcm_error(response: httpx.Response) -> _FcmError:
    try:
        body = response.json()
    except ValueError:
        return _FcmError()
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return _FcmError()
    details = [d for d in error.get("details") or [] if isinstance(d, dict)]
    code = next((d["errorCode"] for d in details if "errorCode" in d), "")
    violations = [v for d in details for v in d.get("fieldViolations") or []]
    names_token = any(isinstance(v, dict) and v.get("field") == "message.token" for v in violations)
    return _FcmError(
        status=str(error.get("status") or ""),
        code=str(code),
        message=str(error.get("message") or ""),
        names_token=names_token,
    )


def _fcm_result(msg: OutboundMessage, response: httpx.Response) -> DeliveryResult:
    """A response other than 200/401/403-for-us, as one person's outcome."""
    status = response.status_code
    error = _fcm_error(response)
    label = f"FCM {status} {error.code or error.status}".rstrip()
    retry_after = retry_after_seconds(response.headers.get("Retry-After"))
    if status == 404 or error.code == "UNREGISTERED":
        return _result(
            msg, DeliveryStatus.FAILED_PERMANENT, "push token not registered", contact_dead=True
        )
    if error.code == "SENDER_ID_MISMATCH":
        return _result(
            msg, DeliveryStatus.FAILED_PERMANENT, f"{label}: push token is for another sender"
        )
    if status == 400 and (error.names_token or "registration token" in error.message.lower()):
        return _result(
            msg, DeliveryStatus.FAILED_PERMANENT, "push token invalid", contact_dead=True
        )
    if status == 429 or status >= 500 or error.code == "THIRD_PARTY_AUTH_ERROR":
        return _result(msg, DeliveryStatus.FAILED_TEMPORARY, label, retry_after=retry_after)
    if 400 <= status < 500:
        # e.g. a payload FCM will never accept: not the token's fault, so not contact_dead.
        return _result(msg, DeliveryStatus.FAILED_PERMANENT, f"{label}: {error.message}")
    return _result(msg, DeliveryStatus.FAILED_TEMPORARY, f"unexpected FCM answer {status}")


class FcmClient:
    """FCM HTTP v1 with a service account: one OAuth2 access token serves every request.

    The token is fetched once (a signed RS256 assertion exchanged at ``token_uri``), kept
    until shortly before it expires, across batches, and fetched again once if FCM answers
    401. When the token endpoint refuses our credentials, FCM answers 401 to a fresh token
    or 403 to our project, or no connection to FCM can be opened, nothing about the people
    has been learnt and every other message would meet the same fate: the message and the
    rest of the batch are ``deferred`` (not charged an attempt; the run can resume). A
    request that fails after it may have reached FCM (timeout, dropped connection) is
    ``failed_temporary``: it was attempted.
    """

    name = "fcm"

    def __init__(
        self,
        service_account: dict[str, Any],
        *,
        base_url: str = "https://fcm.googleapis.com",
        concurrency: int = 8,
        timeout: float = 10.0,
        pacer: Pacer | None = None,
    ) -> None:
        self._account = _read_service_account(service_account)
        project = self._account.project_id
        self._send_url = f"{base_url.rstrip('/')}/v1/projects/{project}/messages:send"
        self._concurrency = concurrency
        self._timeout = timeout
        self._pacer = pacer
        self._token: _AccessToken | None = None

    async def send(self, batch: list[OutboundMessage]) -> list[DeliveryResult]:
        if not batch:
            return []
        limits = httpx.Limits(max_connections=self._concurrency)
        async with httpx.AsyncClient(timeout=self._timeout, limits=limits) as http:
            run = _FcmRun(http=http, slots=asyncio.Semaphore(self._concurrency))
            return list(await asyncio.gather(*(self._attempt(run, msg) for msg in batch)))

    async def _attempt(self, run: _FcmRun, msg: OutboundMessage) -> DeliveryResult:
        async with run.slots:
            if run.unusable:
                return _result(msg, DeliveryStatus.DEFERRED, run.unusable)
            try:
                _normal_fcm_token(msg.recipient)
            except ValueError as exc:
                detail = f"push token malformed: {exc}"
                return _result(msg, DeliveryStatus.FAILED_PERMANENT, detail, contact_dead=True)
            try:
                return await self._deliver(run, msg)
            except _FcmUnusable as exc:
                run.unusable = run.unusable or str(exc)
                return _result(msg, DeliveryStatus.DEFERRED, str(exc))
            except httpx.TransportError as exc:
                detail = f"FCM request failed: {type(exc).__name__}"
                return _result(msg, DeliveryStatus.FAILED_TEMPORARY, detail)

    async def _deliver(self, run: _FcmRun, msg: OutboundMessage) -> DeliveryResult:
        body = _fcm_message(msg)
        token = await self._access_token(run)
        response = await self._post(run, body, token)
        if response.status_code == 401 and _fcm_error(response).code != "THIRD_PARTY_AUTH_ERROR":
            token = await self._refresh(run, stale=token)
            response = await self._post(run, body, token)
            if response.status_code == 401:
                raise _FcmUnusable("FCM refused our access token (401)")
        if response.status_code == 200:
            return _sent(msg, _message_name(response) or msg.message_id)
        error = _fcm_error(response)
        if response.status_code == 403 and error.code != "SENDER_ID_MISMATCH":
            raise _FcmUnusable(f"FCM refused our project (403 {error.status})")
        if response.status_code == 404 and not error.status:
            # Not FCM's NOT_FOUND but a web server's (a wrong base URL): were it read as
            # "token unregistered", one typo would mark every person's token dead.
            raise _FcmUnusable("FCM URL not found (404 without an FCM error): check the base URL")
        return _fcm_result(msg, response)

    async def _post(
        self, run: _FcmRun, body: dict[str, Any], token: _AccessToken
    ) -> httpx.Response:
        if self._pacer is not None:
            await self._pacer.wait()
        headers = {"Authorization": f"Bearer {token.value}"}
        try:
            return await run.http.post(self._send_url, json=body, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            # No connection was opened, so this message was not sent either.
            raise _FcmUnusable(f"FCM unreachable: {type(exc).__name__}") from None

    async def _access_token(self, run: _FcmRun) -> _AccessToken:
        async with run.token_lock:
            self._check_usable(run)
            if self._token is None or not self._token.fresh():
                self._token = await self._fetch_token(run.http)
            return self._token

    async def _refresh(self, run: _FcmRun, *, stale: _AccessToken) -> _AccessToken:
        """A new token, unless a concurrent request has already replaced ``stale``."""
        async with run.token_lock:
            self._check_usable(run)
            if self._token is None or self._token is stale:
                self._token = await self._fetch_token(run.http)
            return self._token

    @staticmethod
    def _check_usable(run: _FcmRun) -> None:
        """Raise if a request ahead of this one, holding the token lock, found FCM unusable."""
        if run.unusable:
            raise _FcmUnusable(run.unusable)

    async def _fetch_token(self, http: httpx.AsyncClient) -> _AccessToken:
        form = {"grant_type": JWT_BEARER_GRANT, "assertion": self._assertion()}
        try:
            response = await http.post(self._account.token_uri, data=form)
        except httpx.TransportError as exc:
            raise _FcmUnusable(f"FCM token endpoint unreachable: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise _FcmUnusable(_token_refusal(response))
        try:
            answer = response.json()
            value, lifetime = str(answer["access_token"]), float(answer["expires_in"])
        except (ValueError, KeyError, TypeError):
            raise _FcmUnusable("FCM token endpoint gave no access token") from None
        margin = min(TOKEN_REFRESH_MARGIN, lifetime / 2)
        return _AccessToken(value=value, refresh_at=time.monotonic() + lifetime - margin)

    def _assertion(self) -> str:
        """The signed JWT Google exchanges for an access token (RFC 7523)."""
        now = int(time.time())
        claims = {
            "iss": self._account.client_email,
            "scope": FCM_SCOPE,
            "aud": self._account.token_uri,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME,
        }
        headers = {"kid": self._account.private_key_id} if self._account.private_key_id else None
        return jwt.encode(claims, self._account.private_key, algorithm="RS256", headers=headers)


def _message_name(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    name = body.get("name") if isinstance(body, dict) else None
    return name if isinstance(name, str) and name else None


def _token_refusal(response: httpx.Response) -> str:
    """Why the token endpoint said no, in OAuth2's words (``invalid_grant``...)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {}
    words = ": ".join(str(body[k]) for k in ("error", "error_description") if body.get(k))
    verdict = "refused our credentials" if response.status_code < 500 else "unavailable"
    answer = f"{response.status_code} {words}".strip()
    return f"FCM token endpoint {verdict} ({answer})"


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
        return _sent(msg, response.headers.get("Location") or msg.message_id)
    if status in (404, 410):
        detail = f"push subscription expired ({status})"
        return _result(msg, DeliveryStatus.FAILED_PERMANENT, detail, contact_dead=True)
    if status == 413:
        return _result(msg, DeliveryStatus.FAILED_PERMANENT, "push payload too large (413)")
    if status == 429 or status >= 500:
        detail = f"push service busy or failing ({status})"
        return _result(msg, DeliveryStatus.FAILED_TEMPORARY, detail, retry_after=retry_after)
    if status == 401:
        # Our VAPID signature (e.g. a skewed clock's expiry): the person is not at fault.
        detail = "push service refused our VAPID signature (401)"
        return _result(msg, DeliveryStatus.FAILED_TEMPORARY, detail, retry_after=retry_after)
    if 400 <= status < 500:
        detail = f"push service rejected the message ({status})"
        return _result(msg, DeliveryStatus.FAILED_PERMANENT, detail)
    return _result(msg, DeliveryStatus.FAILED_TEMPORARY, f"unexpected push service answer {status}")


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
            return _result(msg, DeliveryStatus.FAILED_PERMANENT, detail, contact_dead=True)
        payload = _webpush_payload(msg)
        async with slots:
            if self._pacer is not None:
                await self._pacer.wait()
            loop = asyncio.get_running_loop()
            try:
                response = await loop.run_in_executor(pool, self._post, subscription, payload)
            except requests.RequestException as exc:
                detail = f"push service unreachable: {type(exc).__name__}"
                return _result(msg, DeliveryStatus.FAILED_TEMPORARY, detail)
            except (WebPushException, ECEException, ValueError):
                detail = "push subscription keys unusable for encryption"
                return _result(msg, DeliveryStatus.FAILED_PERMANENT, detail, contact_dead=True)
            except VapidException:  # py_vapid takes no IPv6 literal as the audience
                detail = "cannot sign VAPID for this push service's address"
                return _result(msg, DeliveryStatus.FAILED_PERMANENT, detail)
        return _webpush_result(msg, response)

    def _post(self, subscription: dict[str, Any], payload: bytes) -> requests.Response:
        """Encrypt (aes128gcm) and POST; runs in a worker thread."""
        headers = self._vapid_headers(_origin(subscription["endpoint"]))
        pusher = WebPusher(subscription)
        response = pusher.send(
            payload, headers, ttl=self._ttl, content_encoding="aes128gcm", timeout=self._timeout
        )
        assert isinstance(response, requests.Response)  # not a curl dump: curl=False
        return response

    def _vapid_headers(self, audience: str) -> dict[str, str]:
        claims = {"sub": self._subject, "aud": audience, "exp": int(time.time()) + VAPID_LIFETIME}
        return self._vapid.sign(claims)


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
                results += [_result(m, DeliveryStatus.FAILED_PERMANENT, missing) for m in messages]
            elif messages:
                sending.append(client.send(messages))
        for part in await asyncio.gather(*sending):
            results += part
        return results
