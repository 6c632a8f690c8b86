"""What flows hand to notifiers and what notifiers hand back: the normalized vocabulary.

Like django-anymail's per-recipient statuses, every provider's answer is reduced to one of
a few outcomes the ledger understands, so the dispatcher never speaks SMTP or Twilio.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Channel(StrEnum):
    """The ways our operators promise to reach a person individually."""

    PUSH = "push"
    EMAIL = "email"
    SMS = "sms"
    VOICE = "voice"
    LETTER = "letter"


class DeliveryStatus(StrEnum):
    SENT = "sent"  # the provider accepted the message
    #: Given to a mailing vendor who posts it later and says when in a return file: not
    #: sent yet, and nobody is counted as reached until the vendor says it was mailed.
    HANDED_OVER = "handed_over"
    FAILED_TEMPORARY = "failed_temporary"  # try again later
    FAILED_PERMANENT = "failed_permanent"  # this channel will not reach this person
    #: Not attempted: the provider itself could not be used (down, refusing our sender,
    #: rejecting our credentials). Says nothing about the person, so it is not counted
    #: as one of their attempts; the dispatcher stops and the run can be resumed.
    DEFERRED = "deferred"
    #: Not attempted: held back because the recipient's mail domain is deferring our mail
    #: (``notifiers.domains``); retried after ``retry_after``, and not an attempt either.
    HELD = "held"


class Attachment(BaseModel):
    """A file sent with an email: a regulator report's PDF, never a person's data."""

    model_config = ConfigDict(frozen=True)

    filename: str
    content_type: str  # e.g. application/pdf
    content: bytes = Field(repr=False)


class OutboundMessage(BaseModel):
    """One rendered notice for one person on one channel."""

    model_config = ConfigDict(frozen=True)

    notification_id: int
    message_id: str  # stable across resends: derived from the ledger row
    channel: Channel
    recipient: str = Field(repr=False)  # personal data: kept out of reprs and logs
    recipient_name: str | None = Field(default=None, repr=False)
    locale: str
    subject: str  # email subject, push title, letter heading
    text: str  # the whole notice as plain text (SMS, voice script, push body, email text)
    html: str | None = None  # email HTML part; for letters the print-ready page
    #: SMS and push: the few lines that say what happened and where to read the whole
    #: notice, used when ``text`` does not fit the channel's budget.
    short_text: str | None = None
    link: str | None = None  # where the whole notice can be read (short texts point here)
    #: The recipient's time zone, which the notice's times are given in (None: UTC).
    timezone: str | None = None
    attachments: tuple[Attachment, ...] = ()  # email only


class DeliveryResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    notification_id: int
    status: DeliveryStatus
    provider_message_id: str | None = None
    detail: str | None = None  # provider's reason; must not contain contact details
    #: The provider asked us to wait (HTTP ``Retry-After``): the retry is not sooner.
    retry_after: float | None = None
    #: The contact detail itself is dead (push token unregistered, number unassigned):
    #: it is marked unusable on the person so no later run tries it again.
    contact_dead: bool = False
    #: A letter handed to a mailing vendor: the day the vendor is to post it (its wave).
    mail_on: date | None = None


class ProviderEventStatus(StrEnum):
    """What a provider's asynchronous status report (webhook) means for the ledger."""

    DELIVERED = "delivered"  # reached the handset / answered
    FAILED_TEMPORARY = "failed_temporary"  # e.g. a call not answered: try again later
    FAILED_PERMANENT = "failed_permanent"  # the next channel in the person's chain


class ProviderEvent(BaseModel):
    """A verified status callback, reduced to the ledger's vocabulary."""

    model_config = ConfigDict(frozen=True)

    provider_message_id: str  # e.g. Twilio's MessageSid / CallSid
    status: ProviderEventStatus
    detail: str | None = None
