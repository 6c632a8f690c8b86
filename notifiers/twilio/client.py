"""What the Twilio SMS and voice notifiers share: clients, a bounded pool, and outcomes.

The ``twilio`` SDK is synchronous, so each request runs in a thread of a pool bounded by
``concurrency``; every worker borrows its own Client (and HTTP session), which is how the
headers of its last response (``Retry-After``) can be read after the SDK raised. Clients
are kept for the process's life (``ClientPool``), so each batch finds its connections open.

Twilio's answers are normalized per message:

* HTTP 429 and 5xx: ``failed_temporary``, with the server's ``Retry-After``.
* The request was sent but no answer came (read timeout, connection dropped):
  ``failed_temporary``; Twilio may have accepted it, nobody can tell.
* Twilio could not be used at all (not reachable, our credentials or account refused,
  our sender rejected): ``deferred``. That says nothing about the person, and every
  message after it would meet the same refusal, so the rest of the batch is deferred
  without being tried.
* An error code about the number (invalid, not a mobile, unsubscribed...):
  ``failed_permanent``; ``contact_dead`` when the number itself is invalid.
* Any other 4xx: ``failed_permanent`` with Twilio's code in the detail.

Details never carry the phone number: known codes get our own wording, and Twilio's own
message (which quotes the number) is used only for unknown codes, with numbers masked.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import cache
from typing import Any, TypeAlias

import requests
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client
from urllib3.exceptions import NewConnectionError

from breachflow.models.delivery import DeliveryResult, DeliveryStatus, OutboundMessage
from breachflow.notifiers.base import Pacer

#: Error codes about the destination: (our wording, whether the number itself is dead).
RECIPIENT_ERRORS: dict[int, tuple[str, bool]] = {
    21211: ("invalid 'To' number", True),
    21217: ("'To' number does not appear to be valid", True),
    21214: ("'To' number cannot be reached", False),
    21215: ("no permission to call the 'To' number's region", False),
    21216: ("'To' number is blocked", False),
    21408: ("no permission to send SMS to the 'To' number's region", False),
    21610: ("the recipient has unsubscribed (replied STOP)", False),
    21612: ("'To' number cannot be reached by SMS", False),
    21614: ("'To' number is not a mobile number", False),
}

#: Error codes about our account or sender: every message would get them, none is the
#: person's fault, so they defer rather than write the whole population off.
ACCOUNT_ERRORS: dict[int, str] = {
    20003: "twilio refused our credentials",
    20005: "our twilio account is not active",
    20404: "twilio resource not found (check the account SID)",
    21210: "our 'From' number is not verified for calls",
    21212: "our 'From' number is invalid",
    21606: "our 'From' number cannot send SMS",
}

TwilioError: TypeAlias = TwilioRestException | TwilioServiceException
#: Makes one Twilio request with the given client and returns the new resource's SID.
Create = Callable[[Client], str]

_PHONE_LIKE = re.compile(r"\+?\d[\d\s().-]{5,}\d")


class GatedSession(requests.Session):
    """Calls ``gate`` just before each request is handed to the connection.

    The pacer's last word (``Pacer.depart``) is taken here rather than before the SDK call:
    the SDK's own work (building, encoding and signing the request) takes milliseconds
    that vary with how busy the interpreter is, and a request that spent them after its
    slot would reach the provider bunched with the next ones."""

    gate: Callable[[], object] | None = None

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        if self.gate is not None:
            self.gate()
        return super().send(request, **kwargs)


class HeaderKeepingHttpClient(TwilioHttpClient):
    """Keeps the last response's headers: ``TwilioRestException`` drops them, and
    ``Retry-After`` is among them. Its session is a ``GatedSession``."""

    def __init__(self, *, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self.session = GatedSession()
        self.last_headers: Mapping[str, str] = {}

    def request(self, *args: Any, **kwargs: Any) -> Response:
        response = super().request(*args, **kwargs)
        self.last_headers = response.headers or {}
        return response


def make_client(
    account_sid: str, auth_token: str, *, base_url: str | None, http: HeaderKeepingHttpClient
) -> Client:
    """A Client on the given HTTP client; ``base_url`` replaces https://api.twilio.com."""
    client = Client(account_sid, auth_token, http_client=http)
    if base_url is not None:
        client.api.base_url = base_url.rstrip("/")
        client.edge = client.region = None  # TWILIO_EDGE would rewrite the host otherwise
    return client


