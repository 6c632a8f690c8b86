"""Contact details encrypted at rest, with blind indexes; residence; purge schedule.

Existing subjects' names, emails and phones are encrypted with the configured data key
(see ``models.crypto``) before the clear-text columns are dropped, so nothing is lost.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 23:36:23.065387
"""

import sqlalchemy as sa
from alembic import op

import breachflow.models.base

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

CONTACTS = ("name", "email", "phone")


def _vault():
    from breachflow.models.crypto import Vault, load_key
    from breachflow.models.settings import Settings

    settings = Settings()
    secret = settings.data_key.get_secret_value() if settings.data_key else None
    return Vault(load_key(secret, settings.key_file, create=settings.embedded))


def upgrade() -> None:
    op.create_table(
        "breach_meta",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=500), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_breach_meta")),
    )
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("purge_after", breachflow.models.base.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(
            sa.Column("purged_at", breachflow.models.base.UTCDateTime(), nullable=True)
        )

    with op.batch_alter_table("subjects", schema=None) as batch_op:
        batch_op.add_column(sa.Column("name_enc", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("email_enc", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("email_index", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("phone_enc", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("phone_index", sa.String(length=32), nullable=True))
        batch_op.add_column(
            sa.Column("residence_inferred", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("data_categories", sa.JSON(), nullable=True))
        batch_op.create_index("ix_subjects_email_index", ["incident_id", "email_index"])
        batch_op.drop_index("ix_subjects_incident_id")  # the unique index leads with it
        batch_op.create_index("ix_subjects_phone_index", ["incident_id", "phone_index"])

    _encrypt_existing()

    with op.batch_alter_table("subjects", schema=None) as batch_op:
        for column in CONTACTS:
            batch_op.drop_column(column)


def _encrypt_existing() -> None:
    bind = op.get_bind()
    rows = bind.execute(
        sa.text("SELECT id, incident_id, name, email, phone FROM subjects")
    ).fetchall()
    if not rows:
        return
    vault = _vault()
    update = sa.text(
        "UPDATE subjects SET name_enc = :name_enc, email_enc = :email_enc, "
        "email_index = :email_index, phone_enc = :phone_enc, phone_index = :phone_index "
        "WHERE id = :id"
    )
    bind.execute(
        update,
        [
            {
                "id": row.id,
                "name_enc": vault.encrypt("name", row.name),
                "email_enc": vault.encrypt("email", row.email),
                "email_index": vault.blind_index(row.incident_id, "email", row.email),
                "phone_enc": vault.encrypt("phone", row.phone),
                "phone_index": vault.blind_index(row.incident_id, "phone", row.phone),
            }
            for row in rows
        ],
    )


def downgrade() -> None:
    with op.batch_alter_table("subjects", schema=None) as batch_op:
        batch_op.add_column(sa.Column("email", sa.VARCHAR(length=320), nullable=True))
        batch_op.add_column(sa.Column("name", sa.VARCHAR(length=300), nullable=True))
        batch_op.add_column(sa.Column("phone", sa.VARCHAR(length=32), nullable=True))
    bind = op.get_bind()
    rows = bind.execute(
        sa.text("SELECT id, name_enc, email_enc, phone_enc FROM subjects")
    ).fetchall()
    if rows:
        vault = _vault()
        bind.execute(
            sa.text(
                "UPDATE subjects SET name = :name, email = :email, phone = :phone WHERE id = :id"
            ),
            [
                {
                    "id": row.id,
                    **{c: vault.decrypt(c, getattr(row, f"{c}_enc")) for c in CONTACTS},
                }
                for row in rows
            ],
        )
    with op.batch_alter_table("subjects", schema=None) as batch_op:
        batch_op.create_index("ix_subjects_incident_id", ["incident_id"])
        batch_op.drop_index("ix_subjects_phone_index")
        batch_op.drop_index("ix_subjects_email_index")
        for column in (
            "data_categories", "residence_inferred", "phone_index", "phone_enc",
            "email_index", "email_enc", "name_enc",
        ):  # fmt: skip
            batch_op.drop_column(column)
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_column("purged_at")
        batch_op.drop_column("purge_after")
    op.drop_table("breach_meta")
