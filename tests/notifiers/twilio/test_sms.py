"""The Twilio SMS notifier: the real ``twilio`` SDK against the local Twilio stand-in."""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest

from breachflow.models.delivery import Channel, DeliveryResult, DeliveryStatus, OutboundMessage
from breachflow.notifiers.twilio.sms import TwilioSmsNotifier
from tests.notifiers.test_segments import CHINESE_NOTICE, CHINESE_SHORT, LINK
from tests.testkit.factories import deliver
from tests.testkit.twilio_server import TwilioServer, twilio_arguments

ACCOUNT = "AC" + "5e" * 16
TOKEN = "test-auth-token-4f9a"
FROM = "+15005550006"
SERVICE = "MG" + "7c" * 16


@pytest.fixture
def twilio() -> Iterator[TwilioServer]:
    with TwilioServer(auth_token=TOKEN) as server:
        yield server


def number(n: int) -> str:
    return f"+1555010{n:04d}"


def sms(n: int, recipient: str | None = None, **overrides: object) -> OutboundMessage:
    fields: dict[str, object] = {
        "notification_id": n,
        "message_id": f"INC-2026-0001-{n}-sms-v1",
        "channel": Channel.SMS,
        "recipient": recipient or number(n),
        "locale": "en",
        "subject": "Security incident",
        "text": f"Example Ltd: a security incident involved your data (ref {n}).",
        "short_text": "Example Ltd: a security incident involved your data. Read more: https://x.example/n",
    }
    fields.update(overrides)
    return OutboundMessage.model_validate(fields)


def notifier_for(server: TwilioServer, **options: object) -> TwilioSmsNotifier:
    return TwilioSmsNotifier(**twilio_arguments(server, ACCOUNT, TOKEN, FROM, **options))  # type: ignore[arg-type]


def send(notifier: TwilioSmsNotifier, batch: list[OutboundMessage]) -> dict[int, DeliveryResult]:
    return deliver(notifier, batch)


def assert_hides(result: DeliveryResult, phone: str) -> None:
    """The detail quotes no form of the number: not E.164, not its digits, not its tail."""
    assert result.detail
    for form in (phone, phone.lstrip("+"), phone[-7:]):
        assert form not in result.detail


class CountingPacer:
    """Records when it was awaited and departed from; breaks after ``fail_after`` waits when
    asked to."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.waits: list[float] = []
        self.departures: list[float] = []
        self.fail_after = fail_after

    async def wait(self) -> float:
        if self.fail_after is not None and len(self.waits) >= self.fail_after:
            raise ConnectionError("rate limiter store unreachable")
        self.waits.append(time.time())
        await asyncio.sleep(0.01)
        return self.waits[-1]

    def depart(self, slot: float) -> float:
        assert slot == self.waits[len(self.departures)]  # the slot its own wait gave
        self.departures.append(time.time())
        return self.departures[-1]


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- accepted --------------------------------------------------------------------------


def test_accepted_messages_are_sent_with_their_sids(twilio: TwilioServer) -> None:
    """Each message is posted once with To/From/Body; its result carries Twilio's SM SID."""
    batch = [sms(n) for n in (1, 2, 3)]
    results = send(notifier_for(twilio), batch)

    assert {r.status for r in results.values()} == {DeliveryStatus.SENT}
    accepted = {a.to: a for a in twilio.accepted}
    assert set(accepted) == {m.recipient for m in batch}
    for msg in batch:
        request = accepted[msg.recipient]
        assert re.fullmatch(r"SM[0-9a-f]{32}", request.sid)
        assert results[msg.notification_id].provider_message_id == request.sid
        assert request.account_sid == ACCOUNT
        assert request.param("From") == FROM
        assert request.param("Body") == msg.text
        assert request.param("MessagingServiceSid") is None
        assert request.param("StatusCallback") is None


def test_a_messaging_service_sends_without_a_from_number(twilio: TwilioServer) -> None:
    notifier = notifier_for(twilio, from_number=None, messaging_service_sid=SERVICE)
    [result] = send(notifier, [sms(1)]).values()
    assert result.status is DeliveryStatus.SENT
    [request] = twilio.accepted
    assert request.param("MessagingServiceSid") == SERVICE
    assert request.param("From") is None


