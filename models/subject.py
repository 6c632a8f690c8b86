"""An affected person and how to reach them.

Contact details (name, email, phone, push token, postal address) are stored only encrypted
(``*_enc``, see ``models.crypto``), email and phone with blind indexes (``*_index``) for
deduplication; flows decrypt them at the moment of sending. What is kept in clear is what
the assessment needs: locale and residence, and the reason a contact detail could not be
used.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from breachflow.models.base import Base, UTCDateTime, opaque, utcnow


class Subject(Base):
    __tablename__ = "subjects"
    __table_args__ = (
        UniqueConstraint("incident_id", "external_id"),
        Index("ix_subjects_email_index", "incident_id", "email_index"),
        Index("ix_subjects_phone_index", "incident_id", "phone_index"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # No index of its own: the unique (incident_id, external_id) index serves lookups by
    # incident, and one index fewer to maintain makes imports faster.
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"))
    external_id: Mapped[str] = mapped_column(opaque(200))
    name_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    email_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    email_index: Mapped[str | None] = mapped_column(opaque(32), nullable=True)
    email_problem: Mapped[str | None] = mapped_column(String(300), nullable=True)
    phone_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    phone_index: Mapped[str | None] = mapped_column(opaque(32), nullable=True)
    phone_problem: Mapped[str | None] = mapped_column(String(300), nullable=True)
    # An FCM registration token or a Web Push subscription (JSON); a provider saying it is
    # no longer registered sets push_problem, so no later run tries it again.
    push_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    push_problem: Mapped[str | None] = mapped_column(String(300), nullable=True)
    address_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # postal
    address_problem: Mapped[str | None] = mapped_column(String(300), nullable=True)
    locale: Mapped[str] = mapped_column(String(35))
    country: Mapped[str | None] = mapped_column(String(2), nullable=True)
    region: Mapped[str | None] = mapped_column(String(10), nullable=True)
    residence_inferred: Mapped[bool] = mapped_column(Boolean, default=False)
    data_categories: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    source_line: Mapped[int] = mapped_column(Integer)
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    def __repr__(self) -> str:  # never show contact details, even in a debugger
        return f"<Subject id={self.id} external_id={self.external_id!r}>"
