"""Ids and blind indexes compared byte for byte on PostgreSQL (COLLATE "C").

They are opaque strings; the database's locale collation only made every index comparison
slower. SQLite already compares them as bytes, so nothing changes there.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 00:52:00
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

COLUMNS = {"external_id": 200, "email_index": 32, "phone_index": 32}


def _collate(collation: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for column, length in COLUMNS.items():
        op.execute(
            f"ALTER TABLE subjects ALTER COLUMN {column} TYPE varchar({length}) COLLATE {collation}"
        )


def upgrade() -> None:
    _collate('"C"')


def downgrade() -> None:
    _collate('"default"')