@pytest.mark.parametrize(
    "senders",
    [{}, {"from_number": FROM, "messaging_service_sid": SERVICE}],
    ids=["neither", "both"],
)
def test_exactly_one_sender_is_required(senders: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        TwilioSmsNotifier(account_sid=ACCOUNT, auth_token=TOKEN, **senders)


def test_the_status_callback_is_requested_when_configured(twilio: TwilioServer) -> None:
    callback = "https://breach.example.com/hooks/twilio/status"
    send(notifier_for(twilio, status_callback=callback), [sms(1)])
    [request] = twilio.accepted
    assert request.param("StatusCallback") == callback


def test_a_long_chinese_notice_is_replaced_by_the_short_text(twilio: TwilioServer) -> None:
    """Over the 3-segment budget the short text (with the link) goes out instead."""
    batch = [
        sms(1, locale="zh-CN", text=CHINESE_NOTICE, short_text=CHINESE_SHORT),
        sms(2, text="Short enough.", short_text="never used"),
    ]
    results = send(notifier_for(twilio, segment_budget=3), batch)

    assert {r.status for r in results.values()} == {DeliveryStatus.SENT}
    bodies = {a.to: a.param("Body") for a in twilio.accepted}
    assert bodies[number(1)] == CHINESE_SHORT
    assert LINK in bodies[number(1)]
    assert bodies[number(2)] == "Short enough."


def test_an_empty_batch_sends_nothing(twilio: TwilioServer) -> None:
    assert asyncio.run(notifier_for(twilio).send([])) == []
    assert twilio.accepted == []


# --- refused numbers -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phone", "code", "dead"),
    [
        ("+15005550001", 21211, True),  # Twilio's magic numbers for test credentials
        ("+15005550009", 21614, False),
        ("+15005550004", 21610, False),
        ("+15005550002", 21612, False),
        ("+15005550003", 21408, False),
    ],
)
def test_number_errors_fail_permanently(
    twilio: TwilioServer, phone: str, code: int, dead: bool
) -> None:
    """The person is unreachable on this channel; only an invalid number is a dead contact."""
    results = send(notifier_for(twilio), [sms(1, recipient=phone), sms(2)])

    failed = results[1]
    assert failed.status is DeliveryStatus.FAILED_PERMANENT
    assert failed.provider_message_id is None
    assert failed.detail and failed.detail.startswith(f"twilio error {code}:")
    assert failed.contact_dead is dead
    assert_hides(failed, phone)
    assert results[2].status is DeliveryStatus.SENT
    assert twilio.attempts[phone] == 1


def test_an_unknown_error_code_keeps_twilios_words_but_not_the_number(
    twilio: TwilioServer,
) -> None:
    phone = number(7)
    twilio.error(phone, 21999, message="The number {to} cannot receive this message type")
    [result] = send(notifier_for(twilio), [sms(7)]).values()
    assert result.status is DeliveryStatus.FAILED_PERMANENT
    assert not result.contact_dead
    assert result.detail == (
        "twilio error 21999 (HTTP 400): The number <number> cannot receive this message type"
    )
    assert_hides(result, phone)


def test_an_empty_body_is_refused_as_twilio_refuses_it(twilio: TwilioServer) -> None:
    [result] = send(notifier_for(twilio), [sms(1, text="", short_text=None)]).values()
    assert result.status is DeliveryStatus.FAILED_PERMANENT
    assert result.detail and result.detail.startswith("twilio error 21602")


# --- the provider in trouble -----------------------------------------------------------


def test_a_429_is_temporary_and_keeps_retry_after(twilio: TwilioServer) -> None:
    twilio.throttle(number(2), retry_after="17")
    results = send(notifier_for(twilio), [sms(1), sms(2), sms(3)])

    assert results[2].status is DeliveryStatus.FAILED_TEMPORARY
    assert results[2].retry_after == 17.0
    assert results[2].detail and "429" in results[2].detail
    assert_hides(results[2], number(2))
    assert results[1].status is results[3].status is DeliveryStatus.SENT


