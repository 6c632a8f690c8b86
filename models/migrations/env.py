"""Alembic environment: runs on the connection handed over by ``Database.upgrade``.

For development, ``alembic -c alembic.ini revision --autogenerate -m ...`` uses the URL
from ``BREACH_DATABASE_URL`` (or the embedded SQLite default).
"""

from alembic import context

from breachflow.models.db import Database
from breachflow.models.registry import Base
from breachflow.models.settings import Settings

connection = context.config.attributes.get("connection")


def run(conn) -> None:  # type: ignore[no-untyped-def]
    context.configure(connection=conn, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    run(connection)
else:
    with Database(Settings().resolved_database_url).engine.begin() as conn:
        run(conn)
