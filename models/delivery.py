"""What flows hand to notifiers and what notifiers hand back: the normalized vocabulary.

Like django-anymail's per-recipient statuses, every provider's answer is reduced to one of
a few outcomes the ledger understands, so the dispatcher never speaks SMTP or Twilio.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Channel(StrEnum):
    EMAIL = "email"


class DeliveryStatus(StrEnum):
    SENT = "sent"  # the provider accepted the message
    FAILED_TEMPORARY = "failed_temporary"  # try again later
    FAILED_PERMANENT = "failed_permanent"  # this channel will not reach this person
    #: Not attempted: the provider itself could not be used (down, refusing our sender,
    #: rejecting our credentials). Says nothing about the person, so it is not counted
    #: as one of their attempts; the dispatcher stops and the run can be resumed.
    DEFERRED = "deferred"


class OutboundMessage(BaseModel):
    """One rendered notice for one person on one channel."""

    model_config = ConfigDict(frozen=True)

    notification_id: int
    message_id: str  # stable across resends: derived from the ledger row
    channel: Channel
    recipient: str = Field(repr=False)  # personal data: kept out of reprs and logs
    recipient_name: str | None = Field(default=None, repr=False)
    locale: str
    subject: str
    text: str
    html: str | None = None


class DeliveryResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    notification_id: int
    status: DeliveryStatus
    provider_message_id: str | None = None
    detail: str | None = None  # provider's reason; must not contain contact details