def test_retry_after_may_be_an_http_date(twilio: TwilioServer) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    twilio.throttle(number(1), retry_after=when)
    [result] = send(notifier_for(twilio), [sms(1)]).values()
    assert result.status is DeliveryStatus.FAILED_TEMPORARY
    assert result.retry_after is not None and 100 < result.retry_after <= 120


def test_a_500_is_temporary_without_retry_after(twilio: TwilioServer) -> None:
    twilio.outage(number(1), http_status=500, times=1)
    notifier = notifier_for(twilio)
    [first] = send(notifier, [sms(1)]).values()
    assert first.status is DeliveryStatus.FAILED_TEMPORARY
    assert first.retry_after is None
    assert first.detail and "500" in first.detail
    [retried] = send(notifier, [sms(1)]).values()  # the outage was for one request
    assert retried.status is DeliveryStatus.SENT
    assert twilio.attempts[number(1)] == 2


def test_refused_credentials_defer_the_batch_after_one_request(twilio: TwilioServer) -> None:
    """A 401 says nothing about the people: all deferred, and only one request was spent."""
    notifier = notifier_for(twilio, auth_token="wrong-token", concurrency=1)
    results = send(notifier, [sms(n) for n in range(1, 6)])

    assert {r.status for r in results.values()} == {DeliveryStatus.DEFERRED}
    assert all("20003" in (r.detail or "") for r in results.values())
    assert all("wrong-token" not in (r.detail or "") for r in results.values())
    assert twilio.unauthorized == 1
    assert twilio.accepted == []


def test_an_unreachable_api_defers_every_message() -> None:
    """Nothing listens: the provider is down, not the people, so DEFERRED, not temporary.

    A temporary failure would charge every person an attempt (and, after a few runs, move
    them down their channel chain) for an outage of ours or Twilio's; deferred stops the
    run so it can be resumed once Twilio is back, and nothing could have been sent.
    """
    notifier = TwilioSmsNotifier(
        account_sid=ACCOUNT,
        auth_token=TOKEN,
        from_number=FROM,
        base_url=f"http://127.0.0.1:{unused_port()}",
        timeout=2.0,
        concurrency=3,
    )
    results = send(notifier, [sms(n) for n in range(1, 8)])
    for result in results.values():
        assert result.status is DeliveryStatus.DEFERRED
        assert result.detail and "unreachable" in result.detail


def test_no_answer_in_time_is_temporary_not_deferred() -> None:
    """The request reached Twilio and may have been accepted: charged as a temporary failure."""
    with TwilioServer(auth_token=TOKEN, latency=1.0) as slow:
        [result] = send(notifier_for(slow, timeout=0.3), [sms(1)]).values()
    assert result.status is DeliveryStatus.FAILED_TEMPORARY
    assert result.detail and "no answer" in result.detail


# --- pacing and concurrency ----------------------------------------------------------------


def test_the_pacer_is_awaited_once_right_before_each_request(twilio: TwilioServer) -> None:
    """With one worker: wait, depart, request, wait, depart, request... one of each per
    request, the departure in the sending thread after the wait."""
    pacer = CountingPacer()
    send(notifier_for(twilio, pacer=pacer, concurrency=1), [sms(n) for n in range(1, 6)])

    accepted = sorted(a.at for a in twilio.accepted)
    assert len(pacer.waits) == len(pacer.departures) == len(accepted) == 5
    for i, at in enumerate(accepted):
        assert pacer.waits[i] <= pacer.departures[i] <= at
        if i + 1 < len(pacer.waits):
            assert at <= pacer.waits[i + 1]


def test_the_pacer_is_not_awaited_for_messages_never_tried(twilio: TwilioServer) -> None:
    pacer = CountingPacer()
    notifier = notifier_for(twilio, auth_token="wrong-token", pacer=pacer, concurrency=1)
    send(notifier, [sms(n) for n in range(1, 5)])
    assert len(pacer.waits) == len(pacer.departures) == twilio.unauthorized == 1


