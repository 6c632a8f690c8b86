"""Facts about the database itself, such as which data key it was written with."""

from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import Mapped, Session, mapped_column

from breachflow.models.base import Base
from breachflow.models.crypto import DataKeyError, Vault

KEY_FINGERPRINT = "data_key_fingerprint"


class Meta(Base):
    __tablename__ = "breach_meta"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(500))


def check_key(session: Session, vault: Vault) -> None:
    """Remember the first key's fingerprint; refuse any other key afterwards."""
    stored = session.get(Meta, KEY_FINGERPRINT)
    if stored is None:
        session.add(Meta(name=KEY_FINGERPRINT, value=vault.fingerprint))
    elif stored.value != vault.fingerprint:
        raise DataKeyError(
            "this database was written with a different data key; set BREACH_DATA_KEY or "
            "BREACH_DATA_KEY_FILE to the key it was created with"
        )
