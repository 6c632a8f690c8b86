"""An index of the ledger rows still to send, so a claim does not walk the sent ones.

At 1,000,000 rows a claim of 500 took 35 ms with nothing sent and 655 ms with 90 % sent.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 08:45:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

PENDING = "state IN ('queued', 'sending', 'failed_temporary')"


def upgrade() -> None:
    op.create_index(
        "ix_notifications_pending",
        "notifications",
        ["incident_id", "channel", "id"],
        unique=False,
        postgresql_where=sa.text(PENDING),
        sqlite_where=sa.text(PENDING),
    )


def downgrade() -> None:
    op.drop_index("ix_notifications_pending", table_name="notifications")
