"""Twilio status callbacks: signed by the stand-in, received over HTTP, verified, normalized."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import pytest
from twilio.request_validator import RequestValidator

from breachflow.models.delivery import Channel, OutboundMessage, ProviderEvent, ProviderEventStatus
from breachflow.models.errors import BreachError
from breachflow.notifiers.twilio.sms import TwilioSmsNotifier
from breachflow.notifiers.twilio.status import InvalidSignature, twilio_event
from breachflow.notifiers.twilio.voice import TwilioVoiceNotifier
from tests.testkit.twilio_server import TwilioServer

ACCOUNT = "AC" + "9b" * 16
TOKEN = "callback-test-token"
FROM = "+15005550006"
PHONE = "+15550300001"
HOOK = "https://breach.example.com/hooks/twilio/status?incident=INC-2026-0007"


@dataclass
class Received:
    url: str
    params: dict[str, str]
    signature: str | None


class Receiver:
    """Our webhook endpoint on 127.0.0.1: keeps each POST and answers an empty TwiML."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                host, port = self.server.server_address[:2]
                receiver.received.append(
                    Received(
                        url=f"http://{host}:{port}{self.path}",
                        params=dict(parse_qsl(raw.decode(), keep_blank_values=True)),
                        signature=self.headers.get("X-Twilio-Signature"),
                    )
                )
                self.send_response(200)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", "11")
                self.end_headers()
                self.wfile.write(b"<Response/>")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hooks = Receiver()
    hooks.thread.start()
    try:
        yield hooks
    finally:
        hooks.httpd.shutdown()
        hooks.httpd.server_close()


@pytest.fixture
def twilio() -> Iterator[TwilioServer]:
    with TwilioServer(auth_token=TOKEN) as server:
        yield server


def outbound(channel: Channel) -> OutboundMessage:
    return OutboundMessage(
        notification_id=1,
        message_id="INC-2026-0007-1-v1",
        channel=channel,
        recipient=PHONE,
        locale="en",
        subject="Security incident",
        text="Example Limited: a security incident involved your personal data.",
    )


def send_sms(twilio: TwilioServer, callback: str) -> str:
    notifier = TwilioSmsNotifier(
        account_sid=ACCOUNT,
        auth_token=TOKEN,
        from_number=FROM,
        status_callback=callback,
        base_url=twilio.url,
    )
    [result] = asyncio.run(notifier.send([outbound(Channel.SMS)]))
    assert result.provider_message_id
    return result.provider_message_id


def place_call(twilio: TwilioServer, callback: str) -> str:
    notifier = TwilioVoiceNotifier(
        account_sid=ACCOUNT,
        auth_token=TOKEN,
        from_number=FROM,
        status_callback=callback,
        base_url=twilio.url,
    )
    [result] = asyncio.run(notifier.send([outbound(Channel.VOICE)]))
    assert result.provider_message_id
    return result.provider_message_id


def events(received: list[Received], token: str = TOKEN) -> list[ProviderEvent | None]:
    return [twilio_event(r.url, r.params, r.signature, token) for r in received]


# --- real callbacks over HTTP ----------------------------------------------------------------


def test_a_delivered_sms_reports_sent_then_delivered(
    twilio: TwilioServer, receiver: Receiver
) -> None:
    """The receiver gets two signed POSTs; 'sent' records nothing, 'delivered' is DELIVERED."""
    sid = send_sms(twilio, f"{receiver.url}/hooks/twilio/status?incident=INC-2026-0007")
    posted = twilio.wait_for_callbacks(2)

    assert [c.status for c in posted] == [200, 200]
    assert [r.params["MessageStatus"] for r in receiver.received] == ["sent", "delivered"]
    assert all(r.signature for r in receiver.received)
    assert events(receiver.received) == [
        None,
        ProviderEvent(provider_message_id=sid, status=ProviderEventStatus.DELIVERED),
    ]


def test_an_undelivered_sms_is_a_permanent_failure_with_twilios_code(
    twilio: TwilioServer, receiver: Receiver
) -> None:
    twilio.final(PHONE, "undelivered", error_code=30005)
    sid = send_sms(twilio, f"{receiver.url}/hooks/twilio/status")
    twilio.wait_for_callbacks(2)

    final = events(receiver.received)[-1]
    assert final == ProviderEvent(
        provider_message_id=sid,
        status=ProviderEventStatus.FAILED_PERMANENT,
        detail="twilio error 30005",
    )


@pytest.mark.parametrize(
    ("outcome", "status", "detail"),
    [
        ("completed", ProviderEventStatus.DELIVERED, None),
        ("busy", ProviderEventStatus.FAILED_TEMPORARY, "call busy"),
        ("no-answer", ProviderEventStatus.FAILED_TEMPORARY, "call not answered"),
        ("failed", ProviderEventStatus.FAILED_PERMANENT, "call failed (SIP 404)"),
    ],
)
def test_a_call_reports_its_final_status(
    twilio: TwilioServer,
    receiver: Receiver,
    outcome: str,
    status: ProviderEventStatus,
    detail: str | None,
) -> None:
    twilio.final(PHONE, outcome)
    sid = place_call(twilio, f"{receiver.url}/hooks/twilio/call-status")
    twilio.wait_for_callbacks(1)

    [received] = receiver.received
    assert received.params["CallStatus"] == outcome
    assert events(receiver.received) == [
        ProviderEvent(provider_message_id=sid, status=status, detail=detail)
    ]


