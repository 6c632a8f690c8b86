"""The import's hot path, written to the database driver directly.

Importing millions of people spends most of its time in per-row parameter processing if
it goes through SQLAlchemy's statement layer. Here, and only here, rows go to the driver
as tuples: ``COPY`` on PostgreSQL, ``executemany`` on SQLite, inside the session's own
transaction. Rows come in the form the driver stores, so nothing is converted per value.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.orm import Session


def insert_rows(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` given in stored form: datetimes naive UTC, JSON already as text."""
    if not rows:
        return
    names = [c.name for c in table.columns if c.name in rows[0]]

    def stored(row: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(row[name] for name in names)

    connection = session.connection()
    if connection.dialect.name == "postgresql":
        # Binary COPY: ciphertexts go as bytes, not hex text the server must parse back.
        types: dict[str, str] = dict(
            connection.exec_driver_sql(
                "SELECT column_name, udt_name FROM information_schema.columns "
                "WHERE table_name = %s AND table_schema = current_schema()",
                (table.name,),
            )
            .tuples()
            .all()
        )
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        sql = f"COPY {table.name} ({', '.join(names)}) FROM STDIN (FORMAT BINARY)"
        with cursor.copy(sql) as copy:
            # json's binary form is its UTF-8 text: send our JSON text as text.
            copy.set_types(["text" if types[n] == "json" else types[n] for n in names])
            for row in rows:
                copy.write_row(stored(row))
        return
    marks = ", ".join("?" for _ in names)
    connection.exec_driver_sql(
        f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({marks})",  # noqa: S608
        [stored(row) for row in rows],
    )


def analyze(session: Session, table: Table) -> None:
    """Refresh the planner's statistics of ``table``, inside the session's transaction.

    Rows a transaction bulk-inserts are invisible to autovacuum until it commits, so the
    planner still sees the table as it was: nearly empty at the start of a large import or
    queue. For a lookup by one key of a two-column index it then picks any index on the
    incident and reads all of the incident's rows per lookup (49,000 rows read per chunk of
    2,000 at 100,000 people, tests/models/test_scaling.py). ``ANALYZE`` counts the
    transaction's own new rows; it samples, so it costs about the same at any size.
    """
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"ANALYZE {table.name}")


@contextmanager
def planner_settings(session: Session, **settings: str) -> Iterator[None]:
    """PostgreSQL planner settings (``enable_nestloop="off"``...) for the statements of the
    block only, inside the session's transaction; nothing elsewhere.

    Set with ``set_config(..., is_local)``: should a statement fail, the rollback undoes
    them with the transaction."""
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        yield
        return
    current = "SELECT current_setting(%s)"
    before = {name: connection.exec_driver_sql(current, (name,)).scalar_one() for name in settings}
    for name, value in settings.items():
        connection.exec_driver_sql("SELECT set_config(%s, %s, true)", (name, value))
    yield
    for name, value in before.items():
        connection.exec_driver_sql("SELECT set_config(%s, %s, true)", (name, value))


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
        # One index probe per key, whatever the planner believes of the table. For one
        # list of keys (``key = ANY(...)``) PostgreSQL prefers, from some thousands of
        # people on and more so while its statistics lag a bulk import, to read all of
        # the incident's rows and hash the list: right for one query, but done for every
        # chunk that reads everyone imported so far, a cost that grows with the square of
        # the population (tests/models/test_scaling.py). A lateral subquery behind
        # ``OFFSET 0`` (which keeps it from being flattened into a join) is run per key,
        # and for one key the two-column index is the only sensible plan.
        sql = (
            f"SELECT found.* FROM unnest(%s::text[]) AS wanted(value)"  # noqa: S608
            f" CROSS JOIN LATERAL (SELECT {selected} FROM {table.name}"
            f" WHERE {scope_column} = %s AND {key} = wanted.value OFFSET 0) AS found"
        )
        # Planned afresh each time, never prepared: psycopg prepares a statement on its
        # fifth run, and PostgreSQL may then settle on a generic plan made while the table
        # was nearly empty.
        import psycopg  # the PostgreSQL driver: imported only where it is used
        from psycopg.rows import namedtuple_row

        raw = cast("psycopg.Connection[Any]", connection.connection.dbapi_connection)
        with raw.cursor(row_factory=namedtuple_row) as cursor:
            cursor.execute(sql, ([str(v) for v in values], scope_value), prepare=False)
            return cursor.fetchall()
    marks = ", ".join("?" for _ in values)
    sql = f"SELECT {selected} FROM {table.name} WHERE {scope_column} = ? AND {key} IN ({marks})"  # noqa: S608
    return list(connection.exec_driver_sql(sql, (scope_value, *values)))
