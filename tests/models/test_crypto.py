"""Encryption at rest: AES-GCM bound to its column, blind indexes, and the data key's care."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag

from breachflow.models import runtime
from breachflow.models.crypto import DataKeyError, Vault, generate_key, load_key
from breachflow.models.db import Database
from breachflow.models.meta import KEY_FINGERPRINT, Meta, check_key


@pytest.fixture
def vault() -> Vault:
    return Vault(os.urandom(32))


def test_encrypt_then_decrypt_gives_the_value_back(vault: Vault) -> None:
    """A value encrypted for a column decrypts to itself; None stays None."""
    for value in ("alice@example.com", "+8613800138000", "王芳", ""):
        token = vault.encrypt("email", value)
        assert isinstance(token, bytes)
        if value:
            assert value.encode() not in token
        assert vault.decrypt("email", token) == value
    assert vault.encrypt("email", None) is None
    assert vault.decrypt("email", None) is None


def test_the_same_value_encrypts_differently_each_time(vault: Vault) -> None:
    """A fresh nonce per value: equal plaintexts cannot be spotted by equal ciphertexts."""
    tokens = {vault.encrypt("email", "alice@example.com") for _ in range(20)}
    assert len(tokens) == 20
    assert {vault.decrypt("email", t) for t in tokens} == {"alice@example.com"}


def test_a_ciphertext_moved_to_another_column_does_not_decrypt(vault: Vault) -> None:
    """The column is associated data: an email token pasted into phone fails authentication."""
    token = vault.encrypt("email", "alice@example.com")
    with pytest.raises(InvalidTag):
        vault.decrypt("phone", token)
    with pytest.raises(InvalidTag):
        vault.decrypt("name", token)


def test_a_tampered_or_foreign_ciphertext_does_not_decrypt(vault: Vault) -> None:
    """A flipped bit, or a token made with another key, is refused, never decrypted wrongly."""
    token = vault.encrypt("email", "alice@example.com")
    assert token is not None
    tampered = token[:-1] + bytes([token[-1] ^ 1])
    with pytest.raises(InvalidTag):
        vault.decrypt("email", tampered)
    with pytest.raises(InvalidTag):
        Vault(os.urandom(32)).decrypt("email", token)


def test_blind_indexes_match_within_an_incident_only(vault: Vault) -> None:
    """Equal values give equal indexes in one incident, different ones across incidents."""
    first = vault.blind_index(1, "email", "alice@example.com")
    assert first == vault.blind_index(1, "email", "alice@example.com")
    assert first != vault.blind_index(2, "email", "alice@example.com")
    assert first != vault.blind_index(1, "email", "bob@example.com")
    assert first != vault.blind_index(1, "phone", "alice@example.com")
    assert first != Vault(os.urandom(32)).blind_index(1, "email", "alice@example.com")
    assert first is not None and "alice" not in first
    assert vault.blind_index(1, "email", None) is None


def test_load_key_creates_a_private_key_file_and_reuses_it(tmp_path: Path) -> None:
    """create=True writes a 0600 file of a base64 32-byte key, and the next load reuses it."""
    path = tmp_path / "home" / "data.key"
    key = load_key(None, path, create=True)
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert base64.b64decode(path.read_text().strip()) == key
    content = path.read_bytes()
    assert load_key(None, path, create=True) == key
    assert load_key(None, path, create=False) == key
    assert path.read_bytes() == content


def test_a_missing_key_file_is_not_created_without_create(tmp_path: Path) -> None:
    """create=False and no file: DataKeyError telling how to fix it; no file appears."""
    path = tmp_path / "data.key"
    with pytest.raises(DataKeyError) as caught:
        load_key(None, path, create=False)
    message = str(caught.value)
    assert "BREACH_DATA_KEY" in message
    assert "breach keygen" in message
    assert str(path) in message
    assert not path.exists()


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    """A 0644 key file is refused with the chmod that fixes it."""
    path = tmp_path / "data.key"
    path.write_text(generate_key() + "\n")
    path.chmod(0o644)
    with pytest.raises(DataKeyError, match=r"readable by other users.*chmod 600"):
        load_key(None, path, create=False)
    path.chmod(0o640)
    with pytest.raises(DataKeyError, match="chmod 600"):
        load_key(None, path, create=True)


def test_a_key_given_by_value_wins_over_the_file(tmp_path: Path) -> None:
    """BREACH_DATA_KEY is used as given; no key file is read or created."""
    value = generate_key()
    path = tmp_path / "data.key"
    assert load_key(value, path, create=True) == base64.b64decode(value)
    assert not path.exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not base64 at all!", "is not base64"),
        (base64.b64encode(os.urandom(16)).decode(), "must hold 32 bytes; it holds 16"),
        (base64.b64encode(os.urandom(48)).decode(), "must hold 32 bytes; it holds 48"),
    ],
    ids=["not base64", "16 bytes", "48 bytes"],
)
def test_a_malformed_key_is_refused(tmp_path: Path, text: str, message: str) -> None:
    """A key that is not base64 of 32 bytes is refused, from the environment or a file."""
    with pytest.raises(DataKeyError, match=f"BREACH_DATA_KEY {message}"):
        load_key(text, tmp_path / "unused.key", create=True)
    path = tmp_path / "data.key"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text + "\n")
    with pytest.raises(DataKeyError, match=message):
        load_key(None, path, create=False)
    with pytest.raises(DataKeyError, match="32 bytes"):
        Vault(os.urandom(16))


def test_the_database_refuses_a_different_key(db: Database) -> None:
    """The first key's fingerprint is remembered; another key is refused with a clear message."""
    first, other = Vault(os.urandom(32)), Vault(os.urandom(32))
    with db.unit_of_work() as session:
        check_key(session, first)
    with db.unit_of_work() as session:
        check_key(session, first)  # the same key again is fine
        stored = session.get(Meta, KEY_FINGERPRINT)
        assert stored is not None and stored.value == first.fingerprint
    with (
        pytest.raises(DataKeyError, match="different data key") as caught,
        db.unit_of_work() as session,
    ):
        check_key(session, other)
    assert "BREACH_DATA_KEY" in str(caught.value)
    with db.unit_of_work() as session:
        stored = session.get(Meta, KEY_FINGERPRINT)
        assert stored is not None and stored.value == first.fingerprint


def test_the_runtime_refuses_to_start_with_another_key(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """runtime.vault() with BREACH_DATA_KEY changed after the database was written fails."""
    runtime.vault()  # remembers the fixture's key
    monkeypatch.setenv("BREACH_DATA_KEY", generate_key())
    runtime.reset()
    with pytest.raises(DataKeyError, match="different data key"):
        runtime.vault()
