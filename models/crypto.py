"""Encryption at rest for the personal data we hold about affected people.

The people in a breach trust us least of all to leak them again. Their contact details are
stored encrypted (AES-256-GCM, a fresh nonce per value, the column name as associated data
so a ciphertext cannot be moved to another column), and are only decrypted at the moment a
notice is sent. Deduplication never decrypts: it compares *blind indexes*, keyed HMACs of
the normalized value scoped to one incident, so equal addresses match inside an incident
but cannot be linked across incidents by someone reading the database.

One 32-byte master key gives both sub-keys (HKDF). It comes from ``BREACH_DATA_KEY``
(base64) or a key file; the embedded default creates ``.breach/data.key`` with mode 0600.
The database remembers the key's fingerprint, so a wrong key is refused, not used.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from breachflow.models.errors import BreachError

VERSION = b"\x01"
NONCE_BYTES = 12


class DataKeyError(BreachError):
    """The data key is missing, malformed, or not the one this database was written with."""


def _derive(master: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(master)


class Vault:
    def __init__(self, master_key: bytes) -> None:
        if len(master_key) != 32:
            raise DataKeyError("the data key must be 32 bytes (base64 of 32 random bytes)")
        self.master_key = master_key  # handed to import worker processes, nowhere else
        self._aead = AESGCM(_derive(master_key, b"breachflow contact encryption"))
        self._index_key = _derive(master_key, b"breachflow blind index")
        self.fingerprint = hmac.new(
            _derive(master_key, b"breachflow key check"), b"fingerprint", hashlib.sha256
        ).hexdigest()[:32]

    def subkey(self, purpose: str) -> bytes:
        """A key of its own for ``purpose`` (e.g. signing the pages' sessions): derived, so
        nothing made with it can be turned into the encryption or index keys."""
        return _derive(self.master_key, f"breachflow {purpose}".encode())

    def encrypt(self, column: str, value: str | None) -> bytes | None:
        if value is None:
            return None
        nonce = os.urandom(NONCE_BYTES)
        return VERSION + nonce + self._aead.encrypt(nonce, value.encode(), column.encode())

    def decrypt(self, column: str, token: bytes | None) -> str | None:
        if token is None:
            return None
        nonce, sealed = token[1 : 1 + NONCE_BYTES], token[1 + NONCE_BYTES :]
        return self._aead.decrypt(nonce, sealed, column.encode()).decode()

    def blind_index(self, incident_id: int, column: str, normalized: str | None) -> str | None:
        """Keyed, incident-scoped equality token for a normalized contact detail."""
        if normalized is None:
            return None
        message = f"{incident_id}:{column}:{normalized}".encode()
        return hmac.new(self._index_key, message, hashlib.sha256).hexdigest()[:32]


def generate_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def load_key(value: str | None, path: Path, *, create: bool) -> bytes:
    """The master key from ``value``, else from ``path`` (created 0600 if ``create``)."""
    if value:
        return _decode(value, "BREACH_DATA_KEY")
    if not path.exists():
        if not create:
            raise DataKeyError(
                f"no data key: set BREACH_DATA_KEY or BREACH_DATA_KEY_FILE (no file at {path}). "
                "With an external database every machine must use the same key; create one "
                "with `breach keygen`"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(generate_key() + "\n")
    if path.stat().st_mode & 0o077:
        raise DataKeyError(f"{path} is readable by other users; run `chmod 600 {path}`")
    return _decode(path.read_text().strip(), str(path))


def _decode(text: str, source: str) -> bytes:
    try:
        key = base64.b64decode(text, validate=True)
    except ValueError:
        raise DataKeyError(f"{source} is not base64") from None
    if len(key) != 32:
        raise DataKeyError(f"{source} must hold 32 bytes; it holds {len(key)}")
    return key
