"""Build the MIME message for an email notice; shared by the sandbox and SMTP notifiers."""

from __future__ import annotations

import re
from email.errors import MessageError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, formataddr

from models.base import utcnow
from models.delivery import OutboundMessage


def message_id(idempotency_key: str, sender: str) -> str:
    """``<key@sender-domain>``: the same for every resend of the same ledger row."""
    domain = sender.rpartition("@")[2] or "breachflow.invalid"
    return f"<{idempotency_key}@{domain}>"


def scrub(text: str, recipient: str) -> str:
    """Replace the recipient's address in a provider's or library's message: details of
    failures reach the ledger and logs, contact details must not."""
    return re.sub(re.escape(recipient), "<recipient>", text, flags=re.IGNORECASE)[:480]


class UnbuildableMessage(ValueError):
    """This message cannot be written as MIME (e.g. a non-ASCII local part); a per-person
    permanent failure for email, never a reason to fail the batch."""


def build_email(msg: OutboundMessage, sender: str, organisation: str) -> EmailMessage:
    try:
        return _build(msg, sender, organisation)
    except (ValueError, TypeError, MessageError) as exc:
        detail = scrub(f"the email cannot be built: {exc}", msg.recipient)
        raise UnbuildableMessage(detail) from None


def _build(msg: OutboundMessage, sender: str, organisation: str) -> EmailMessage:
    email = EmailMessage()
    email["From"] = formataddr((organisation, sender))
    email["To"] = Address(display_name=msg.recipient_name or "", addr_spec=msg.recipient)
    email["Subject"] = msg.subject
    email["Message-ID"] = msg.message_id
    email["Date"] = format_datetime(utcnow())
    email["Auto-Submitted"] = "auto-generated"
    email.set_content(msg.text)
    if msg.html:
        email.add_alternative(msg.html, subtype="html")
    email["Content-Language"] = msg.locale  # after the body: set_content clears Content-*
    return email
