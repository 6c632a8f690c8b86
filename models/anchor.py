"""Anchoring the timeline outside the database: signed checkpoints and their witness.

The hash chain shows an event changed in place. It does not stop someone who can write the
database from deleting the last events and setting the incident's head back, or rewriting
from event 10 and rehashing everything after: the chain then agrees with itself. A
**checkpoint** is the statement "incident X's timeline had N events, ending in head H, at
time T", signed with an Ed25519 key that neither the database nor the data key holds, and
published to a **witness** outside the database: an append-only JSON Lines file per
incident in a folder (``BREACH_WITNESS_DIR``), which may live on another machine or a
write-once mount. ``breach audit verify`` holds the chain to every checkpoint it can reach
(the witness's, then the copies kept in the database) and names the anchor it trusted.

A checkpoint is taken after each stage commits (declared, each state change) and by each
watchdog run for open incidents whose timeline grew since the last one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from sqlalchemy import ForeignKey, Integer, String, Text, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, Session, mapped_column

from breachflow.models.base import Base, UTCDateTime, utcnow
from breachflow.models.db import Database
from breachflow.models.errors import BreachError
from breachflow.models.incident import Incident
from breachflow.models.settings import Settings
from breachflow.models.timeline import TimelineEvent, canonical_time

FORMAT = "breachflow.checkpoint/1"
log = logging.getLogger("breachflow.anchor")


class AnchorKeyError(BreachError):
    """The checkpoint key or a public key cannot be used; the message says why."""


# --- The signed statement -------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """One signed statement of a timeline's length and head."""

    incident: str  # the incident's key, e.g. INC-2026-0001
    incident_id: int
    events: int
    head: str
    signed_at: str  # canonical UTC time
    reason: str  # the stage, ``schedule`` or ``manual``
    key_id: str
    signature: str = ""  # base64 of the Ed25519 signature over :meth:`statement`

    def statement(self) -> bytes:
        """What is signed: every field but the signature, as canonical JSON."""
        fields = {"format": FORMAT, **asdict(self)}
        del fields["signature"]
        return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()

    def line(self) -> str:
        return json.dumps({"format": FORMAT, **asdict(self)}, sort_keys=True)

    @classmethod
    def from_line(cls, text: str) -> Checkpoint:
        """Read one witness line; ``ValueError`` (with the reason) for anything else."""
        data = json.loads(text)
        if not isinstance(data, dict) or data.pop("format", None) != FORMAT:
            raise ValueError(f"not a {FORMAT} line")
        types = {"incident_id": int, "events": int}
        for name in cls.__dataclass_fields__:
            expected = types.get(name, str)
            if type(data.get(name)) is not expected:
                raise ValueError(f"its {name} is missing or not {expected.__name__}")
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})


def key_id(public: Ed25519PublicKey) -> str:
    """A short, stable name of a public key: the first 16 hex digits of its SHA-256."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True)
class Signer:
    private: Ed25519PrivateKey

    @property
    def key_id(self) -> str:
        return key_id(self.private.public_key())

    def sign(self, incident: Incident, reason: str, at: datetime) -> Checkpoint:
        assert incident.timeline_head is not None
        unsigned = Checkpoint(
            incident=incident.key,
            incident_id=incident.id,
            events=incident.timeline_length,
            head=incident.timeline_head,
            signed_at=canonical_time(at),
            reason=reason,
            key_id=self.key_id,
        )
        signature = self.private.sign(unsigned.statement())
        return Checkpoint(**{**asdict(unsigned), "signature": base64.b64encode(signature).decode()})


def signature_holds(checkpoint: Checkpoint, public: Ed25519PublicKey) -> bool:
    try:
        public.verify(base64.b64decode(checkpoint.signature, validate=True), checkpoint.statement())
    except (InvalidSignature, ValueError):
        return False
    return True


# --- Keys ---------------------------------------------------------------------------------


def write_key_pair(path: Path) -> Path:
    """A new signing key at ``path`` (0600, refused if it exists) and its public key beside
    it (``path`` + ``.pub``), which is all a verifier needs. Returns the public key's path."""
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise AnchorKeyError(f"{path} exists: a signing key is never overwritten") from None
    with os.fdopen(descriptor, "wb") as out:
        out.write(pem)
    public = Path(f"{path}.pub")
    public.write_bytes(_public_pem(private.public_key()))
    return public


