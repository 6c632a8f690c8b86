"""API keys: who may call the HTTP API, in which role. Stored hashed, shown once.

A key is ``bf_<prefix>_<secret>``: the prefix finds the row (and is safe to show in lists
and on the timeline), the 256-bit secret is checked against its SHA-256 in constant time.
A slow password hash would add nothing: the secret is random, not chosen by a person.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from breachflow.models.base import Base, UTCDateTime, utcnow
from breachflow.models.errors import InvalidInput


class Role(StrEnum):
    ADMIN = "admin"  # everything, including keys
    RESPONDER = "responder"  # declare incidents, import people, run the response
    ONCALL = "oncall"  # runbook steps and approvals; reads incidents
    COMPLIANCE = "compliance"  # reads everything, changes nothing
    ALERT_SOURCE = "alert-source"  # posts alerts, nothing else
    METRICS = "metrics"  # scrapes /metrics (Prometheus), nothing else


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[Role] = mapped_column(String(16))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    #: The issue time (Unix milliseconds) of the last page session logged out: it, and
    #: every session issued before it, is refused (a copied cookie dies with the logout).
    sessions_ended_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    @property
    def actor(self) -> str:
        """How the key's actions appear on the timeline."""
        return f"api-key:{self.name}"


def create_key(session: Session, name: str, role: Role, actor: str) -> str:
    """Store a new key and return it whole: the only time it is ever shown."""
    name = name.strip()
    if not name or len(name) > 100:
        raise InvalidInput("a key needs a name of 1 to 100 characters, e.g. 'alertmanager'")
    if session.scalar(select(ApiKey).where(ApiKey.name == name)) is not None:
        raise InvalidInput(f"a key named {name!r} exists already; revoke it or pick another name")
    prefix, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    session.add(
        ApiKey(name=name, role=Role(role), prefix=prefix, secret_sha256=_digest(secret),
               created_by=actor)
    )  # fmt: skip
    session.flush()
    return f"bf_{prefix}_{secret}"


def authenticate(session: Session, token: str) -> ApiKey | None:
    """The live key ``token`` is, or None (unknown, malformed or revoked)."""
    scheme, _, rest = token.partition("_")
    prefix, _, secret = rest.partition("_")
    if scheme != "bf" or not prefix or not secret:
        return None
    key = live_key(session, prefix)
    if key is None:
        return None
    return key if hmac.compare_digest(key.secret_sha256, _digest(secret)) else None


def live_key(session: Session, prefix: str) -> ApiKey | None:
    """The key with ``prefix`` unless it is revoked: what a session made from a key checks
    on every request, so revoking the key ends its sessions too."""
    key = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    return None if key is None or key.revoked_at is not None else key


def revoke_key(session: Session, name: str, actor: str) -> ApiKey:
    key = session.scalar(select(ApiKey).where(ApiKey.name == name))
    if key is None:
        raise InvalidInput(f"no key named {name!r}")
    if key.revoked_at is None:
        key.revoked_at, key.revoked_by = utcnow(), actor
    return key


def keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
