"""The process's settings and database, built once and shared by the flow's tasks."""

from __future__ import annotations

from functools import cache

from models.db import Database
from models.settings import Settings


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
