"""The import's hot path, written to the database driver directly.

Importing millions of people spends most of its time in per-row parameter processing if
it goes through SQLAlchemy's statement layer. Here, and only here, rows go to the driver
as tuples: ``COPY`` on PostgreSQL, ``executemany`` on SQLite, inside the session's own
transaction.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC
from typing import Any

from sqlalchemy import JSON, Table
from sqlalchemy.orm import Session

from models.base import UTCDateTime


def _converter(column_type: object) -> Callable[[Any], Any] | None:
    """How a value of this column type is stored by the driver; None: as it is."""
    if isinstance(column_type, UTCDateTime):
        return lambda value: value.astimezone(UTC).replace(tzinfo=None)
    if isinstance(column_type, JSON):
        return json.dumps
    return None


def insert_rows(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    if not rows:
        return
    names = [c.name for c in table.columns if c.name in rows[0]]
    converters = [_converter(table.c[name].type) for name in names]

    def stored(row: dict[str, Any]) -> tuple[Any, ...]:
        values = (row[name] for name in names)
        return tuple(
            value if convert is None or value is None else convert(value)
            for value, convert in zip(values, converters, strict=True)
        )

    connection = session.connection()
    if connection.dialect.name == "postgresql":
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        with cursor.copy(f"COPY {table.name} ({', '.join(names)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(stored(row))
        return
    marks = ", ".join("?" for _ in names)
    connection.exec_driver_sql(
        f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({marks})",  # noqa: S608
        [stored(row) for row in rows],
    )


def select_where_in(
    session: Session,
    table: Table,
    columns: Sequence[str],
    scope: tuple[str, Any],
    key: str,
    values: Iterable[Any],
) -> list[Any]:
    """``SELECT columns FROM table WHERE scope = ? AND key IN values``, one round trip."""
    values = list(values)
    if not values:
        return []
    connection = session.connection()
    scope_column, scope_value = scope
    selected = ", ".join(columns)
    if connection.dialect.name == "postgresql":
        sql = f"SELECT {selected} FROM {table.name} WHERE {scope_column} = %s AND {key} = ANY(%s)"  # noqa: S608
        return list(connection.exec_driver_sql(sql, (scope_value, values)))
    marks = ", ".join("?" for _ in values)
    sql = f"SELECT {selected} FROM {table.name} WHERE {scope_column} = ? AND {key} IN ({marks})"  # noqa: S608
    return list(connection.exec_driver_sql(sql, (scope_value, *values)))