def test_tampered_or_forged_callbacks_are_refused(twilio: TwilioServer, receiver: Receiver) -> None:
    """A changed parameter, another token, another URL or no signature: InvalidSignature."""
    twilio.final(PHONE, "undelivered")
    send_sms(twilio, f"{receiver.url}/hooks/twilio/status")
    twilio.wait_for_callbacks(2)
    real = receiver.received[-1]
    assert twilio_event(real.url, real.params, real.signature, TOKEN) is not None

    forged_params = real.params | {"MessageStatus": "delivered"}
    forgeries = [
        (real.url, forged_params, real.signature, TOKEN),
        (real.url, real.params, real.signature, "another-accounts-token"),
        (real.url.replace("/status", "/other"), real.params, real.signature, TOKEN),
        (real.url, real.params, None, TOKEN),
        (real.url, real.params, "", TOKEN),
    ]
    for url, params, signature, token in forgeries:
        with pytest.raises(InvalidSignature) as refused:
            twilio_event(url, params, signature, token)
        assert isinstance(refused.value, BreachError)
        assert PHONE.lstrip("+") not in str(refused.value)


# --- the mapping ---------------------------------------------------------------------------------


def signed(params: dict[str, str]) -> tuple[dict[str, str], str]:
    """Params as Twilio would send them to HOOK, with Twilio's signature."""
    full = {"AccountSid": ACCOUNT, "ApiVersion": "2010-04-01", "To": PHONE, "From": FROM} | params
    return full, RequestValidator(TOKEN).compute_signature(HOOK, full)


SM = "SM" + "ab" * 16
CA = "CA" + "cd" * 16


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        *(({"MessageSid": SM, "MessageStatus": s}, None) for s in ("queued", "sending", "sent")),
        *(({"MessageSid": SM, "MessageStatus": s}, None) for s in ("accepted", "scheduled")),
        (
            {"MessageSid": SM, "MessageStatus": "delivered"},
            ProviderEvent(provider_message_id=SM, status=ProviderEventStatus.DELIVERED),
        ),
        (
            {"MessageSid": SM, "MessageStatus": "undelivered", "ErrorCode": "30003"},
            ProviderEvent(
                provider_message_id=SM,
                status=ProviderEventStatus.FAILED_PERMANENT,
                detail="twilio error 30003",
            ),
        ),
        (
            {"MessageSid": SM, "MessageStatus": "failed"},
            ProviderEvent(
                provider_message_id=SM,
                status=ProviderEventStatus.FAILED_PERMANENT,
                detail="message failed",
            ),
        ),
        *(({"CallSid": CA, "CallStatus": s}, None) for s in ("initiated", "ringing", "queued")),
        ({"CallSid": CA, "CallStatus": "in-progress"}, None),
        (
            {"CallSid": CA, "CallStatus": "completed", "CallDuration": "31"},
            ProviderEvent(provider_message_id=CA, status=ProviderEventStatus.DELIVERED),
        ),
        (
            {"CallSid": CA, "CallStatus": "busy"},
            ProviderEvent(
                provider_message_id=CA,
                status=ProviderEventStatus.FAILED_TEMPORARY,
                detail="call busy",
            ),
        ),
        (
            {"CallSid": CA, "CallStatus": "no-answer"},
            ProviderEvent(
                provider_message_id=CA,
                status=ProviderEventStatus.FAILED_TEMPORARY,
                detail="call not answered",
            ),
        ),
        (
            {"CallSid": CA, "CallStatus": "failed"},
            ProviderEvent(
                provider_message_id=CA,
                status=ProviderEventStatus.FAILED_PERMANENT,
                detail="call failed",
            ),
        ),
        (
            {"CallSid": CA, "CallStatus": "canceled"},
            ProviderEvent(
                provider_message_id=CA,
                status=ProviderEventStatus.FAILED_PERMANENT,
                detail="call canceled",
            ),
        ),
        ({"MessageSid": SM, "SmsStatus": "received", "Body": "STOP"}, None),  # not a status
    ],
)
def test_statuses_map_to_the_ledgers_vocabulary(
    params: dict[str, str], expected: ProviderEvent | None
) -> None:
    full, signature = signed(params)
    assert twilio_event(HOOK, full, signature, TOKEN) == expected


def test_the_signature_holds_with_or_without_the_default_port() -> None:
    """Twilio may sign https://host/... while the request arrives as https://host:443/..."""
    full, signature = signed({"CallSid": CA, "CallStatus": "completed"})
    with_port = HOOK.replace("breach.example.com", "breach.example.com:443")
    event = twilio_event(with_port, full, signature, TOKEN)
    assert event is not None and event.status is ProviderEventStatus.DELIVERED
