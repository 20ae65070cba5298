"""The migrations build exactly the tables the models describe, on every backend."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine

from digital_village import migrate, models


def test_migrated_database_matches_the_models(migrated_engine: Engine) -> None:
    with migrated_engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={"compare_type": True, "include_object": migrate.include_object},
        )
        differences = compare_metadata(context, models.Base.metadata)
    assert differences == []


def test_database_is_at_every_shipped_head(migrated_engine: Engine) -> None:
    assert migrate.check_current(migrated_engine)
