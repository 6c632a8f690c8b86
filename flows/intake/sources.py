"""Sources of signed alerts and their secrets: add, list, rotate, revoke, verify.

A source signs each request with a secret of its own (HMAC-SHA256 over
``<timestamp>.<body>``); we must read the secret to check a signature, so it is kept
encrypted with the data key, not hashed. Rotating gives a new secret and keeps the one
before it valid for a grace period, so the sender switches without losing an alert;
revoking ends both at once. Each change goes on the timeline of every open incident the
source opened: whoever reads that record learns from when its alerts stopped counting.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from pydantic import BaseModel, computed_field
from sqlalchemy import select
from sqlalchemy.orm import Session

from breachflow.flows.intake.alerts import FINISHED, REPLAY_WINDOW
from breachflow.models.alert import AlertGroup, AlertSource
from breachflow.models.base import utcnow
from breachflow.models.errors import InvalidInput, NotFound
from breachflow.models.incident import Incident
from breachflow.models.runtime import database, vault
from breachflow.models.timeline import EventKind, record

SECRET_COLUMN = "alert_source_secret"  # noqa: S105 (the encryption context, not a secret)
DEFAULT_GRACE = timedelta(hours=24)


class SourceView(BaseModel):
    """A source as listed (CLI and API): never its secret."""

    name: str
    created_at: datetime
    created_by: str
    rotated_at: datetime | None
    previous_valid_until: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def status(self) -> str:
        return "revoked" if self.revoked_at else "active"


def add_source(name: str, actor: str) -> str:
    """A new alert source; returns its secret, the only time it is shown."""
    name = name.strip()
    if not name or len(name) > 100:
        raise InvalidInput("a source needs a name of 1 to 100 characters, e.g. 'siem'")
    secret = secrets.token_urlsafe(32)
    sealed = vault().encrypt(SECRET_COLUMN, secret)
    with database().unit_of_work() as session:
        if session.scalar(select(AlertSource).where(AlertSource.name == name)):
            raise InvalidInput(f"an alert source named {name!r} exists already")
        session.add(AlertSource(name=name, secret_enc=sealed, created_by=actor))
    return secret


def list_sources() -> list[SourceView]:
    with database().unit_of_work() as session:
        return [
            SourceView.model_validate(s, from_attributes=True)
            for s in session.scalars(select(AlertSource).order_by(AlertSource.name))
        ]


def rotate_source(name: str, actor: str, grace: timedelta = DEFAULT_GRACE) -> str:
    """A new secret for ``name``; the one before it signs for ``grace`` more. Returns the
    new secret, the only time it is shown."""
    if grace < timedelta(0) or grace > timedelta(days=30):
        raise InvalidInput("the grace period is 0 to 30 days")
    secret = secrets.token_urlsafe(32)
    sealed = vault().encrypt(SECRET_COLUMN, secret)
    assert sealed is not None  # a secret is never empty
    with database().unit_of_work() as session:
        source = _live(session, name)
        now = utcnow()
        source.previous_secret_enc = source.secret_enc
        source.secret_enc = sealed
        source.previous_valid_until = now + grace
        source.rotated_at, source.rotated_by = now, actor
        _on_timelines(session, name, actor, {"change": "rotated", "old_secret_until": now + grace})
    return secret


def revoke_source(name: str, actor: str) -> None:
    """No secret of ``name`` signs from now on, the previous one included."""
    with database().unit_of_work() as session:
        source = _live(session, name)
        source.revoked_at, source.revoked_by = utcnow(), actor
        source.previous_secret_enc = source.previous_valid_until = None
        _on_timelines(session, name, actor, {"change": "revoked"})


def _live(session: Session, name: str) -> AlertSource:
    source = session.scalar(select(AlertSource).where(AlertSource.name == name).with_for_update())
    if source is None:
        raise NotFound(f"no alert source named {name!r}; `breach alerts list` lists them")
    if source.revoked_at is not None:
        raise InvalidInput(
            f"alert source {name!r} was revoked at {source.revoked_at:%Y-%m-%d %H:%M} UTC"
        )
    return source


def _on_timelines(session: Session, name: str, actor: str, change: dict[str, object]) -> None:
    """On every open incident that alerts of ``name`` opened or were counted on."""
    opened = select(AlertGroup.incident_id).where(AlertGroup.source == f"hmac:{name}")
    for incident in session.scalars(
        select(Incident).where(Incident.id.in_(opened), Incident.state.not_in(FINISHED))
    ):
        payload = {"source": name, **change}
        record(session, incident, EventKind.ALERT_SOURCE_CHANGED, actor, payload)


def verify_signature(source: str, timestamp: str, signature: str, body: bytes) -> str | None:
    """The signature's digest when the request is signed by a live source within the
    replay window (``receive`` then claims it, once), else None. After a rotation the
    secret before it is accepted until its grace period ends."""
    try:
        stamp = int(timestamp)
    except ValueError:
        return None
    if abs(utcnow().timestamp() - stamp) > REPLAY_WINDOW.total_seconds():
        return None
    scheme, _, given = signature.partition("=")
    if scheme != "sha256" or len(given) != 64:
        return None
    keys = vault()  # before the transaction: it checks the key in one of its own
    with database().unit_of_work() as session:
        found = session.scalar(
            select(AlertSource).where(AlertSource.name == source, AlertSource.revoked_at.is_(None))
        )
        if found is None:
            return None
        sealed = [found.secret_enc]
        until = found.previous_valid_until
        if found.previous_secret_enc is not None and until is not None and utcnow() < until:
            sealed.append(found.previous_secret_enc)
        candidates = [keys.decrypt(SECRET_COLUMN, s) or "" for s in sealed]
    signed = timestamp.encode() + b"." + body
    for secret in candidates:
        expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
        if hmac.compare_digest(expected, given.lower()):
            return given.lower()
    return None