def _public_pem(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_signer(path: Path) -> Signer:
    try:
        if path.stat().st_mode & 0o077:
            raise AnchorKeyError(f"{path} is readable by other users; run `chmod 600 {path}`")
        private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise AnchorKeyError(f"cannot read the checkpoint key {path}: {exc.strerror}") from None
    except ValueError:
        raise AnchorKeyError(f"{path} is not a PEM private key") from None
    if not isinstance(private, Ed25519PrivateKey):
        raise AnchorKeyError(f"{path} is not an Ed25519 key")
    return Signer(private)


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        public = serialization.load_pem_public_key(path.read_bytes())
    except OSError as exc:
        raise AnchorKeyError(f"cannot read the public key {path}: {exc.strerror}") from None
    except ValueError:
        raise AnchorKeyError(f"{path} is not a PEM public key") from None
    if not isinstance(public, Ed25519PublicKey):
        raise AnchorKeyError(f"{path} is not an Ed25519 public key")
    return public


# --- Where checkpoints are kept --------------------------------------------------------------


class StoredCheckpoint(Base):
    """The database's copy: convenient (exports, pages), never the anchor itself, since
    whoever can rewrite the timeline can delete these rows."""

    __tablename__ = "timeline_checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), index=True)
    events: Mapped[int] = mapped_column(Integer)
    head: Mapped[str] = mapped_column(String(64))
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    key_id: Mapped[str] = mapped_column(String(16))
    #: The whole signed line, as the witness holds it.
    line: Mapped[str] = mapped_column(Text)


@dataclass(frozen=True)
class Witness:
    """A folder of append-only JSON Lines files, one per incident. Each checkpoint is one
    ``write`` with ``O_APPEND``, flushed to disk before the call returns. Put it on another
    machine's mount, a write-once (WORM) volume, or set ``chattr +a`` on its files."""

    folder: Path

    @property
    def name(self) -> str:
        return f"witness {self.folder}"

    def path(self, incident_key: str) -> Path:
        return self.folder / f"{incident_key}.jsonl"

    def publish(self, checkpoint: Checkpoint) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
        descriptor = os.open(self.path(checkpoint.incident), flags, 0o600)
        try:
            os.write(descriptor, (checkpoint.line() + "\n").encode())
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    def read(self, incident_key: str) -> tuple[list[Checkpoint], list[str]]:
        """The incident's checkpoints, and a problem per line that is not one."""
        path = self.path(incident_key)
        if not path.exists():
            return [], []
        found, problems = [], []
        with path.open(encoding="utf-8", errors="replace") as lines:
            for number, text in enumerate(lines, start=1):
                try:
                    found.append(Checkpoint.from_line(text))
                except (ValueError, RecursionError) as exc:
                    problems.append(f"{path} line {number} is not a checkpoint: {exc}")
        return found, problems


# --- Taking one -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Anchoring:
    """What this process anchors with: the signing key and the witness (both configured, or
    anchoring is off)."""

    signer: Signer
    witness: Witness

    def checkpoint(self, session: Session, incident: Incident, reason: str) -> Checkpoint | None:
        """Sign the incident's committed length and head, publish it to the witness, then
        keep a copy in the database. Nothing when the last checkpoint already covers the
        head. The witness is written first: a checkpoint there and not in the database is
        harmless, the other way round would be an anchor that is not outside."""
        if not incident.timeline_length or _covered(session, incident):
            return None
        checkpoint = self.signer.sign(incident, reason, utcnow())
        self.witness.publish(checkpoint)
        session.add(
            StoredCheckpoint(
                incident_id=incident.id,
                events=checkpoint.events,
                head=checkpoint.head,
                signed_at=utcnow(),
                key_id=checkpoint.key_id,
                line=checkpoint.line(),
            )
        )
        return checkpoint


def _covered(session: Session, incident: Incident) -> bool:
    latest = session.scalar(
        select(StoredCheckpoint.events)
        .where(StoredCheckpoint.incident_id == incident.id)
        .order_by(StoredCheckpoint.events.desc())
        .limit(1)
    )
    return latest is not None and latest >= incident.timeline_length


# --- Checking the chain against them ----------------------------------------------------------


@dataclass
class AnchorCheck:
    """What :func:`check_anchors` found. ``trusted`` names the anchor whose latest valid
    checkpoint reaches furthest; ``problems`` is empty when every checkpoint holds."""

    trusted: str | None = None
    latest: Checkpoint | None = None
    reached: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self, events: int) -> dict[str, object]:
        """For the API and the pages: what anchors the timeline, up to which event."""
        latest = self.latest
        return {
            "anchored": latest is not None and not self.problems,
            "trusted": self.trusted,
            "checkpoint_events": latest.events if latest else None,
            "signed_at": latest.signed_at if latest else None,
            "key_id": latest.key_id if latest else None,
            "unanchored_events": events - latest.events if latest else events,
            "problems": self.problems,
        }


def check_anchors(
    session: Session,
    incident: Incident,
    witness: Witness | None,
    keys: Mapping[str, Ed25519PublicKey],
) -> AnchorCheck:
    """Hold the stored chain to every checkpoint reachable: each must be signed by a
    trusted key, and the event it names must exist with the head it records."""
    result = AnchorCheck()
    sources: list[tuple[str, list[Checkpoint]]] = []
    if witness is not None:
        found, problems = witness.read(incident.key)
        result.problems += problems
        sources.append((f"{witness.name} ({witness.path(incident.key).name})", found))
    stored, problems = _stored(session, incident)
    result.problems += problems
    sources.append(("the database's copies", stored))
    wanted = {c.events for _, found in sources for c in found}
    hashes = _hashes_at(session, incident, wanted)
    for name, found in sources:
        valid = []
        for checkpoint in found:
            problem = holds(
                checkpoint,
                incident=incident.key,
                incident_id=incident.id,
                length=incident.timeline_length,
                hashes=hashes,
                keys=keys,
                anchor=name,
                where="in the database",
            )
            if problem:
                result.problems.append(problem)
            else:
                valid.append(checkpoint)
        if found:
            result.reached.append(f"{name}: {len(found)} checkpoint(s)")
        best = best_of(valid)
        if best and (result.latest is None or best.events > result.latest.events):
            result.trusted, result.latest = name, best
    return result


