"""The day a letter handed to a mailing vendor is to be posted (its wave).

The new ledger state ``handed_over`` needs no change of schema: states are strings, and the
partial index of rows still to send (``ix_notifications_pending``) rightly leaves it out.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 12:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("notifications", sa.Column("mail_on", sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("notifications") as batch:
        batch.drop_column("mail_on")
