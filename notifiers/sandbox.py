"""Sandbox twins of the notifiers: every message becomes a file under the outbox.

Files are named by the message's stable id (the email's Message-ID), so a resend after a
crash overwrites rather than duplicates. Letters need no twin here: the letter adapter
writes files in both modes, only its folder differs.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from pathlib import Path

from breachflow.models.delivery import DeliveryResult, DeliveryStatus, OutboundMessage
from breachflow.models.files import private_directory, write_private
from breachflow.notifiers.email_message import UnbuildableMessage, build_email, message_id


def outbox_files(outbox: Path, channel: str, idempotency_key: str, sender: str) -> list[Path]:
    """What the sandbox wrote for one ledger row: its file, or its letter's whole batch
    folder (the vendor manifest there lists names and addresses)."""
    if channel == "email":
        return [_path(outbox / "email", message_id(idempotency_key, sender), ".eml")]
    if channel == "letter":
        return [pdf.parent for pdf in (outbox / "letter").glob(f"*/{idempotency_key}.pdf")]
    return [_path(outbox / channel, idempotency_key, ".json")]


def _path(directory: Path, msg_id: str, suffix: str) -> Path:
    return directory / (re.sub(r"[^A-Za-z0-9._-]", "_", msg_id.strip("<>")) + suffix)


class Refused(Exception):
    """What the real provider would refuse for this person: a permanent failure."""


class _Outbox:
    """One file per message, written atomically and named by the message's stable id."""

    name: str
    directory: Path
    suffix: str

    def content(self, msg: OutboundMessage) -> bytes:
        raise NotImplementedError

    def _write(self, msg: OutboundMessage) -> DeliveryResult:
        try:
            content = self.content(msg)
        except Refused as exc:
            return DeliveryResult(
                notification_id=msg.notification_id,
                status=DeliveryStatus.FAILED_PERMANENT,
                detail=str(exc),
            )
        # Contact details are in it: the owner's only, like the letters (0600 in 0700).
        write_private(_path(self.directory, msg.message_id, self.suffix), content)
        return DeliveryResult(
            notification_id=msg.notification_id,
            status=DeliveryStatus.SENT,
            provider_message_id=msg.message_id,
        )

    async def send(self, batch: list[OutboundMessage]) -> list[DeliveryResult]:
        private_directory(self.directory)
        return await asyncio.to_thread(lambda: [self._write(msg) for msg in batch])


class OutboxEmailNotifier(_Outbox):
    """Like Django's file email backend: the same message builder as the SMTP adapter, so
    what lands in the outbox is byte for byte what an SMTP server would receive."""

    name = "sandbox-email"
    suffix = ".eml"

    def __init__(
        self, outbox: Path, sender: str, organisation: str, reply_to: str | None = None
    ) -> None:
        self.directory = outbox / "email"
        self.sender = sender
        self.organisation = organisation
        self.reply_to = reply_to

    def content(self, msg: OutboundMessage) -> bytes:
        try:
            return build_email(msg, self.sender, self.organisation, self.reply_to)
        except UnbuildableMessage as exc:
            raise Refused(str(exc)) from None


class OutboxNotifier(_Outbox):
    """The sandbox twin of the SMS, voice and push adapters: one JSON file per message.

    Each file holds what the real adapter would hand the provider (``payload`` builds it
    with the adapter's own code: the SMS body after segment fitting, the call's TwiML, the
    push title and body).
    """

    suffix = ".json"

    def __init__(
        self,
        outbox: Path,
        channel: str,
        payload: Callable[[OutboundMessage], dict[str, object]],
        refuse: Callable[[OutboundMessage], str | None] = lambda msg: None,
    ) -> None:
        self.name = f"sandbox-{channel}"
        self.directory = outbox / channel
        self.channel = channel
        self.payload = payload
        self.refuse = refuse  # what the provider would refuse, e.g. an SMS to a landline

    def content(self, msg: OutboundMessage) -> bytes:
        refusal = self.refuse(msg)
        if refusal:
            raise Refused(refusal)
        content: dict[str, object] = {
            "channel": self.channel,
            "to": msg.recipient,
            "locale": msg.locale,
        }
        content |= self.payload(msg)
        return json.dumps(content, ensure_ascii=False, indent=2).encode()
