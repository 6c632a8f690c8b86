"""Signed checkpoints of each timeline (the database's copies; the witness holds the anchor).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06 21:00:00
"""

import sqlalchemy as sa
from alembic import op

from breachflow.models.base import UTCDateTime

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "timeline_checkpoints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("head", sa.String(64), nullable=False),
        sa.Column("signed_at", UTCDateTime(), nullable=False),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("line", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_timeline_checkpoints_incident_id_incidents"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_timeline_checkpoints")),
    )
    op.create_index(
        op.f("ix_timeline_checkpoints_incident_id"), "timeline_checkpoints", ["incident_id"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_timeline_checkpoints_incident_id"), "timeline_checkpoints")
    op.drop_table("timeline_checkpoints")
