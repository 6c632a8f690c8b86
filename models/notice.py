"""What every notice must say, per locale, and the versioned record of what was approved.

The fields are the promise of our operators' policies (GB/T 35273-2020 §10.2): the basic
situation and possible impact, the measures taken or to be taken, suggestions to protect
oneself, the remedies offered, plus when it happened, what data, and whom to contact.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError
from sqlalchemy import JSON, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from breachflow.models.base import Base, UTCDateTime, utcnow
from breachflow.models.errors import InvalidInput

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


#: Channels a notice text may be worded for: a call cannot "reply to this email", a letter
#: cannot be clicked.
ChannelName = Literal["email", "sms", "voice", "push", "letter"]


class ChannelText(BaseModel):
    """Fields worded for one channel; the others come from the locale's texts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    subject_line: Text | None = None
    what_happened: Text | None = None
    data_involved: Text | None = None
    possible_impact: Text | None = None
    measures_taken: Text | None = None
    protective_steps: Text | None = None
    remedies: Text | None = None
    contact_point: Text | None = None


class NoticeText(BaseModel):
    """The incident-specific text an operator writes once per locale, with, per channel,
    the fields that channel needs worded otherwise (``channels: {voice: {contact_point:
    "call us on 0 8 0 0 ..."}}``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    subject_line: Text
    what_happened: Text
    data_involved: Text
    possible_impact: Text
    measures_taken: Text
    protective_steps: Text
    remedies: Text
    contact_point: Text | None = None  # defaults to the organisation's contact point
    channels: dict[ChannelName, ChannelText] | None = None

    def for_channel(self, channel: str) -> NoticeText:
        """These texts as ``channel`` says them: its own wording where it has some."""
        own = (self.channels or {}).get(channel)  # type: ignore[call-overload]
        if own is None:
            return self
        return self.model_copy(update=own.model_dump(exclude_none=True))


class NoticeContent(BaseModel):
    """Everything a rendered notice shows; rendering refuses to start without all of it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    locale: Text
    organisation: Text
    incident_key: Text
    subject_line: Text
    what_happened: Text
    #: When it happened, in the recipient's time zone (``utc_offset``, the zone's label as
    #: a notice prints it: "UTC+08:00", or "UTC" when their residence names no zone).
    detected_at: datetime
    aware_at: datetime
    detected_offset: Text = "UTC"
    aware_offset: Text = "UTC"
    data_involved: Text
    possible_impact: Text
    measures_taken: Text
    protective_steps: Text
    remedies: Text
    contact_point: Text
    recipient_name: str | None = None
    recipient_address: str | None = None  # letters: the postal address block
    link: str | None = None  # where the whole notice can be read (SMS and push point here)


def parse_notice_texts(raw: object) -> dict[str, NoticeText]:
    """Validate ``{locale: {field: text}}`` as loaded from a notice file."""
    if not isinstance(raw, dict) or not raw:
        raise InvalidInput("a notice file maps each locale (e.g. en, zh-CN) to its texts")
    texts: dict[str, NoticeText] = {}
    for locale, fields in raw.items():
        try:
            texts[str(locale)] = NoticeText.model_validate(fields)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, err['loc'])) or 'texts'}: {err['msg']}" for err in exc.errors()
            )
            raise InvalidInput(f"notice texts for locale {locale!r}: {problems}") from None
    return texts


class NoticeVersion(Base):
    """An immutable version of an incident's notice texts; ledger rows point at one."""

    __tablename__ = "notice_versions"
    __table_args__ = (UniqueConstraint("incident_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    texts: Mapped[dict[str, dict[str, Any]]] = mapped_column(JSON)
    sha256: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    @staticmethod
    def digest(texts: dict[str, NoticeText]) -> str:
        canonical = {loc: t.model_dump(exclude_none=True) for loc, t in sorted(texts.items())}
        encoded = json.dumps(canonical, sort_keys=True, ensure_ascii=False).encode()
        return hashlib.sha256(encoded).hexdigest()

    def parsed(self) -> dict[str, NoticeText]:
        return {loc: NoticeText.model_validate(t) for loc, t in self.texts.items()}
