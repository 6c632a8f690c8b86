"""An incident can be a tabletop exercise.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06 21:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("incidents") as table:
        table.add_column(
            sa.Column("exercise", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("incidents") as table:
        table.drop_column("exercise")
