"""Firebase Cloud Messaging, HTTP v1, with an OAuth2 service-account access token.

An unregistered or invalid token is ``failed_permanent`` with ``contact_dead``; throttling
and server errors are ``failed_temporary`` with FCM's ``Retry-After``; when FCM cannot be
used at all (our credentials refused, the service unreachable) the messages not yet tried
are ``deferred``. The OAuth token exchange goes to Google's token endpoint and is not paced.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from breachflow.models.delivery import DeliveryResult, DeliveryStatus, OutboundMessage
from breachflow.notifiers.base import Pacer
from breachflow.notifiers.push.common import (
    normal_fcm_token,
    notice_body,
    notice_title,
    push_result,
    retry_after_seconds,
    sent_result,
)

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GOOGLE_OAUTH_ENDPOINT = "https://oauth2.googleapis.com/token"
ASSERTION_LIFETIME = 3600  # Google's maximum for a service-account assertion
TOKEN_REFRESH_MARGIN = 300.0  # fetch a new access token this long before the old one expires

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
        return push_result(
            msg, DeliveryStatus.FAILED_PERMANENT, "push token not registered", contact_dead=True
        )
    if error.code == "SENDER_ID_MISMATCH":
        return push_result(
            msg, DeliveryStatus.FAILED_PERMANENT, f"{label}: push token is for another sender"
        )
    if status == 400 and (error.names_token or "registration token" in error.message.lower()):
        return push_result(
            msg, DeliveryStatus.FAILED_PERMANENT, "push token invalid", contact_dead=True
        )
    if status == 429 or status >= 500 or error.code == "THIRD_PARTY_AUTH_ERROR":
        return push_result(msg, DeliveryStatus.FAILED_TEMPORARY, label, retry_after=retry_after)
    if 400 <= status < 500:
        # e.g. a payload FCM will never accept: not the token's fault, so not contact_dead.
        return push_result(msg, DeliveryStatus.FAILED_PERMANENT, f"{label}: {error.message}")
    return push_result(msg, DeliveryStatus.FAILED_TEMPORARY, f"unexpected FCM answer {status}")


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
                return push_result(msg, DeliveryStatus.DEFERRED, run.unusable)
            try:
                normal_fcm_token(msg.recipient)
            except ValueError as exc:
                detail = f"push token malformed: {exc}"
                return push_result(msg, DeliveryStatus.FAILED_PERMANENT, detail, contact_dead=True)
            try:
                return await self._deliver(run, msg)
            except _FcmUnusable as exc:
                run.unusable = run.unusable or str(exc)
                return push_result(msg, DeliveryStatus.DEFERRED, str(exc))
            except httpx.TransportError as exc:
                detail = f"FCM request failed: {type(exc).__name__}"
                return push_result(msg, DeliveryStatus.FAILED_TEMPORARY, detail)

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
            return sent_result(msg, _message_name(response) or msg.message_id)
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
