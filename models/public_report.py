"""Reports from the public: someone found their data leaked and tells us.

The reporter's email address is personal data: kept encrypted with the data key, never
on the timeline. Their network address is kept only as a keyed hash, enough to limit how
often one address may report.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from breachflow.models.base import Base, UTCDateTime, utcnow


class PublicReport(Base):
    __tablename__ = "public_reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reference: Mapped[str] = mapped_column(String(16), unique=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    email_enc: Mapped[bytes] = mapped_column(LargeBinary)
    what_happened: Mapped[str] = mapped_column(Text)
    data_involved: Mapped[str | None] = mapped_column(Text, nullable=True)
    client_hash: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), default="new")  # new | attached
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"), nullable=True)
    acknowledged: Mapped[bool] = mapped_column(Boolean, default=False)