class ClientPool:
    """Twilio clients, each on its own HTTP session, lent to one worker at a time and kept.

    A batch that opened fresh connections would see its first requests arrive late behind
    the TCP (and TLS) handshakes and then bunch up with the next ones: more requests in
    some second than the pacer let go. Kept clients keep their connections open.
    """

    def __init__(
        self, account_sid: str, auth_token: str, base_url: str | None, timeout: float
    ) -> None:
        self.account_sid, self.auth_token = account_sid, auth_token
        self.base_url, self.timeout = base_url, timeout
        self._idle: list[tuple[HeaderKeepingHttpClient, Client]] = []
        self._lock = threading.Lock()

    @contextmanager
    def borrow(self) -> Iterator[tuple[HeaderKeepingHttpClient, Client]]:
        with self._lock:
            pair = self._idle.pop() if self._idle else None
        if pair is None:
            http = HeaderKeepingHttpClient(timeout=self.timeout)
            client = make_client(
                self.account_sid, self.auth_token, base_url=self.base_url, http=http
            )
            pair = (http, client)
        try:
            yield pair
        finally:
            with self._lock:
                self._idle.append(pair)


@cache
def client_pool(
    account_sid: str, auth_token: str, base_url: str | None, timeout: float
) -> ClientPool:
    """The process's pool for one account and endpoint."""
    return ClientPool(account_sid, auth_token, base_url, timeout)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asked us to wait (``Retry-After`` as seconds or an HTTP date)."""
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError):
            return None
    return max(seconds, 0.0)


def scrub(text: str, recipient: str) -> str:
    """Mask the recipient and anything that looks like a phone number in a provider's text."""
    if recipient:
        text = text.replace(recipient, "<number>")
    return _PHONE_LIKE.sub("<number>", text)[:300]


def error_result(
    msg: OutboundMessage, exc: TwilioError, headers: Mapping[str, str]
) -> DeliveryResult:
    """Normalize a Twilio error reply (see the module docstring)."""
    status, code = exc.status, exc.code
    if status == 429 or status >= 500:
        return DeliveryResult(
            notification_id=msg.notification_id,
            status=DeliveryStatus.FAILED_TEMPORARY,
            detail=_describe(exc, msg.recipient),
            retry_after=retry_after(headers),
        )
    if status in (401, 403) or code in ACCOUNT_ERRORS:
        return _result(msg, DeliveryStatus.DEFERRED, _describe(exc, msg.recipient))
    return DeliveryResult(
        notification_id=msg.notification_id,
        status=DeliveryStatus.FAILED_PERMANENT,
        detail=_describe(exc, msg.recipient),
        contact_dead=code in RECIPIENT_ERRORS and RECIPIENT_ERRORS[code][1],
    )


def _describe(exc: TwilioError, recipient: str) -> str:
    status, code = exc.status, exc.code
    if code is None or code == status:
        return f"twilio HTTP {status}"
    known = ACCOUNT_ERRORS.get(code) or RECIPIENT_ERRORS.get(code, ("",))[0]
    if known:
        return f"twilio error {code}: {known}"
    said = exc.msg if isinstance(exc, TwilioRestException) else exc.detail or exc.title
    said = said.removeprefix("Unable to create record: ")
    return f"twilio error {code} (HTTP {status}): {scrub(said, recipient)}"