def holds(
    checkpoint: Checkpoint,
    *,
    incident: str,
    incident_id: int | None,
    length: int,
    hashes: Mapping[int, str],
    keys: Mapping[str, Ed25519PublicKey],
    anchor: str,
    where: str,
) -> str | None:
    """Why ``checkpoint`` does not hold for the timeline whose event hashes (by seq) are
    ``hashes`` and whose length is ``length`` (``where`` says which: in the database, in
    a bundle), or None when it does. ``incident_id`` is None where ids are not known."""
    said = f"{anchor}: the checkpoint of event {checkpoint.events} signed {checkpoint.signed_at}"
    public = keys.get(checkpoint.key_id)
    if public is None:
        return f"{said} is signed by key {checkpoint.key_id}, which is not trusted here"
    if not signature_holds(checkpoint, public) or incident_id not in (None, checkpoint.incident_id):
        return f"{said} does not verify: its signature or incident is wrong"
    if checkpoint.incident != incident:
        return f"{said} is of {checkpoint.incident}, not {incident}"
    actual = hashes.get(checkpoint.events)
    if actual is None:
        return (
            f"{said} records {checkpoint.events} events (head {checkpoint.head}); the timeline"
            f" {where} holds {length}: events were deleted"
        )
    if actual != checkpoint.head:
        return (
            f"{said} records head {checkpoint.head}; event {checkpoint.events} {where} hashes"
            f" to {actual}: the timeline was rewritten"
        )
    return None


def best_of(checkpoints: Iterable[Checkpoint]) -> Checkpoint | None:
    """The checkpoint that anchors furthest."""
    return max(checkpoints, key=lambda c: c.events, default=None)


def reachable(session: Session, incident: Incident, witness: Witness | None) -> list[Checkpoint]:
    """Every readable checkpoint of the incident, from the witness and the database's
    copies, each once (for exports: a bundle carries them to be checked offline)."""
    found = witness.read(incident.key)[0] if witness is not None else []
    found += _stored(session, incident)[0]
    return list({c.signature: c for c in found}.values())


def _stored(session: Session, incident: Incident) -> tuple[list[Checkpoint], list[str]]:
    found, problems = [], []
    rows = session.scalars(
        select(StoredCheckpoint.line)
        .where(StoredCheckpoint.incident_id == incident.id)
        .order_by(StoredCheckpoint.id)
    )
    for line in rows:
        try:
            found.append(Checkpoint.from_line(line))
        except (ValueError, RecursionError) as exc:
            problems.append(f"a checkpoint kept in the database is not one: {exc}")
    return found, problems


def _hashes_at(session: Session, incident: Incident, seqs: Iterable[int]) -> dict[int, str]:
    wanted = sorted(set(seqs))
    hashes: dict[int, str] = {}
    for start in range(0, len(wanted), 500):
        rows = session.execute(
            select(TimelineEvent.seq, TimelineEvent.hash).where(
                TimelineEvent.incident_id == incident.id,
                TimelineEvent.seq.in_(wanted[start : start + 500]),
            )
        )
        hashes.update({seq: digest for seq, digest in rows})
    return hashes


# --- This process's anchoring ----------------------------------------------------------------


def anchoring_from(config: Settings) -> Anchoring | None:
    """The configured key and witness, or None when anchoring is off. Embedded, the key is
    created on first use (home/checkpoint.key) like the data key."""
    path = config.checkpoint_key
    if path is None:
        return None
    if config.checkpoint_key_file is None and not path.exists():
        write_key_pair(path)
    return Anchoring(load_signer(path), Witness(config.witness))


def checkpoint_incidents(
    db: Database, anchoring: Anchoring, reasons: Mapping[int, str]
) -> list[Checkpoint]:
    """A checkpoint of each incident (``{id: reason}``), each in a unit of work of its own.

    A failure (the witness unreachable, the database busy) is logged, not raised: what it
    follows has committed already, and the watchdog's next run checkpoints the same head."""
    taken = []
    for incident_id, reason in sorted(reasons.items()):
        try:
            with db.unit_of_work() as session:
                incident = session.get(Incident, incident_id)
                if incident is not None and (
                    done := anchoring.checkpoint(session, incident, reason)
                ):
                    taken.append(done)
        except (OSError, SQLAlchemyError) as exc:
            log.warning(
                "no checkpoint of incident %s (%s): %s; the next watchdog run takes it",
                incident_id,
                reason,
                exc,
            )
    return taken
