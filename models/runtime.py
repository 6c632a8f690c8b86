"""The process's settings, database and logs, built once and shared by its flows and tasks."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from functools import cache

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.orm import Session

from breachflow.models.anchor import (
    AnchorCheck,
    Anchoring,
    Witness,
    anchoring_from,
    check_anchors,
    checkpoint_incidents,
    key_id,
)
from breachflow.models.crypto import Vault, load_key
from breachflow.models.db import Database
from breachflow.models.incident import Incident
from breachflow.models.meta import check_key
from breachflow.models.settings import Settings


@cache
def settings() -> Settings:
    return Settings()


@cache
def database() -> Database:
    db = Database(settings().resolved_database_url)
    db.upgrade()
    if (signing := anchoring()) is not None:
        db.after_stage = lambda staged: _checkpoint(db, signing, staged)
    return db


@cache
def anchoring() -> Anchoring | None:
    """The timeline's signing key and witness, when configured (models/anchor.py)."""
    return anchoring_from(settings())


def _checkpoint(db: Database, signing: Anchoring, staged: dict[int, str]) -> None:
    checkpoint_incidents(db, signing, staged)


def check_timeline_anchors(
    session: Session, incident: Incident, extra_keys: Iterable[Ed25519PublicKey] = ()
) -> AnchorCheck:
    """The incident's stored chain against every checkpoint this process can reach: the
    configured witness and the database's copies, trusting the configured signing key's
    public half and ``extra_keys`` (keys rotated out, or a verifier's own copy)."""
    config, signing = settings(), anchoring()
    keys = {key_id(public): public for public in extra_keys}
    if signing is not None:
        keys[signing.signer.key_id] = signing.signer.private.public_key()
    configured = config.witness_dir is not None or config.checkpoint_key is not None
    return check_anchors(session, incident, Witness(config.witness) if configured else None, keys)


def reset() -> None:
    """Forget the cached settings and database (after the environment changed, in tests)."""
    if database.cache_info().currsize:
        database().dispose()
    database.cache_clear()
    anchoring.cache_clear()
    settings.cache_clear()
    vault.cache_clear()


@cache
def vault() -> Vault:
    """The data key's vault, checked against the key this database was written with."""
    config = settings()
    secret = config.data_key.get_secret_value() if config.data_key else None
    keyed = Vault(load_key(secret, config.key_file, create=config.embedded))
    with database().unit_of_work() as session:
        check_key(session, keyed)
    return keyed


#: Libraries whose own warnings a user cannot act on (WeasyPrint's note that it subsets
#: fonts with fontTools, say): they go to ``$BREACH_HOME/logs/libraries.log``.
LIBRARY_LOGGERS = ("weasyprint", "fontTools")


class _LibraryLog(logging.Handler):
    """Appends to the library log of wherever the settings put the home at that moment, or
    to the console when ``BREACH_LIBRARY_LOGS=console`` (for debugging)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            config = settings()
            if config.library_logs == "console":
                sys.stderr.write(self.format(record) + "\n")
                return
            directory = config.home / "logs"
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            with open(directory / "libraries.log", "a", encoding="utf-8") as out:
                out.write(self.format(record) + "\n")
        except (OSError, ValueError):
            pass  # a log we cannot write must not stop a letter from being printed


def route_library_logs() -> None:
    """Send the libraries' warnings to the library log instead of the terminal, once."""
    handler = _LibraryLog()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(h, _LibraryLog) for h in logger.handlers):
            logger.addHandler(handler)
        logger.propagate = False
