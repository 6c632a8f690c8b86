"""A throwaway PostgreSQL database for one benchmark run, made and dropped on one server.

Every benchmark imports it from beside itself (`python bench/X.py` puts bench/ on the path).
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa


def create_database(url: str) -> tuple[str, str]:
    """A new empty database on the server of ``url``: its name and its URL."""
    name = f"breach_bench_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine.dispose()
    return name, sa.engine.make_url(url).set(database=name).render_as_string(hide_password=False)


def drop_database(url: str, name: str) -> None:
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    engine.dispose()
