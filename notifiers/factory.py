"""The adapter for a channel, chosen by configuration (sandbox or live).

Like Django's email backends: in ``sandbox`` mode every channel writes to the outbox
(``.breach/outbox/<channel>/``) through the same message builders the real adapters use;
in ``live`` mode each channel goes to its provider. Pacing is the caller's: whoever
orchestrates sending (the dispatcher) owns the shared rate limits and hands a pacer in, so
nothing here touches the database.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import phonenumbers
import pyrage

from breachflow.models.delivery import Channel, OutboundMessage
from breachflow.models.errors import InvalidInput
from breachflow.models.settings import NotifierMode, Settings
from breachflow.notifiers.base import Notifier, Pacer
from breachflow.notifiers.letter import LetterNotifier
from breachflow.notifiers.push.common import notice_body, notice_title, push_kind
from breachflow.notifiers.push.notifier import PushNotifier
from breachflow.notifiers.sandbox import OutboxEmailNotifier, OutboxNotifier
from breachflow.notifiers.segments import encoding, fit, segments
from breachflow.notifiers.smtp import SmtpEmailNotifier
from breachflow.notifiers.twilio.sms import TwilioSmsNotifier
from breachflow.notifiers.twilio.voice import DEFAULT_VOICES, TwilioVoiceNotifier, script, voice_for

#: Which encrypted contact detail of a person each channel uses (``Subject.<field>_enc``).
CONTACT_FIELD = {
    Channel.PUSH: "push",
    Channel.EMAIL: "email",
    Channel.SMS: "phone",
    Channel.VOICE: "phone",
    Channel.LETTER: "address",
}


#: Channels that put BREACH_PUBLIC_URL in front of people or providers.
LINKED = frozenset({Channel.SMS, Channel.VOICE, Channel.PUSH})


def unconfigured_reason(channel: Channel, settings: Settings) -> str | None:
    """Why ``channel`` cannot send in this installation, or None if it can."""
    if settings.notifier_mode is NotifierMode.SANDBOX:
        return None
    twilio = settings.twilio_account_sid and settings.twilio_auth_token
    if channel is Channel.SMS and not (
        twilio and (settings.twilio_messaging_service_sid or settings.twilio_from_number)
    ):
        return (
            "set BREACH_TWILIO_ACCOUNT_SID, _AUTH_TOKEN and _MESSAGING_SERVICE_SID or _FROM_NUMBER"
        )
    if channel is Channel.VOICE and not (twilio and settings.twilio_from_number):
        return "set BREACH_TWILIO_ACCOUNT_SID, _AUTH_TOKEN and _FROM_NUMBER"
    if channel is Channel.PUSH and not (
        settings.fcm_service_account_file or settings.vapid_private_key_file
    ):
        return "set BREACH_FCM_SERVICE_ACCOUNT_FILE and/or BREACH_VAPID_PRIVATE_KEY_FILE"
    if channel is Channel.LETTER and not settings.letter_dropbox:
        return "set BREACH_LETTER_DROPBOX to the mailing vendor's folder"
    if channel in LINKED and settings.public_url_problem:
        # SMS and push carry a link to the notice page; Twilio reports texts and calls there.
        return settings.public_url_problem
    return None


def rate_per_second(channel: Channel, settings: Settings) -> float:
    """The configured send rate of ``channel`` across all dispatchers (0: unlimited)."""
    return {
        Channel.EMAIL: settings.email_rate_per_second,
        Channel.SMS: settings.sms_rate_per_second,
        Channel.VOICE: settings.voice_rate_per_second,
        Channel.PUSH: settings.push_rate_per_second,
    }.get(channel, 0)


def notifier_for(
    channel: Channel,
    settings: Settings,
    *,
    pacer: Pacer | None = None,
    connections: int | None = None,
) -> Notifier:
    """The adapter the settings ask for.

    ``pacer``: the shared rate limit of the channel, if it has one (``rate_per_second``);
    ``connections``: how many SMTP connections this batch may open (its share of the limit).
    """
    if settings.notifier_mode is NotifierMode.SANDBOX:
        return _sandbox(channel, settings)
    if channel is Channel.EMAIL:
        return email_notifier(settings, connections)
    if channel is Channel.LETTER:
        return LetterNotifier(letter_folder(settings), organisation=settings.organisation_name)
    if channel is Channel.PUSH:
        return PushNotifier(
            fcm_service_account=_read_json(settings.fcm_service_account_file),
            fcm_base_url=settings.fcm_base_url,
            vapid_private_key=(
                settings.vapid_private_key_file.read_text().strip()
                if settings.vapid_private_key_file
                else None
            ),
            vapid_subject=settings.vapid_subject,
            pacer=pacer,
        )
    token = settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else ""
    callback = f"{settings.public_url.rstrip('/')}/callbacks/twilio"
    # Requests in flight: enough for the rate at a provider answering in ~0.05 s; more
    # threads only add jitter to when requests arrive (measured at the Twilio stand-in).
    concurrency = min(32, max(4, math.ceil(rate_per_second(channel, settings) * 0.05)))
    if channel is Channel.SMS:
        return TwilioSmsNotifier(
            concurrency=concurrency,
            account_sid=settings.twilio_account_sid or "",
            auth_token=token,
            messaging_service_sid=settings.twilio_messaging_service_sid,
            from_number=None
            if settings.twilio_messaging_service_sid
            else settings.twilio_from_number,
            status_callback=callback,
            segment_budget=settings.sms_segment_budget,
            base_url=settings.twilio_base_url,
            pacer=pacer,
        )
    return TwilioVoiceNotifier(
        concurrency=concurrency,
        account_sid=settings.twilio_account_sid or "",
        auth_token=token,
        from_number=settings.twilio_from_number or "",
        status_callback=callback,
        base_url=settings.twilio_base_url,
        pacer=pacer,
    )


def _sandbox(channel: Channel, settings: Settings) -> Notifier:
    outbox = settings.outbox
    if channel is Channel.EMAIL:
        return OutboxEmailNotifier(
            outbox, settings.sender, settings.organisation_name, settings.reply_address
        )
    if channel is Channel.LETTER:
        return LetterNotifier(letter_folder(settings), organisation=settings.organisation_name)
    budget = settings.sms_segment_budget
    payloads = {
        Channel.SMS: lambda msg: _sms_payload(msg, budget),
        Channel.VOICE: _voice_payload,
        Channel.PUSH: _push_payload,
    }
    refuse = _landline if channel is Channel.SMS else (lambda msg: None)
    return OutboxNotifier(outbox, str(channel), payloads[channel], refuse)


# What the real adapters would hand their providers, built by their own functions.


def _sms_payload(msg: OutboundMessage, budget: int) -> dict[str, object]:
    body = fit(msg.text, msg.short_text or msg.text, budget)
    return {"body": body, "encoding": encoding(body), "segments": segments(body)}


def _landline(msg: OutboundMessage) -> str | None:
    """Twilio refuses an SMS to a fixed line (error 21614); the sandbox refuses it too, so
    the fallback to a call can be seen before going live."""
    number = phonenumbers.parse(msg.recipient)
    if phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.FIXED_LINE:
        return "twilio error 21614: 'To' number is not a mobile number"
    return None


def _voice_payload(msg: OutboundMessage) -> dict[str, object]:
    return {"twiml": script(msg, voice_for(msg.locale, DEFAULT_VOICES))}


def _push_payload(msg: OutboundMessage) -> dict[str, object]:
    kind = push_kind(msg.recipient)
    return {
        "provider": kind,
        "title": notice_title(msg),
        "body": notice_body(msg),
        "link": msg.link,
    }


def letter_folder(settings: Settings) -> Path:
    """Where letters are handed over: the vendor's drop folder, or the outbox's twin."""
    if settings.notifier_mode is NotifierMode.SANDBOX:
        return settings.outbox / "letter"
    assert settings.letter_dropbox is not None  # unconfigured_reason keeps letters out
    return settings.letter_dropbox


#: The sandbox's stand-in for the vendor's age identity, in ``BREACH_HOME``.
SANDBOX_VENDOR_KEY = "letter-vendor.key"


def vendor_recipient(settings: Settings) -> str:
    """The age public key a vendor hand-over is encrypted for.

    Live: the vendor's own (``BREACH_LETTER_VENDOR_RECIPIENT``). Without it nothing is
    handed over: names and addresses are never written in clear for want of a key.
    Sandbox: that key if set, else the public half of an identity made once in
    ``$BREACH_HOME/letter-vendor.key`` (0600), so the outbox's hand-over opens the way the
    vendor's would: ``age -d -i .breach/letter-vendor.key merge.csv.age``.
    """
    if settings.letter_vendor_recipient:
        return settings.letter_vendor_recipient
    if settings.notifier_mode is NotifierMode.LIVE:
        raise InvalidInput(
            "letters go to the mailing vendor as an encrypted merge hand-over at"
            f" {settings.letter_vendor_threshold:,} letters or more"
            " (BREACH_LETTER_VENDOR_THRESHOLD), and no key to encrypt it for is set: set"
            " BREACH_LETTER_VENDOR_RECIPIENT to the vendor's age public key (age1...)."
            " Nothing was written; the letters stay queued"
        )
    path = settings.home / SANDBOX_VENDOR_KEY
    if not path.exists():  # made aside and linked into place: another process may race us
        path.parent.mkdir(parents=True, exist_ok=True)
        identity = pyrage.x25519.Identity.generate()
        aside = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write("# breach sandbox: stand-in for the mailing vendor's age identity\n")
            out.write(f"# public key: {identity.to_public()}\n{identity}\n")
        try:
            os.link(aside, path)
        except FileExistsError:
            pass
        finally:
            aside.unlink()
    return str(pyrage.x25519.Identity.from_str(_identity_line(path.read_text())).to_public())


def _identity_line(text: str) -> str:
    return next(line.strip() for line in text.splitlines() if line.startswith("AGE-SECRET-KEY-"))


def _read_json(path: Path | None) -> dict[str, object] | None:
    return json.loads(path.read_text()) if path else None


def email_notifier(settings: Settings, connections: int | None = None) -> Notifier:
    """The email notifier the settings ask for: the outbox in sandbox mode, SMTP when live."""
    if settings.notifier_mode is NotifierMode.SANDBOX:
        return OutboxEmailNotifier(
            settings.outbox, settings.sender, settings.organisation_name, settings.reply_address
        )
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    return SmtpEmailNotifier(
        host=settings.smtp_host,
        port=settings.smtp_port,
        sender=settings.sender,
        organisation=settings.organisation_name,
        reply_to=settings.reply_address,
        username=settings.smtp_user,
        password=password,
        tls=settings.smtp_tls,
        timeout=settings.smtp_timeout,
        pool_size=connections or settings.smtp_pool_size,
    )


__all__ = [
    "CONTACT_FIELD",
    "Notifier",
    "email_notifier",
    "letter_folder",
    "notifier_for",
    "rate_per_second",
    "unconfigured_reason",
    "vendor_recipient",
]
