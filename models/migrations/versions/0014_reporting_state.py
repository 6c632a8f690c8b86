"""The state ``reported`` becomes ``reporting``: reports written is not reports filed.

An incident stays ``reporting`` until every obligation is met (every report filed, the
announcement's period over, the closure signed off) or a named person closes it early with
a reason. Incidents stored as ``reported`` are in exactly that position. The timeline keeps
the old word in the events it recorded then: they are the record of what was said.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 01:00:00
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE incidents SET state = 'reporting' WHERE state = 'reported'")


def downgrade() -> None:
    op.execute("UPDATE incidents SET state = 'reported' WHERE state = 'reporting'")
