"""The sandbox twin of the email notifier: every message becomes an ``.eml`` file.

Like Django's file email backend, it goes through the same message builder as the real
one, so what lands in the outbox is byte for byte what an SMTP server would receive. Files
are named by Message-ID, so a resend after a crash overwrites rather than duplicates.
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

from models.delivery import DeliveryResult, DeliveryStatus, OutboundMessage
from notifiers.email_message import UnbuildableMessage, build_email, message_id


def outbox_file(outbox: Path, idempotency_key: str, sender: str) -> Path:
    """Where the sandbox keeps the notice of one ledger row (named by its Message-ID)."""
    return _path(outbox / "email", message_id(idempotency_key, sender))


def _path(directory: Path, msg_id: str) -> Path:
    return directory / (re.sub(r"[^A-Za-z0-9._-]", "_", msg_id.strip("<>")) + ".eml")


class OutboxEmailNotifier:
    name = "sandbox-email"

    def __init__(self, outbox: Path, sender: str, organisation: str) -> None:
        self.directory = outbox / "email"
        self.sender = sender
        self.organisation = organisation

    def _write(self, msg: OutboundMessage) -> DeliveryResult:
        try:
            content = build_email(msg, self.sender, self.organisation).as_bytes()
        except UnbuildableMessage as exc:
            return DeliveryResult(
                notification_id=msg.notification_id,
                status=DeliveryStatus.FAILED_PERMANENT,
                detail=str(exc),
            )
        target = _path(self.directory, msg.message_id)
        temporary = target.with_suffix(".tmp")
        temporary.write_bytes(content)
        os.replace(temporary, target)
        return DeliveryResult(
            notification_id=msg.notification_id,
            status=DeliveryStatus.SENT,
            provider_message_id=msg.message_id,
        )

    async def send(self, batch: list[OutboundMessage]) -> list[DeliveryResult]:
        self.directory.mkdir(parents=True, exist_ok=True)
        return await asyncio.to_thread(lambda: [self._write(msg) for msg in batch])
