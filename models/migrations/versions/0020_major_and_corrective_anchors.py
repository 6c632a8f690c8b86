"""Two more clock anchors: classified as major (DORA) and corrective measure (CRA); a
report's deadline rule becomes text of any length (several clocks, each with its note, run
past 300 characters: DORA's initial notification is about 600).

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06 23:50:00
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

import breachflow.models.base

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

COLUMNS = ("classified_major_at", "corrective_measure_at")


def upgrade() -> None:
    with op.batch_alter_table("incidents") as table:
        for name in COLUMNS:
            table.add_column(sa.Column(name, breachflow.models.base.UTCDateTime(), nullable=True))
    _retype("deadline_rule", sa.String(300), sa.Text())


def downgrade() -> None:
    _retype("deadline_rule", sa.Text(), sa.String(300))
    with op.batch_alter_table("incidents") as table:
        for name in COLUMNS:
            table.drop_column(name)


def _retype(column: str, old: sa.types.TypeEngine[Any], new: sa.types.TypeEngine[Any]) -> None:
    """SQLite rebuilds the table (batch); PostgreSQL alters the column in place."""
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("regulator_reports", recreate="always") as table:
            table.alter_column(column, type_=new, existing_type=old, existing_nullable=False)
    else:
        op.alter_column(
            "regulator_reports", column, type_=new, existing_type=old, existing_nullable=False
        )
