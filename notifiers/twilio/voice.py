"""Telephone calls through Twilio's Calls API: the notice read aloud by a text-to-speech voice.

The script travels inline as TwiML built with the SDK's ``VoiceResponse``, which escapes the
text: a notice that happens to contain markup is spoken, never obeyed. It is said twice
with a pause, for a person who picked up mid-sentence. Twilio refuses inline TwiML longer
than 4000 characters (error 32018), so a long script is said once, then the short text is
tried, and a script that cannot fit at all fails without a call.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import NamedTuple

from twilio.rest import Client
from twilio.twiml.voice_response import VoiceResponse

from breachflow.models.delivery import DeliveryResult, DeliveryStatus, OutboundMessage
from breachflow.notifiers.base import Pacer
from breachflow.notifiers.twilio.client import Create, TwilioSender

#: Twilio's limit on the ``Twiml`` parameter of a call.
MAX_TWIML = 4000
PAUSE_SECONDS = 2


class Voice(NamedTuple):
    """A ``<Say>`` voice and the language it speaks, e.g. ("Polly.Joanna", "en-US")."""

    voice: str
    language: str


DEFAULT_VOICES: dict[str, Voice] = {
    "en": Voice("Polly.Joanna", "en-US"),
    "zh-CN": Voice("Polly.Zhiyu", "cmn-CN"),
}


def voice_for(locale: str, voices: Mapping[str, Voice]) -> Voice:
    """The voice for a locale: exact match, then one of the same language, then English."""
    wanted = locale.replace("_", "-").lower()
    by_key = {key.lower(): voice for key, voice in voices.items()}
    if wanted in by_key:
        return by_key[wanted]
    language = wanted.split("-")[0]
    for key, voice in by_key.items():
        if key.split("-")[0] == language:
            return voice
    return by_key["en"]


def twiml(text: str, voice: Voice, times: int) -> str:
    """``text`` said ``times`` times, with a pause between."""
    response = VoiceResponse()
    for n in range(times):
        if n:
            response.pause(length=PAUSE_SECONDS)
        response.say(text, voice=voice.voice, language=voice.language)
    return str(response.to_xml())


def script(msg: OutboundMessage, voice: Voice) -> str | None:
    """The longest-lasting script that fits Twilio's limit, or None if nothing fits."""
    texts = [msg.text] if msg.short_text is None else [msg.text, msg.short_text]
    for text in texts:
        for times in (2, 1):
            candidate = twiml(text, voice, times)
            if len(candidate) <= MAX_TWIML:
                return candidate
    return None


class TwilioVoiceNotifier:
    name = "twilio-voice"

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        from_number: str,
        status_callback: str | None = None,
        base_url: str | None = None,
        voices: Mapping[str, tuple[str, str]] | None = None,
        concurrency: int = 4,
        timeout: float = 30.0,
        pacer: Pacer | None = None,
    ) -> None:
        self.from_number = from_number
        self.callback_fields: dict[str, object] = (
            {}
            if status_callback is None
            else {
                "status_callback": status_callback,
                "status_callback_event": ["completed"],
                "status_callback_method": "POST",
            }
        )
        self.voices = DEFAULT_VOICES | {k: Voice(*v) for k, v in (voices or {}).items()}
        self._sender = TwilioSender(
            account_sid=account_sid,
            auth_token=auth_token,
            base_url=base_url,
            concurrency=concurrency,
            timeout=timeout,
            pacer=pacer,
        )

    async def send(self, batch: list[OutboundMessage]) -> list[DeliveryResult]:
        jobs: list[tuple[OutboundMessage, Create]] = []
        too_long: list[DeliveryResult] = []
        for msg in batch:
            body = script(msg, voice_for(msg.locale, self.voices))
            if body is None:
                too_long.append(
                    DeliveryResult(
                        notification_id=msg.notification_id,
                        status=DeliveryStatus.FAILED_PERMANENT,
                        detail=f"voice script longer than twilio's {MAX_TWIML}-character limit",
                    )
                )
            else:
                jobs.append((msg, partial(self._create, msg, body)))
        return too_long + await self._sender.send(jobs)

    def _create(self, msg: OutboundMessage, body: str, client: Client) -> str:
        call = client.calls.create(
            to=msg.recipient, from_=self.from_number, twiml=body, **self.callback_fields
        )
        return str(call.sid)
