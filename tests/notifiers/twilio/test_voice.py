"""The Twilio voice notifier: calls with inline TwiML, through the SDK, to the Twilio stand-in."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest

from breachflow.models.delivery import Channel, DeliveryResult, DeliveryStatus, OutboundMessage
from breachflow.notifiers.twilio.voice import TwilioVoiceNotifier
from tests.notifiers.test_segments import CHINESE_NOTICE
from tests.testkit.factories import deliver
from tests.testkit.twilio_server import Accepted, TwilioServer, twilio_arguments

ACCOUNT = "AC" + "3d" * 16
TOKEN = "voice-test-token"
FROM = "+15005550006"


@pytest.fixture
def twilio() -> Iterator[TwilioServer]:
    with TwilioServer(auth_token=TOKEN) as server:
        yield server


def number(n: int) -> str:
    return f"+1555020{n:04d}"


def call(n: int, **overrides: object) -> OutboundMessage:
    fields: dict[str, object] = {
        "notification_id": n,
        "message_id": f"INC-2026-0001-{n}-voice-v1",
        "channel": Channel.VOICE,
        "recipient": number(n),
        "locale": "en",
        "subject": "Security incident",
        "text": "This is Example Limited with an important notice about your personal data.",
    }
    fields.update(overrides)
    return OutboundMessage.model_validate(fields)


def notifier_for(server: TwilioServer, **options: object) -> TwilioVoiceNotifier:
    return TwilioVoiceNotifier(**twilio_arguments(server, ACCOUNT, TOKEN, FROM, **options))  # type: ignore[arg-type]


def send(notifier: TwilioVoiceNotifier, batch: list[OutboundMessage]) -> dict[int, DeliveryResult]:
    return deliver(notifier, batch)


def twiml_of(request: Accepted) -> ET.Element:
    twiml = request.param("Twiml")
    assert twiml is not None
    return ET.fromstring(twiml)  # noqa: S314 (TwiML the test itself made)


def test_a_zh_cn_notice_is_said_twice_by_the_mandarin_voice(twilio: TwilioServer) -> None:
    """<Say> in Polly.Zhiyu / cmn-CN, the notice twice with a pause; SENT with the CA SID."""
    text = "尊敬的王芳：我们发生了一起涉及您个人信息的安全事件。"
    [result] = send(notifier_for(twilio), [call(1, locale="zh-CN", text=text)]).values()

    [request] = twilio.accepted
    assert result.status is DeliveryStatus.SENT
    assert re.fullmatch(r"CA[0-9a-f]{32}", request.sid)
    assert result.provider_message_id == request.sid
    assert (request.param("To"), request.param("From")) == (number(1), FROM)
    response = twiml_of(request)
    assert response.tag == "Response"
    assert [verb.tag for verb in response] == ["Say", "Pause", "Say"]
    for say in response.findall("Say"):
        assert say.attrib == {"voice": "Polly.Zhiyu", "language": "cmn-CN"}
        assert say.text == text


def test_markup_in_the_notice_is_spoken_not_obeyed(twilio: TwilioServer) -> None:
    """A notice containing TwiML (``<Hangup/>``, a closing ``</Say>``) stays text."""
    text = 'Press nothing. </Say><Hangup/><Say voice="x">Call us & "ask" for <b>help</b>.'
    send(notifier_for(twilio), [call(1, text=text)])

    [request] = twilio.accepted
    response = twiml_of(request)
    assert [verb.tag for verb in response] == ["Say", "Pause", "Say"]
    assert response.find(".//Hangup") is None
    assert [say.text for say in response.findall("Say")] == [text, text]
    assert "&lt;Hangup/&gt;" in (request.param("Twiml") or "")


@pytest.mark.parametrize(
    ("locale", "voice", "language"),
    [
        ("en", "Polly.Joanna", "en-US"),
        ("en-GB", "Polly.Joanna", "en-US"),  # by language
        ("zh_CN", "Polly.Zhiyu", "cmn-CN"),
        ("zh-TW", "Polly.Zhiyu", "cmn-CN"),  # by language
        ("fr-FR", "Polly.Joanna", "en-US"),  # unknown: English
    ],
)
def test_voices_fall_back_by_language_then_to_english(
    twilio: TwilioServer, locale: str, voice: str, language: str
) -> None:
    send(notifier_for(twilio), [call(1, locale=locale)])
    [request] = twilio.accepted
    say = twiml_of(request).find("Say")
    assert say is not None
    assert (say.get("voice"), say.get("language")) == (voice, language)


def test_configured_voices_add_to_and_override_the_defaults(twilio: TwilioServer) -> None:
    voices = {"fr": ("Polly.Lea", "fr-FR"), "en": ("Polly.Amy", "en-GB")}
    send(notifier_for(twilio, voices=voices), [call(1, locale="fr-CA"), call(2, locale="en")])
    said = {a.to: twiml_of(a).find("Say") for a in twilio.accepted}
    assert {to: (s.get("voice"), s.get("language")) for to, s in said.items() if s is not None} == {
        number(1): ("Polly.Lea", "fr-FR"),
        number(2): ("Polly.Amy", "en-GB"),
    }


def test_the_status_callback_asks_for_the_completed_event(twilio: TwilioServer) -> None:
    callback = "https://breach.example.com/hooks/twilio/call-status"
    send(notifier_for(twilio, status_callback=callback), [call(1)])
    send(notifier_for(twilio), [call(2)])
    requests = {a.to: a for a in twilio.accepted}
    assert requests[number(1)].param("StatusCallback") == callback
    assert requests[number(1)].params["StatusCallbackEvent"] == ["completed"]
    assert requests[number(2)].param("StatusCallback") is None


def test_a_long_script_is_said_once_then_replaced_by_the_short_text(twilio: TwilioServer) -> None:
    """Twilio refuses inline TwiML over 4000 characters (error 32018)."""
    once = "A" * 2500
    too_long = CHINESE_NOTICE * 15
    short = "Example Limited: a security incident involved your data. A letter follows."
    batch = [call(1, text=once), call(2, text=too_long, short_text=short)]
    results = send(notifier_for(twilio), batch)

    assert {r.status for r in results.values()} == {DeliveryStatus.SENT}
    said = {a.to: [s.text for s in twiml_of(a).findall("Say")] for a in twilio.accepted}
    assert said[number(1)] == [once]
    assert said[number(2)] == [short, short]
    assert all(len(a.param("Twiml") or "") <= 4000 for a in twilio.accepted)


def test_a_script_that_cannot_fit_fails_without_a_call(twilio: TwilioServer) -> None:
    results = send(notifier_for(twilio), [call(1, text="A" * 5000), call(2)])
    assert results[1].status is DeliveryStatus.FAILED_PERMANENT
    assert results[1].detail and "4000" in results[1].detail
    assert results[2].status is DeliveryStatus.SENT
    assert twilio.attempts[number(1)] == 0


@pytest.mark.parametrize(
    ("phone", "code", "dead"),
    [("+15005550001", 21217, True), ("+15005550002", 21214, False), ("+15005550004", 21216, False)],
)
def test_numbers_that_cannot_be_called_fail_permanently(
    twilio: TwilioServer, phone: str, code: int, dead: bool
) -> None:
    [result] = send(notifier_for(twilio), [call(1, recipient=phone)]).values()
    assert result.status is DeliveryStatus.FAILED_PERMANENT
    assert result.detail and result.detail.startswith(f"twilio error {code}:")
    assert result.contact_dead is dead
    assert phone.lstrip("+") not in result.detail


def test_an_unverified_caller_id_defers_rather_than_blaming_people(twilio: TwilioServer) -> None:
    """21210 is about our From number: every call would fail, none is the person's fault."""
    twilio.error(
        number(1), 21210, message="The source phone number provided, {to}, is not yet verified"
    )
    results = send(notifier_for(twilio, concurrency=1), [call(1), call(2), call(3)])
    assert {r.status for r in results.values()} == {DeliveryStatus.DEFERRED}
    assert twilio.attempts == {number(1): 1}