def test_a_broken_pacer_defers_the_rest_and_keeps_what_was_sent(twilio: TwilioServer) -> None:
    """Raising would lose the results of messages already sent (and resend them)."""
    pacer = CountingPacer(fail_after=2)
    results = send(notifier_for(twilio, pacer=pacer, concurrency=1), [sms(n) for n in (1, 2, 3, 4)])
    statuses = [results[n].status for n in (1, 2, 3, 4)]
    assert statuses == [DeliveryStatus.SENT] * 2 + [DeliveryStatus.DEFERRED] * 2
    assert len(twilio.accepted) == 2


def test_concurrency_bounds_the_requests_in_flight() -> None:
    """Slow answers: 9 messages over 3 workers never have more than 3 requests open."""
    with TwilioServer(auth_token=TOKEN, latency=0.15) as slow:
        results = send(notifier_for(slow, concurrency=3), [sms(n) for n in range(1, 10)])
        assert {r.status for r in results.values()} == {DeliveryStatus.SENT}
        assert slow.peak_in_flight == 3
        assert len({a.sid for a in slow.accepted}) == 9


# --- the stand-in itself ----------------------------------------------------------------------


def test_the_stand_in_validates_and_replies_like_twilio(twilio: TwilioServer) -> None:
    """Twilio's error body and codes for missing parameters and bad credentials."""
    messages = f"{twilio.url}/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
    calls = f"{twilio.url}/2010-04-01/Accounts/{ACCOUNT}/Calls.json"
    auth = (ACCOUNT, TOKEN)
    cases = [
        (messages, {"From": FROM, "Body": "x"}, 21604),
        (messages, {"To": number(1), "Body": "x"}, 21603),
        (messages, {"To": number(1), "From": FROM}, 21602),
        (messages, {"To": number(1), "From": FROM, "Body": "x" * 1601}, 21617),
        (calls, {"To": number(1), "From": FROM}, 21205),
        (calls, {"To": number(1)}, 21213),
    ]
    for url, form, code in cases:
        reply = httpx.post(url, data=form, auth=auth)
        assert reply.status_code == 400
        assert reply.json() == {
            "code": code,
            "message": reply.json()["message"],
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": 400,
        }
    refused = httpx.post(messages, data={"To": number(1)}, auth=(ACCOUNT, "nope"))
    assert refused.status_code == 401
    assert refused.json()["code"] == 20003
    created = httpx.post(
        messages, data={"To": number(1), "From": FROM, "Body": "é" * 161}, auth=auth
    )
    assert created.status_code == 201
    body = created.json()
    assert (body["status"], body["num_segments"], body["direction"]) == (
        "queued",
        "2",
        "outbound-api",
    )
    assert body["uri"] == f"/2010-04-01/Accounts/{ACCOUNT}/Messages/{body['sid']}.json"


@pytest.mark.slow
def test_the_stand_in_runs_as_a_process_for_the_benchmark() -> None:
    """``python tests/testkit/twilio_server.py`` prints its URL, serves the SDK, takes scripts from
    its command line and ``/_test/behaviour``, and reports ``/_test/state``."""
    script = Path(__file__).resolve().parents[2] / "testkit" / "twilio_server.py"
    server = subprocess.Popen(
        [
            sys.executable,
            str(script),
            "--port",
            "0",
            "--auth-token",
            TOKEN,
            "--error",
            f"{number(3)}=21211",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        notifier = TwilioSmsNotifier(
            account_sid=ACCOUNT, auth_token=TOKEN, from_number=FROM, base_url=url
        )
        order = {"to": number(2), "error": 429, "http_status": 429, "retry_after": "9"}
        assert httpx.post(f"{url}/_test/behaviour", json=order).status_code == 200
        results = send(notifier, [sms(1), sms(2), sms(3)])
        assert results[1].status is DeliveryStatus.SENT
        assert (results[2].status, results[2].retry_after) == (DeliveryStatus.FAILED_TEMPORARY, 9)
        assert results[3].status is DeliveryStatus.FAILED_PERMANENT
        state = httpx.get(f"{url}/_test/state").json()
        assert [a["sid"] for a in state["accepted"]] == [results[1].provider_message_id]
        assert state["attempts"] == {number(1): 1, number(2): 1, number(3): 1}
    finally:
        server.terminate()
        server.wait(timeout=10)
