"""Which database backends this run covers."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

from tests.conftest import POSTGRES_URL


def test_postgres_backend_is_covered() -> None:
    """Skips (once, visibly) when no PostgreSQL server is configured for the run."""
    if not POSTGRES_URL:
        pytest.skip("PostgreSQL tests not run: DV_TEST_POSTGRES_URL is unset")


def test_database_has_what_the_backend_needs(migrated_engine: Engine, backend: str) -> None:
    with migrated_engine.connect() as connection:
        if backend == "sqlite":
            assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        else:
            version = connection.execute(text("SELECT postgis_version()")).scalar()
            assert version
