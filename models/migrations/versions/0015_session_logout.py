"""Logging out ends a session on the server, not only in the browser.

A page session is a signed cookie; logging out used to only delete it from the browser, so
a copy taken before still worked until it expired (8 hours). Each key now records when its
sessions were last ended: a cookie issued then or before is refused.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 05:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as table:
        table.add_column(sa.Column("sessions_ended_at", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as table:
        table.drop_column("sessions_ended_at")
