"""Two more clock anchors: classified as major (DORA) and corrective measure (CRA).

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06 23:50:00
"""

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


def downgrade() -> None:
    with op.batch_alter_table("incidents") as table:
        for name in COLUMNS:
            table.drop_column(name)
