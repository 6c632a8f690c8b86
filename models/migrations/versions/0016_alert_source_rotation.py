"""Alert-source secrets can be rotated (the old one valid for a grace period) and revoked.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 18:10:00
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

from breachflow.models.base import UTCDateTime

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

COLUMNS: list[tuple[str, Any]] = [
    ("revoked_by", sa.String(200)),
    ("previous_secret_enc", sa.LargeBinary()),
    ("previous_valid_until", UTCDateTime()),
    ("rotated_at", UTCDateTime()),
    ("rotated_by", sa.String(200)),
]


def upgrade() -> None:
    with op.batch_alter_table("alert_sources") as table:
        for name, kind in COLUMNS:
            table.add_column(sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alert_sources") as table:
        for name, _ in reversed(COLUMNS):
            table.drop_column(name)
