"""A deadline warning remembers when it was resolved (its page too); each staff channel
(Slack, Teams, a webhook) has a cursor per incident.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06 21:30:00
"""

import sqlalchemy as sa
from alembic import op

from breachflow.models.base import UTCDateTime

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deadline_warnings") as table:
        table.add_column(sa.Column("resolved_at", UTCDateTime(), nullable=True))
    op.create_table(
        "staff_cursors",
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("target", sa.String(16), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incidents.id"], name=op.f("fk_staff_cursors_incident_id_incidents")
        ),
        sa.PrimaryKeyConstraint("incident_id", "target", name=op.f("pk_staff_cursors")),
    )


def downgrade() -> None:
    op.drop_table("staff_cursors")
    with op.batch_alter_table("deadline_warnings") as table:
        table.drop_column("resolved_at")
