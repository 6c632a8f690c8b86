"""The process's settings and database, built once and shared by the flow's tasks."""

from __future__ import annotations

from functools import cache

from breachflow.models.crypto import Vault, load_key
from breachflow.models.db import Database
from breachflow.models.meta import check_key
from breachflow.models.settings import Settings


@cache
def settings() -> Settings:
    return Settings()


@cache
def database() -> Database:
    db = Database(settings().resolved_database_url)
    db.upgrade()
    return db


def reset() -> None:
    """Forget the cached settings and database (after the environment changed, in tests)."""
    if database.cache_info().currsize:
        database().dispose()
    database.cache_clear()
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
