"""A local stand-in for Twilio's REST API, for tests and the benchmark.

It speaks the wire format of ``https://api.twilio.com/2010-04-01`` for the two resources
Breachflow uses: ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` and
``.../Calls.json``, form-encoded, with HTTP basic auth (account SID, auth token). Replies
are Twilio's: 201 with the resource JSON of the OpenAPI description, or an error body
``{"code", "message", "more_info", "status"}``. Twilio's own test ("magic") numbers give
their documented errors (``+15005550001`` is an invalid ``To``...), and any destination
can be scripted to get an error code, a 429 with ``Retry-After``, or a 5xx, and to end with
a chosen final status. After accepting a request with a ``StatusCallback`` it POSTs the
status callbacks to that URL from a background thread, signed with ``X-Twilio-Signature``
exactly as Twilio signs them.

In a test::

    with TwilioServer(auth_token="secret") as twilio:
        twilio.error("+15551230001", 21211)
        ... point the SDK at twilio.url ...
        assert twilio.attempts["+15551230001"] == 1

Standalone (the benchmark)::

    python tests/twilio_server.py --port 8099 --auth-token T [--latency 0.05]

prints its URL and serves until killed. ``GET /_test/state`` returns what it accepted;
``POST /_test/behaviour`` (JSON: ``to``, ``error``, ``http_status``, ``retry_after``,
``times``, ``message``, ``final``, ``final_error``) scripts a destination;
``POST /_test/reset`` forgets.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import queue
import re
import secrets
import threading
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
from twilio.request_validator import RequestValidator

from breachflow.notifiers.segments import segments

API_VERSION = "2010-04-01"
ROUTE = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/(?P<resource>Messages|Calls)\.json$")
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
#: The number a messaging service sends from, in callbacks.
SERVICE_NUMBER = "+15005550006"
MAX_BODY = 1600
MAX_TWIML = 4000

MESSAGE_FINALS = ("delivered", "undelivered", "failed")
CALL_FINALS = ("completed", "busy", "no-answer", "failed", "canceled")
#: The ErrorCode Twilio reports with a failed message when none is scripted.
DEFAULT_FINAL_ERRORS = {"undelivered": 30003, "failed": 30008}
SIP_CODES = {
    "completed": "200",
    "busy": "486",
    "no-answer": "487",
    "failed": "404",
    "canceled": "487",
}

#: Twilio's test-credential magic numbers, as destinations.
MAGIC_ERRORS: dict[str, dict[str, int]] = {
    "Messages": {
        "+15005550001": 21211,
        "+15005550002": 21612,
        "+15005550003": 21408,
        "+15005550004": 21610,
        "+15005550009": 21614,
    },
    "Calls": {
        "+15005550001": 21217,
        "+15005550002": 21214,
        "+15005550003": 21215,
        "+15005550004": 21216,
    },
}

#: Twilio's wording; like Twilio, several quote the number (``{to}``).
ERROR_TEXT: dict[int, str] = {
    20003: "Authenticate",
    20404: "The requested resource {path} was not found",
    20429: "Too Many Requests",
    20500: "An internal server error has occurred",
    21201: "No 'To' number is specified",
    21205: "Url parameter is required.",
    21211: "The 'To' number {to} is not a valid phone number.",
    21213: "No 'From' number is specified",
    21214: "'To' phone number cannot be reached",
    21215: "Account not authorized to call {to}. Perhaps you need to enable some international "
    "permissions: https://www.twilio.com/console/voice/calls/geo-permissions/low-risk",
    21216: "Account not allowed to call {to}",
    21217: "Phone number does not appear to be valid",
    21408: "Permission to send an SMS has not been enabled for the region indicated by the "
    "'To' number: {to}.",
    21602: "Message body is required.",
    21603: "A 'From' phone number is required.",
    21604: "A 'To' phone number is required.",
    21610: "Attempt to send to unsubscribed recipient",
    21612: "The 'To' phone number: {to}, is not currently reachable via SMS.",
    21614: "'To' number {to} is not a valid mobile number",
    21617: "The concatenated message body exceeds the 1600 character limit.",
    32018: "Twiml size exceeded maximum allowed value of 4000 characters",
}


class TwilioError(Exception):
    """A request Twilio would refuse: becomes an error reply."""

    def __init__(
        self,
        code: int,
        http_status: int = 400,
        retry_after: str | None = None,
        message: str | None = None,
        **quoted: str,
    ) -> None:
        super().__init__(code)
        self.code = code
        self.http_status = http_status
        self.retry_after = retry_after
        template = message or ERROR_TEXT.get(code, "Error {code}")
        self.message = template.format_map(defaultdict(str, quoted, code=str(code)))

    def body(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.http_status,
        }


@dataclass
class ErrorScript:
    """The error a destination gets: ``times`` more requests (None: every request)."""

    code: int
    http_status: int = 400
    retry_after: str | None = None
    times: int | None = None
    message: str | None = None  # Twilio's wording; ``{to}`` quotes the number


@dataclass
class Accepted:
    """One accepted Messages or Calls request."""

    resource: str  # "Messages" or "Calls"
    sid: str
    account_sid: str
    to: str
    params: dict[str, list[str]]
    at: float  # time.time() when the request arrived (its headers read)

    def param(self, name: str) -> str | None:
        values = self.params.get(name)
        return values[0] if values else None


@dataclass
class Callback:
    """One status callback the server POSTed, and how the receiver answered."""

    url: str
    params: dict[str, str]
    signature: str
    status: int | None  # the receiver's HTTP status; None if it could not be reached
    at: float


@dataclass
class _State:
    accepted: list[Accepted] = field(default_factory=list)
    attempts: Counter[str] = field(default_factory=Counter)
    unauthorized: int = 0
    callbacks: list[Callback] = field(default_factory=list)
    errors: dict[str, ErrorScript] = field(default_factory=dict)
    finals: dict[str, tuple[str, int | None]] = field(default_factory=dict)
    in_flight: int = 0
    peak_in_flight: int = 0


class TwilioServer:
    """Twilio's Messages and Calls API on 127.0.0.1 (see the module docstring)."""

    def __init__(
        self,
        *,
        auth_token: str,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
        callback_delay: float = 0.0,
    ) -> None:
        self.auth_token = auth_token
        self.latency = latency
        self.callback_delay = callback_delay
        self._state = _State()
        self._lock = threading.Condition()
        self._outbox: queue.Queue[tuple[str, dict[str, str]] | None] = queue.Queue()
        self._httpd = ThreadingHTTPServer((host, port), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.twilio = self  # type: ignore[attr-defined]
        self._threads: list[threading.Thread] = []

    # --- lifecycle --------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL to give the SDK in place of https://api.twilio.com."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> TwilioServer:
        self._threads = [
            threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True),
            threading.Thread(target=self._post_callbacks, daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._outbox.put(None)
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> TwilioServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- scripting --------------------------------------------------------------------

    def error(
        self,
        to: str,
        code: int,
        *,
        http_status: int = 400,
        retry_after: str | None = None,
        times: int | None = None,
        message: str | None = None,
    ) -> None:
        """Reply Twilio error ``code`` to requests for ``to`` (the next ``times`` only),
        with Twilio's ``message`` for it (``{to}`` quotes the number)."""
        with self._lock:
            self._state.errors[to] = ErrorScript(code, http_status, retry_after, times, message)

    def throttle(self, to: str, *, retry_after: str = "30", times: int | None = None) -> None:
        """HTTP 429 (error 20429) with ``Retry-After`` for ``to``."""
        self.error(to, 20429, http_status=429, retry_after=retry_after, times=times)

    def outage(self, to: str, *, http_status: int = 500, times: int | None = None) -> None:
        """HTTP 5xx (error 20500) for ``to``."""
        self.error(to, 20500, http_status=http_status, times=times)

    def final(self, to: str, status: str, *, error_code: int | None = None) -> None:
        """The final status callback for ``to`` (delivered... for messages, completed...
        for calls); failed messages get ``error_code`` or Twilio's usual one."""
        if status not in MESSAGE_FINALS + CALL_FINALS:
            raise ValueError(f"unknown final status {status!r}")
        with self._lock:
            self._state.finals[to] = (status, error_code)

    def reset(self) -> None:
        """Forget what was accepted and scripted (requests being handled still count)."""
        with self._lock:
            self._state = _State(in_flight=self._state.in_flight)

    # --- what happened ----------------------------------------------------------------

    @property
    def accepted(self) -> list[Accepted]:
        with self._lock:
            return list(self._state.accepted)

    @property
    def attempts(self) -> Counter[str]:
        """Authenticated requests per destination, whatever the reply."""
        with self._lock:
            return Counter(self._state.attempts)

    @property
    def unauthorized(self) -> int:
        """Requests refused with 401 (wrong account SID or auth token)."""
        with self._lock:
            return self._state.unauthorized

    @property
    def callbacks(self) -> list[Callback]:
        with self._lock:
            return list(self._state.callbacks)

    @property
    def peak_in_flight(self) -> int:
        """The most requests ever being handled at once."""
        with self._lock:
            return self._state.peak_in_flight

    def wait_for_callbacks(self, count: int, timeout: float = 5.0) -> list[Callback]:
        """Block until at least ``count`` callbacks were posted (or fail after ``timeout``)."""
        with self._lock:
            if not self._lock.wait_for(lambda: len(self._state.callbacks) >= count, timeout):
                raise TimeoutError(f"{len(self._state.callbacks)} of {count} callbacks posted")
            return list(self._state.callbacks)

    def state(self) -> dict[str, Any]:
        """Everything recorded, as JSON-ready data (``GET /_test/state``)."""
        with self._lock:
            return {
                "accepted": [asdict(a) for a in self._state.accepted],
                "attempts": dict(self._state.attempts),
                "unauthorized": self._state.unauthorized,
                "callbacks": [asdict(c) for c in self._state.callbacks],
                "peak_in_flight": self._state.peak_in_flight,
            }

    # --- handling (called from the HTTP threads) ----------------------------------------

    def handle(
        self,
        account: str,
        resource: str,
        params: dict[str, list[str]],
        arrived: float | None = None,
    ) -> dict[str, Any]:
        """Validate, apply the script, record, and build the 201 body; or raise TwilioError.

        ``arrived``: when the request's headers were read, the moment a provider's rate
        limit counts; stamped before this server's own work, so that its threads' delays
        are not taken for the client's bunching."""
        arrived = time.time() if arrived is None else arrived
        single = {k: v[0] for k, v in params.items()}
        to = single.get("To", "")
        self._enter(to)
        try:
            if self.latency:
                time.sleep(self.latency)
            if resource == "Messages":
                _validate_message(single)
            else:
                _validate_call(single)
            self._scripted_error(resource, to)
            sid = ("SM" if resource == "Messages" else "CA") + secrets.token_hex(16)
            record = Accepted(resource, sid, account, to, params, arrived)
            with self._lock:
                self._state.accepted.append(record)
        finally:
            self._leave()
        self._queue_callbacks(record)
        return _message_json(record) if resource == "Messages" else _call_json(record)

    def refused(self) -> None:
        with self._lock:
            self._state.unauthorized += 1

    def _enter(self, to: str) -> None:
        with self._lock:
            self._state.attempts[to] += 1
            self._state.in_flight += 1
            self._state.peak_in_flight = max(self._state.peak_in_flight, self._state.in_flight)

    def _leave(self) -> None:
        with self._lock:
            self._state.in_flight -= 1

    def _scripted_error(self, resource: str, to: str) -> None:
        with self._lock:
            script = self._state.errors.get(to)
            if script is not None and script.times is not None:
                script.times -= 1
                if script.times <= 0:
                    del self._state.errors[to]
        if script is None and to in MAGIC_ERRORS[resource]:
            script = ErrorScript(MAGIC_ERRORS[resource][to])
        if script is not None:
            raise TwilioError(
                script.code, script.http_status, script.retry_after, script.message, to=to
            )

    # --- status callbacks ----------------------------------------------------------------

    def _queue_callbacks(self, record: Accepted) -> None:
        url = record.param("StatusCallback")
        if not url:
            return
        with self._lock:
            scripted = self._state.finals.get(record.to)
        if record.resource == "Messages":
            updates = _message_callbacks(record, scripted)
        else:
            updates = _call_callbacks(record, scripted)
        for params in updates:
            self._outbox.put((url, params))

    def _post_callbacks(self) -> None:
        """One thread posts every callback in order, as Twilio would, signed."""
        validator = RequestValidator(self.auth_token)
        with httpx.Client(timeout=5.0, headers={"User-Agent": "TwilioProxy/1.1"}) as http:
            while (item := self._outbox.get()) is not None:
                url, params = item
                if self.callback_delay:
                    time.sleep(self.callback_delay)
                signature = validator.compute_signature(url, params)
                status: int | None
                try:
                    reply = http.post(url, data=params, headers={"X-Twilio-Signature": signature})
                    status = reply.status_code
                except httpx.HTTPError:
                    status = None
                with self._lock:
                    self._state.callbacks.append(
                        Callback(url, params, signature, status, time.time())
                    )
                    self._lock.notify_all()


# --- validation, as Twilio does it ----------------------------------------------------------


def _validate_message(params: dict[str, str]) -> None:
    to = params.get("To")
    if not to:
        raise TwilioError(21604)
    if not E164.match(to):
        raise TwilioError(21211, to=to)
    if not params.get("From") and not params.get("MessagingServiceSid"):
        raise TwilioError(21603)
    body = params.get("Body")
    if not body and not params.get("MediaUrl") and not params.get("ContentSid"):
        raise TwilioError(21602)
    if body and len(body) > MAX_BODY:
        raise TwilioError(21617)


def _validate_call(params: dict[str, str]) -> None:
    to = params.get("To")
    if not to:
        raise TwilioError(21201)
    if not params.get("From"):
        raise TwilioError(21213)
    if not E164.match(to):
        raise TwilioError(21217, to=to)
    if not (params.get("Twiml") or params.get("Url") or params.get("ApplicationSid")):
        raise TwilioError(21205)
    if len(params.get("Twiml", "")) > MAX_TWIML:
        raise TwilioError(32018)


# --- response bodies (shapes of the OpenAPI description) -------------------------------------


def _now() -> str:
    return format_datetime(datetime.now(UTC))


def _uri(record: Accepted, suffix: str = ".json") -> str:
    return f"/{API_VERSION}/Accounts/{record.account_sid}/{record.resource}/{record.sid}{suffix}"


def _message_json(record: Accepted) -> dict[str, Any]:
    now = _now()
    body = record.param("Body") or ""
    return {
        "account_sid": record.account_sid,
        "api_version": API_VERSION,
        "body": body,
        "date_created": now,
        "date_sent": None,
        "date_updated": now,
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": record.param("From"),
        "messaging_service_sid": record.param("MessagingServiceSid"),
        "num_media": "0",
        "num_segments": str(segments(body)),
        "price": None,
        "price_unit": "USD",
        "sid": record.sid,
        "status": "queued",
        "subresource_uris": {"media": _uri(record, "/Media.json")},
        "to": record.to,
        "uri": _uri(record),
    }


def _call_json(record: Accepted) -> dict[str, Any]:
    now = _now()
    sub = {
        "notifications": "Notifications",
        "recordings": "Recordings",
        "payments": "Payments",
        "events": "Events",
        "siprec": "Siprec",
        "streams": "Streams",
        "transcriptions": "Transcriptions",
        "user_defined_message_subscriptions": "UserDefinedMessageSubscriptions",
        "user_defined_messages": "UserDefinedMessages",
    }
    return {
        "account_sid": record.account_sid,
        "answered_by": None,
        "api_version": API_VERSION,
        "caller_name": None,
        "date_created": now,
        "date_updated": now,
        "direction": "outbound-api",
        "duration": None,
        "end_time": None,
        "forwarded_from": None,
        "from": record.param("From"),
        "from_formatted": record.param("From"),
        "group_sid": None,
        "parent_call_sid": None,
        "phone_number_sid": None,
        "price": None,
        "price_unit": "USD",
        "queue_time": "0",
        "sid": record.sid,
        "start_time": None,
        "status": "queued",
        "subresource_uris": {key: _uri(record, f"/{name}.json") for key, name in sub.items()},
        "to": record.to,
        "to_formatted": record.to,
        "trunk_sid": None,
        "uri": _uri(record),
    }


# --- callback bodies -------------------------------------------------------------------------


def _message_callbacks(
    record: Accepted, scripted: tuple[str, int | None] | None
) -> list[dict[str, str]]:
    """``sent`` then the final status (a message that ``failed`` was never sent)."""
    final, code = scripted if scripted and scripted[0] in MESSAGE_FINALS else ("delivered", None)
    base = {
        "AccountSid": record.account_sid,
        "ApiVersion": API_VERSION,
        "From": record.param("From") or SERVICE_NUMBER,
        "To": record.to,
        "MessageSid": record.sid,
        "SmsSid": record.sid,
    }
    if record.param("MessagingServiceSid"):
        base["MessagingServiceSid"] = record.param("MessagingServiceSid") or ""
    statuses = [final] if final == "failed" else ["sent", final]
    updates = [base | {"MessageStatus": s, "SmsStatus": s} for s in statuses]
    if final in DEFAULT_FINAL_ERRORS:
        updates[-1]["ErrorCode"] = str(code or DEFAULT_FINAL_ERRORS[final])
    return updates


def _call_callbacks(
    record: Accepted, scripted: tuple[str, int | None] | None
) -> list[dict[str, str]]:
    """The events asked for in ``StatusCallbackEvent`` (default: the final status only)."""
    final = scripted[0] if scripted and scripted[0] in CALL_FINALS else "completed"
    asked = set(record.params.get("StatusCallbackEvent") or ["completed"])
    steps = [("initiated", "initiated"), ("ringing", "ringing")]
    if final == "completed":
        steps.append(("answered", "in-progress"))
    steps.append(("completed", final))
    base = {
        "AccountSid": record.account_sid,
        "ApiVersion": API_VERSION,
        "CallSid": record.sid,
        "Direction": "outbound-api",
        "From": record.param("From") or "",
        "Caller": record.param("From") or "",
        "To": record.to,
        "Called": record.to,
        "CallbackSource": "call-progress-events",
    }
    updates = []
    for number, (event, status) in enumerate(s for s in steps if s[0] in asked):
        update = base | {"CallStatus": status, "SequenceNumber": str(number), "Timestamp": _now()}
        if event == "completed":
            duration = "12" if status == "completed" else "0"
            update |= {"CallDuration": duration, "Duration": duration}
            update["SipResponseCode"] = SIP_CODES[status]
        updates.append(update)
    return updates


# --- HTTP ------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "TwilioStandIn/1.0"
    # Headers and body go out in separate writes; with Nagle on, each reply then waits for
    # the client's delayed ACK (~40 ms), capping the stand-in near 90 requests a second.
    disable_nagle_algorithm = True

    @property
    def twilio(self) -> TwilioServer:
        return self.server.twilio  # type: ignore[attr-defined,no-any-return]

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: request lines would put phone numbers in the test output."""

    def do_GET(self) -> None:
        if self.path == "/_test/state":
            self._reply(200, self.twilio.state())
        else:
            self._error(TwilioError(20404, 404, path=self.path))

    def do_POST(self) -> None:
        arrived = time.time()
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.startswith("/_test/"):
            self._admin(self.path, raw)
            return
        route = ROUTE.match(urlparse(self.path).path)
        account = route["account"] if route else ""
        if not self._authenticated(account):
            self.twilio.refused()
            self._error(TwilioError(20003, 401), {"WWW-Authenticate": 'Basic realm="Twilio API"'})
            return
        if route is None:
            self._error(TwilioError(20404, 404, path=self.path))
            return
        params = parse_qs(raw.decode(), keep_blank_values=True)
        try:
            body = self.twilio.handle(account, route["resource"], params, arrived)
        except TwilioError as exc:
            headers = {"Retry-After": exc.retry_after} if exc.retry_after else {}
            self._error(exc, headers)
            return
        self._reply(201, body)

    def _authenticated(self, account: str) -> bool:
        scheme, _, encoded = (self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return bool(account) and user == account and password == self.twilio.auth_token

    def _admin(self, path: str, raw: bytes) -> None:
        if path == "/_test/reset":
            self.twilio.reset()
        elif path == "/_test/behaviour":
            order = json.loads(raw or b"{}")
            if order.get("error"):
                self.twilio.error(
                    order["to"],
                    int(order["error"]),
                    http_status=int(order.get("http_status", 400)),
                    retry_after=order.get("retry_after"),
                    times=order.get("times"),
                    message=order.get("message"),
                )
            if order.get("final"):
                self.twilio.final(order["to"], order["final"], error_code=order.get("final_error"))
        else:
            self._reply(404, {"message": "unknown test endpoint"})
            return
        self._reply(200, {"ok": True})

    def _error(self, exc: TwilioError, headers: dict[str, str] | None = None) -> None:
        self._reply(exc.http_status, exc.body(), headers)

    def _reply(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Twilio-Request-Id", "RQ" + secrets.token_hex(16))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)


def _pairs(values: list[str], what: str) -> list[tuple[str, str]]:
    pairs = []
    for value in values:
        number, sep, setting = value.partition("=")
        if not sep:
            raise SystemExit(f"--{what} takes NUMBER=VALUE, got {value!r}")
        pairs.append((number, setting))
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description="A local Twilio REST API stand-in.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--auth-token", default="test-auth-token")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    parser.add_argument("--callback-delay", type=float, default=0.0)
    parser.add_argument("--error", action="append", default=[], help="NUMBER=CODE[:HTTP]")
    parser.add_argument("--throttle", action="append", default=[], help="NUMBER=RETRY_AFTER")
    parser.add_argument("--outage", action="append", default=[], help="NUMBER=HTTP_STATUS")
    parser.add_argument("--final", action="append", default=[], help="NUMBER=STATUS")
    args = parser.parse_args()

    server = TwilioServer(
        auth_token=args.auth_token,
        host=args.host,
        port=args.port,
        latency=args.latency,
        callback_delay=args.callback_delay,
    )
    for number, setting in _pairs(args.error, "error"):
        code, _, http_status = setting.partition(":")
        server.error(number, int(code), http_status=int(http_status or 400))
    for number, seconds in _pairs(args.throttle, "throttle"):
        server.throttle(number, retry_after=seconds)
    for number, http_status in _pairs(args.outage, "outage"):
        server.outage(number, http_status=int(http_status))
    for number, status in _pairs(args.final, "final"):
        server.final(number, status)
    server.start()
    print(server.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()


def twilio_arguments(
    server: TwilioServer, account: str, token: str, sender: str, **options: object
) -> dict[str, object]:
    """Keyword arguments for our Twilio adapters, pointed at ``server``."""
    return {
        "account_sid": account,
        "auth_token": token,
        "from_number": sender,
        "base_url": server.url,
        "timeout": 5.0,
        **options,
    }