def transport_result(msg: OutboundMessage, exc: requests.RequestException) -> DeliveryResult:
    """No HTTP answer: deferred when we never reached Twilio, else failed_temporary."""
    if _never_connected(exc):
        return _result(msg, DeliveryStatus.DEFERRED, f"twilio unreachable ({type(exc).__name__})")
    return _result(
        msg,
        DeliveryStatus.FAILED_TEMPORARY,
        f"no answer from twilio ({type(exc).__name__}); it may have been accepted",
    )


def _never_connected(exc: requests.RequestException) -> bool:
    """True when the request cannot have reached Twilio: refused, no DNS, TLS failed."""
    if isinstance(exc, requests.ConnectTimeout | requests.exceptions.SSLError):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(exc, requests.ConnectionError) and isinstance(reason, NewConnectionError)


def _result(msg: OutboundMessage, status: DeliveryStatus, detail: str) -> DeliveryResult:
    return DeliveryResult(notification_id=msg.notification_id, status=status, detail=detail)


@dataclass
class _Run:
    """One batch in flight: what is left, what came back, and why Twilio is unusable."""

    pending: deque[tuple[OutboundMessage, Create]]
    results: list[DeliveryResult] = field(default_factory=list)
    refusal: str | None = None


class TwilioSender:
    """Runs a batch of Twilio requests through ``concurrency`` workers, paced."""

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        base_url: str | None,
        concurrency: int,
        timeout: float,
        pacer: Pacer | None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.clients = client_pool(account_sid, auth_token, base_url, timeout)
        self.concurrency = concurrency
        self.pacer = pacer

    async def send(self, jobs: list[tuple[OutboundMessage, Create]]) -> list[DeliveryResult]:
        """One result per job; a job's ``Create`` runs in a worker thread."""
        if not jobs:
            return []
        run = _Run(pending=deque(jobs))
        workers = min(self.concurrency, len(jobs))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="twilio") as pool:
            await asyncio.gather(*(self._worker(run, pool) for _ in range(workers)))
        return run.results

    async def _worker(self, run: _Run, pool: ThreadPoolExecutor) -> None:
        loop = asyncio.get_running_loop()
        with self.clients.borrow() as (http, client):
            while run.pending:
                msg, create = run.pending.popleft()
                slot = await self._pace(run)
                if run.refusal is not None:
                    run.results.append(_result(msg, DeliveryStatus.DEFERRED, run.refusal))
                    continue
                result = await loop.run_in_executor(
                    pool, _attempt, client, http, msg, create, self.pacer, slot
                )
                if result.status is DeliveryStatus.DEFERRED:
                    run.refusal = result.detail
                run.results.append(result)

    async def _pace(self, run: _Run) -> float | None:
        """Wait for the pacer and return the slot; if it breaks, defer the rest rather than
        lose the results of the messages already sent by raising."""
        if self.pacer is None or run.refusal is not None:
            return None
        try:
            return await self.pacer.wait()
        except Exception as exc:
            run.refusal = f"rate limiter failed ({type(exc).__name__})"
            return None


def _attempt(
    client: Client,
    http: HeaderKeepingHttpClient,
    msg: OutboundMessage,
    create: Create,
    pacer: Pacer | None,
    slot: float | None,
) -> DeliveryResult:
    """One request, in a worker thread; never raises for an outcome Twilio can give."""
    session = http.session
    assert isinstance(session, GatedSession)
    if pacer is not None and slot is not None:
        session.gate = lambda: pacer.depart(slot)
    try:
        sid = create(client)
    except (TwilioRestException, TwilioServiceException) as exc:
        return error_result(msg, exc, http.last_headers)
    except requests.RequestException as exc:
        return transport_result(msg, exc)
    except ValueError as exc:  # a 2xx whose body is not Twilio's JSON
        return _result(
            msg,
            DeliveryStatus.FAILED_TEMPORARY,
            f"unreadable answer from twilio ({type(exc).__name__}); it may have been accepted",
        )
    finally:
        session.gate = None
    return DeliveryResult(
        notification_id=msg.notification_id, status=DeliveryStatus.SENT, provider_message_id=sid
    )
