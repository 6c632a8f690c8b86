"""The sandbox outbox: what a provider would be handed, kept as private as the letters."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

from breachflow.models.delivery import Channel, DeliveryStatus, OutboundMessage
from breachflow.notifiers.sandbox import OutboxEmailNotifier


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_outbox_files_are_the_owners_only(tmp_path: Path) -> None:
    """Issue 17, item 11: the outbox held clear contact details at 0644 in 0755 folders."""
    outbox = tmp_path / "home" / "outbox"
    message = OutboundMessage(
        notification_id=1,
        message_id="<k1@example.com>",
        channel=Channel.EMAIL,
        recipient="ada@example.com",
        recipient_name="Ada",
        locale="en",
        subject="Important",
        text="Dear Ada,\n",
    )
    [result] = asyncio.run(
        OutboxEmailNotifier(outbox, "notice@example.com", "Example Ltd.").send([message])
    )
    assert result.status is DeliveryStatus.SENT
    [written] = list((outbox / "email").iterdir())
    assert b"ada@example.com" in written.read_bytes()
    assert mode(written) == 0o600
    assert mode(outbox / "email") == mode(outbox) == mode(tmp_path / "home") == 0o700
