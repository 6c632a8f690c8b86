"""Local stand-ins for FCM and a Web Push service, speaking the providers' HTTP shapes.

Both are real HTTP servers on 127.0.0.1 (an ephemeral port, one thread per connection),
used as context managers. They check what the real services check: FCM verifies the RS256
assertion at its token endpoint and the Bearer token and v1 message shape at
``messages:send``; the push service verifies the VAPID ES256 signature and audience and
decrypts the aes128gcm payload with the subscriber's keys (with ``http_ece``, as a browser
would), so tests can assert what a person's device would show. Answers can be scripted
per token or subscription; what was accepted is recorded.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs

import http_ece
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class InvalidJwt(Exception):
    """The token is not a well-formed JWT signed by the expected key."""


def jwt_parts(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """(header, claims, signing input, signature) of a compact JWS."""
    try:
        header_b64, claims_b64, signature_b64 = token.split(".")
        header = json.loads(unb64url(header_b64))
        claims = json.loads(unb64url(claims_b64))
        signature = unb64url(signature_b64)
    except (ValueError, binascii.Error) as exc:
        raise InvalidJwt(f"malformed JWT: {exc}") from None
    return header, claims, f"{header_b64}.{claims_b64}".encode(), signature


# --- the HTTP plumbing ---------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real services offer
    server: _Httpd

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the tests read the recorded requests instead."""

    def body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def reply(
        self, status: int, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if body is not None:
            self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def reply_html(self, status: int, html: str) -> None:
        data = html.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        self.server.fake.handle(self)


class _Httpd(ThreadingHTTPServer):
    daemon_threads = True
    fake: _LocalServer


class _LocalServer:
    """A ThreadingHTTPServer on 127.0.0.1:0 in a background thread."""

    def __init__(self) -> None:
        self._httpd = _Httpd(("127.0.0.1", 0), _Handler)
        self._httpd.fake = self
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def _serve(self) -> None:
        self._httpd.serve_forever(poll_interval=0.02)  # a quick shutdown between tests

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def handle(self, request: _Handler) -> None:
        raise NotImplementedError


# --- FCM -----------------------------------------------------------------------------------


def make_service_account(
    token_uri: str,
    *,
    project_id: str = "breachflow-test",
    client_email: str = "notifier@breachflow-test.iam.gserviceaccount.com",
) -> dict[str, str]:
    """A service-account dict shaped like the JSON Google gives, with a fresh RSA key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": secrets.token_hex(20),
        "private_key": pem,
        "client_email": client_email,
        "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
    }


@dataclass(frozen=True)
class FcmReply:
    """A scripted FCM error: HTTP status, google.rpc status, FcmError code and message."""

    status: int
    rpc_status: str
    message: str
    error_code: str | None = None
    retry_after: str | None = None
    names_token: bool = False

    @classmethod
    def unregistered(cls) -> FcmReply:
        return cls(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED")

    @classmethod
    def invalid_token(cls) -> FcmReply:
        message = "The registration token is not a valid FCM registration token"
        return cls(400, "INVALID_ARGUMENT", message, "INVALID_ARGUMENT", names_token=True)

    @classmethod
    def sender_mismatch(cls) -> FcmReply:
        return cls(403, "PERMISSION_DENIED", "SenderId mismatch", "SENDER_ID_MISMATCH")

    @classmethod
    def quota_exceeded(cls, retry_after: str | None = "30") -> FcmReply:
        message = "Quota exceeded for quota metric 'Send requests'"
        return cls(429, "RESOURCE_EXHAUSTED", message, "QUOTA_EXCEEDED", retry_after)

    @classmethod
    def unavailable(cls, retry_after: str | None = None) -> FcmReply:
        message = "The service is currently unavailable."
        return cls(503, "UNAVAILABLE", message, "UNAVAILABLE", retry_after)

    def body(self) -> dict[str, Any]:
        details: list[dict[str, Any]] = []
        if self.error_code:
            details.append({"@type": FCM_ERROR_TYPE, "errorCode": self.error_code})
        if self.names_token:
            violation = {"field": "message.token", "description": "Invalid registration token"}
            details.append({"@type": BAD_REQUEST_TYPE, "fieldViolations": [violation]})
        error = {"code": self.status, "message": self.message, "status": self.rpc_status}
        return {"error": {**error, "details": details}}

    def headers(self) -> dict[str, str]:
        return {"Retry-After": self.retry_after} if self.retry_after else {}


@dataclass
class _Issued:
    client_email: str
    expires_at: float
    revoked: bool = False


class FakeFcm(_LocalServer):
    """FCM HTTP v1 and Google's OAuth2 token endpoint, on one local server.

    ``trust(account)`` registers a service account's public key (``service_account()`` makes
    and trusts one). ``replies[token]`` scripts the answer for a registration token;
    ``accepted`` holds the v1 ``message`` objects FCM took, ``send_requests`` counts every
    request to ``messages:send``, ``token_claims`` the claims of each assertion exchanged.
    """

    def __init__(self, *, token_lifetime: int = 3599) -> None:
        super().__init__()
        self.token_lifetime = token_lifetime
        self.replies: dict[str, FcmReply] = {}
        self.accepted: list[dict[str, Any]] = []
        self.send_requests = 0
        self.token_requests = 0
        self.token_claims: list[dict[str, Any]] = []
        self.rejections: list[str] = []  # why a request was refused (shape, auth, assertion)
        self._trusted: dict[str, tuple[rsa.RSAPublicKey, str]] = {}
        self._issued: dict[str, _Issued] = {}

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    def trust(self, account: dict[str, str]) -> None:
        key = serialization.load_pem_private_key(account["private_key"].encode(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        self._trusted[account["client_email"]] = (key.public_key(), account["project_id"])

    def service_account(self, **options: str) -> dict[str, str]:
        account = make_service_account(self.token_uri, **options)
        self.trust(account)
        return account

    def revoke_access_tokens(self) -> None:
        """Every access token issued so far now gets 401, as after a key rotation."""
        with self.lock:
            for issued in self._issued.values():
                issued.revoked = True

    def handle(self, request: _Handler) -> None:
        if request.path == "/token":
            self._token(request)
            return
        match = re.fullmatch(r"/v1/projects/([^/]+)/messages:send", request.path)
        if match:
            self._send(request, match.group(1))
            return
        request.reply_html(404, "<title>Error 404 (Not Found)!!1</title>")  # Google's front end

    # the token endpoint

    def _token(self, request: _Handler) -> None:
        with self.lock:
            self.token_requests += 1
        if request.headers.get("Content-Type", "").split(";")[0] != (
            "application/x-www-form-urlencoded"
        ):
            self._refuse_grant(request, "invalid_request", "Expected a form body.")
            return
        form = {k: v[0] for k, v in parse_qs(request.body().decode()).items()}
        if form.get("grant_type") != JWT_BEARER_GRANT:
            self._refuse_grant(request, "unsupported_grant_type", "Invalid grant_type.")
            return
        try:
            claims = self._verified_assertion(form.get("assertion", ""))
        except InvalidJwt as exc:
            self._refuse_grant(request, "invalid_grant", str(exc))
            return
        access_token = f"ya29.fake-{secrets.token_urlsafe(24)}"
        with self.lock:
            self.token_claims.append(claims)
            expires_at = time.time() + self.token_lifetime
            self._issued[access_token] = _Issued(claims["iss"], expires_at)
        answer = {
            "access_token": access_token,
            "expires_in": self.token_lifetime,
            "token_type": "Bearer",
        }
        request.reply(200, answer)

    def _verified_assertion(self, assertion: str) -> dict[str, Any]:
        header, claims, signed, signature = jwt_parts(assertion)
        if header.get("alg") != "RS256":
            raise InvalidJwt("Invalid JWT: alg must be RS256.")
        trusted = self._trusted.get(claims.get("iss", ""))
        if trusted is None:
            raise InvalidJwt("Invalid JWT Signature.")
        try:
            trusted[0].verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise InvalidJwt("Invalid JWT Signature.") from None
        now = time.time()
        if claims.get("aud") != self.token_uri:
            raise InvalidJwt("Invalid JWT: aud is not the token endpoint.")
        if FCM_SCOPE not in str(claims.get("scope", "")).split():
            raise InvalidJwt("Invalid JWT: scope lacks firebase.messaging.")
        iat, exp = claims.get("iat"), claims.get("exp")
        if not isinstance(iat, int) or not isinstance(exp, int):
            raise InvalidJwt("Invalid JWT: iat and exp must be integers.")
        if not (iat <= now + 60 and now < exp and exp - iat <= 3600):
            raise InvalidJwt("Invalid JWT: Token must be a short-lived token (60 minutes).")
        return claims

    def _refuse_grant(self, request: _Handler, error: str, description: str) -> None:
        with self.lock:
            self.rejections.append(f"token: {error}: {description}")
        request.reply(400, {"error": error, "error_description": description})

    # messages:send

    def _send(self, request: _Handler, project: str) -> None:
        with self.lock:
            self.send_requests += 1
        body = request.body()
        account = self._authenticated(request.headers.get("Authorization", ""))
        if account is None:
            self._reject(request, 401, "UNAUTHENTICATED", "Request had invalid credentials.")
            return
        if self._trusted[account][1] != project:
            self._reject(request, 403, "PERMISSION_DENIED", "Permission denied on project.")
            return
        try:
            message = _checked_message(request.headers.get("Content-Type", ""), body)
        except ValueError as exc:
            self._reject(request, 400, "INVALID_ARGUMENT", f"Invalid JSON payload: {exc}")
            return
        scripted = self.replies.get(message["token"])
        if scripted is not None:
            request.reply(scripted.status, scripted.body(), scripted.headers())
            return
        with self.lock:
            self.accepted.append(message)
            name = f"projects/{project}/messages/0:{len(self.accepted)}%{secrets.token_hex(8)}"
        request.reply(200, {"name": name})

    def _authenticated(self, authorization: str) -> str | None:
        scheme, _, token = authorization.partition(" ")
        with self.lock:
            issued = self._issued.get(token)
        if scheme != "Bearer" or issued is None or issued.revoked:
            return None
        return issued.client_email if time.time() < issued.expires_at else None

    def _reject(self, request: _Handler, status: int, rpc_status: str, message: str) -> None:
        with self.lock:
            self.rejections.append(f"send: {status} {message}")
        headers = {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'}
        request.reply(status, _rpc_error(status, rpc_status, message), headers)


def _rpc_error(status: int, rpc_status: str, message: str) -> dict[str, Any]:
    return {"error": {"code": status, "message": message, "status": rpc_status}}


def _checked_message(content_type: str, body: bytes) -> dict[str, Any]:
    """The v1 ``message`` of a send request; ValueError says what FCM would object to."""
    if content_type.split(";")[0].strip() != "application/json":
        raise ValueError("Content-Type must be application/json")
    request = json.loads(body)
    if not isinstance(request, dict) or set(request) != {"message"}:
        raise ValueError("the request holds exactly one 'message'")
    message = request["message"]
    if not isinstance(message, dict) or not isinstance(message.get("token"), str):
        raise ValueError("message.token must be a string")
    if set(message) - {"token", "notification", "data", "android", "apns", "webpush"}:
        raise ValueError("unknown fields in message")
    notification = message.get("notification", {})
    if set(notification) - {"title", "body", "image"} or not all(
        isinstance(v, str) for v in notification.values()
    ):
        raise ValueError("message.notification takes string title, body, image")
    data = message.get("data", {})
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ValueError("message.data values must be strings")
    if len(json.dumps(message).encode()) > 4096:
        raise ValueError("Message is too big")
    return message


# --- Web Push ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubscriberKeys:
    """What a browser makes at ``PushManager.subscribe``: an ECDH key pair and a secret."""

    private_key: ec.EllipticCurvePrivateKey
    auth_secret: bytes

    @classmethod
    def generate(cls) -> SubscriberKeys:
        return cls(ec.generate_private_key(ec.SECP256R1()), os.urandom(16))

    @property
    def p256dh(self) -> str:
        point = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return b64url(point)

    @property
    def auth(self) -> str:
        return b64url(self.auth_secret)


@dataclass(frozen=True)
class Subscription:
    id: str
    endpoint: str
    keys: SubscriberKeys

    @property
    def recipient(self) -> str:
        """The subscription as the JSON text a site stores (``PushSubscription.toJSON()``)."""
        keys = {"p256dh": self.keys.p256dh, "auth": self.keys.auth}
        return json.dumps({"endpoint": self.endpoint, "expirationTime": None, "keys": keys})


@dataclass(frozen=True)
class Delivery:
    """One push the service accepted: the decrypted payload and the request's headers."""

    subscription_id: str
    payload: dict[str, Any]
    ttl: int
    vapid_claims: dict[str, Any]
    vapid_key: str
    headers: dict[str, str] = field(repr=False)  # lower-cased names, Authorization left out


