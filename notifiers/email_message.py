"""Build the MIME message for an email notice; shared by the sandbox and SMTP notifiers."""

from __future__ import annotations

from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, formataddr

from models.base import utcnow
from models.delivery import OutboundMessage


def message_id(idempotency_key: str, sender: str) -> str:
    """``<key@sender-domain>``: the same for every resend of the same ledger row."""
    domain = sender.rpartition("@")[2] or "breachflow.invalid"
    return f"<{idempotency_key}@{domain}>"


def build_email(msg: OutboundMessage, sender: str, organisation: str) -> EmailMessage:
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
