"""The migrations build exactly the schema the models describe, on both backends.

A model changed without its Alembic migration would pass every other test (they build the
schema through the migrations) and then fail on a user's upgraded database.
"""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from breachflow.models.db import Database
from breachflow.models.registry import Base


def test_the_migrated_schema_is_the_models_schema(db: Database) -> None:
    with db.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert differences == []