class FakePushService(_LocalServer):
    """A Web Push service (RFC 8030) with VAPID (RFC 8292) and aes128gcm (RFC 8291).

    ``subscribe()`` registers a subscriber's keys and returns its subscription. When
    ``application_server_key`` is set, a VAPID key other than it is refused with 403, as
    push services do for a subscription made with another key. ``replies[id]`` scripts a
    status (and ``retry_after[id]`` a Retry-After) for an accepted request.
    """

    def __init__(self, *, application_server_key: str | None = None) -> None:
        super().__init__()
        self.application_server_key = application_server_key
        self.replies: dict[str, int] = {}
        self.retry_after: dict[str, str] = {}
        self.deliveries: list[Delivery] = []
        self.requests = 0
        self.rejections: list[str] = []
        self._subscribers: dict[str, SubscriberKeys] = {}

    def subscribe(self, keys: SubscriberKeys | None = None) -> Subscription:
        subscription_id = secrets.token_urlsafe(16)
        keys = keys or SubscriberKeys.generate()
        with self.lock:
            self._subscribers[subscription_id] = keys
        return Subscription(subscription_id, f"{self.url}/push/{subscription_id}", keys)

    def handle(self, request: _Handler) -> None:
        with self.lock:
            self.requests += 1
        body = request.body()
        match = re.fullmatch(r"/push/([A-Za-z0-9_-]+)", request.path)
        keys = self._subscribers.get(match.group(1)) if match else None
        if match is None or keys is None:
            self._reject(request, 404, "no such subscription")
            return
        subscription_id = match.group(1)
        try:
            claims, vapid_key = self._verified_vapid(request.headers.get("Authorization", ""))
        except InvalidJwt as exc:
            self._reject(request, 401, str(exc))
            return
        if self.application_server_key and vapid_key != self.application_server_key:
            self._reject(request, 403, "VAPID key does not match the subscription's")
            return
        if len(body) > 4096:
            self._reject(request, 413, "payload over 4096 bytes")
            return
        try:
            ttl, payload = self._decrypted(request, body, keys)
        except ValueError as exc:
            self._reject(request, 400, str(exc))
            return
        scripted = self.replies.get(subscription_id)
        if scripted is not None:
            retry = self.retry_after.get(subscription_id)
            request.reply(scripted, {"code": scripted}, {"Retry-After": retry} if retry else {})
            return
        headers = {k.lower(): v for k, v in request.headers.items() if k.lower() != "authorization"}
        delivery = Delivery(subscription_id, payload, ttl, claims, vapid_key, headers)
        with self.lock:
            self.deliveries.append(delivery)
        request.reply(201, None, {"Location": f"{self.url}/m/{uuid.uuid4().hex}"})

    def _verified_vapid(self, authorization: str) -> tuple[dict[str, Any], str]:
        """The VAPID claims and key of ``vapid t=<jwt>, k=<key>``, signature verified."""
        match = re.fullmatch(r"vapid\s+t=([^,\s]+)\s*,\s*k=([A-Za-z0-9_-]+)", authorization)
        if match is None:
            raise InvalidJwt("Authorization is not 'vapid t=..., k=...'")
        token, vapid_key = match.groups()
        header, claims, signed, signature = jwt_parts(token)
        if header.get("alg") != "ES256" or len(signature) != 64:
            raise InvalidJwt("VAPID JWT must be ES256")
        try:
            public = ec.EllipticCurvePublicKey.from_encoded_point(
                ec.SECP256R1(), unb64url(vapid_key)
            )
            der = encode_dss_signature(
                int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            )
            public.verify(der, signed, ec.ECDSA(hashes.SHA256()))
        except (ValueError, InvalidSignature):
            raise InvalidJwt("VAPID signature does not verify") from None
        now = time.time()
        if claims.get("aud") != self.url:
            raise InvalidJwt("VAPID aud is not the push service's origin")
        if not isinstance(claims.get("exp"), int) or not now < claims["exp"] <= now + 86400:
            raise InvalidJwt("VAPID exp must be within the next 24 hours")
        if not str(claims.get("sub", "")).startswith(("mailto:", "https:")):
            raise InvalidJwt("VAPID sub must be a mailto: or https: URL")
        return claims, vapid_key

    def _decrypted(
        self, request: _Handler, body: bytes, keys: SubscriberKeys
    ) -> tuple[int, dict[str, Any]]:
        if request.headers.get("Content-Encoding") != "aes128gcm":
            raise ValueError("Content-Encoding must be aes128gcm")
        ttl = request.headers.get("TTL", "")
        if not ttl.isdigit():
            raise ValueError("TTL header missing or not a number")
        try:
            plain = http_ece.decrypt(
                body, private_key=keys.private_key, auth_secret=keys.auth_secret
            )
        except http_ece.ECEException as exc:
            raise ValueError(f"cannot decrypt: {exc}") from None
        return int(ttl), json.loads(plain)

    def _reject(self, request: _Handler, status: int, reason: str) -> None:
        with self.lock:
            self.rejections.append(f"{status} {reason}")
        request.reply(status, {"code": status, "error": reason})
