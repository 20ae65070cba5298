"""A database that is away or full is answered 503 or 507 problem+json, never 500.

The errors here are real ones from the drivers (a refused connection, a held lock, a database
at its page limit); scripts/drills/pg_restart.py and disk_full.py stage the real outages.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from digital_village import migrate
from digital_village.api.deps import SessionDep
from digital_village.app import create_app
from digital_village.config import Settings
from digital_village.db import Database, Failure, failure_of, make_engine
from digital_village.ledger import keys
from tests.api.test_app import assert_problem

UNREACHABLE = "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"


def _error_of(url: str, *statements: str, setup: tuple[str, ...] = ()) -> DBAPIError:
    """The error the last of ``statements`` raises (connecting counts as the first)."""
    engine = make_engine(url)
    try:
        with pytest.raises(DBAPIError) as caught, engine.connect() as connection:
            for statement in setup:
                connection.exec_driver_sql(statement)
            for statement in statements:
                connection.exec_driver_sql(statement)
        return caught.value
    finally:
        engine.dispose()


def test_a_sqlite_database_at_its_limit_is_full(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'full.db'}"
    error = _error_of(
        url,
        "CREATE TABLE filler (data BLOB)",
        "INSERT INTO filler VALUES (randomblob(1000000))",
        setup=("PRAGMA max_page_count = 8",),
    )
    assert "full" in str(error)
    assert failure_of(error) is Failure.DISK_FULL


def test_a_sqlite_write_lock_held_too_long_is_unavailable(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'busy.db'}"
    holder = make_engine(url)
    with holder.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    # A write session begins with BEGIN IMMEDIATE: it holds the write lock until it ends.
    with holder.execution_options(dv_write=True).connect() as connection:
        connection.exec_driver_sql("SELECT 1")
        error = _error_of(url, "INSERT INTO t VALUES (1)", setup=("PRAGMA busy_timeout = 0",))
    holder.dispose()
    assert "locked" in str(error)
    assert failure_of(error) is Failure.UNAVAILABLE


def test_mistakes_and_conflicts_are_not_outages(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'other.db'}"
    assert failure_of(_error_of(url, "SELEKT 1")) is None
    conflict = _error_of(
        url,
        "CREATE TABLE u (x INTEGER PRIMARY KEY)",
        "INSERT INTO u VALUES (1)",
        "INSERT INTO u VALUES (1)",
    )
    assert isinstance(conflict, IntegrityError)
    assert failure_of(conflict) is None
    assert failure_of(ValueError("not a database error")) is None


def test_an_unreachable_postgresql_is_unavailable() -> None:
    pytest.importorskip("psycopg")
    error = _error_of(UNREACHABLE, "SELECT 1")
    assert failure_of(error) is Failure.UNAVAILABLE


def test_an_unreachable_database_is_answered_503_from_start_up_on(tmp_path: Path) -> None:
    pytest.importorskip("psycopg")
    settings = Settings(data_dir=tmp_path, database_url=UNREACHABLE, log_level="CRITICAL")
    keys.ensure_signing_key(settings.effective_ledger_key_path, settings.ledger_origin)
    database = Database.from_url(UNREACHABLE)
    app = create_app(settings, database=database)
    # Start-up goes through (a worker replaced during an outage must not stop the server).
    with TestClient(app, raise_server_exceptions=False) as client:
        for response in (
            client.get("/api/v1/ledger/checkpoint"),
            client.get("/p/5106031012010100014"),
            client.post("/api/v1/events", json={}, headers={"Authorization": "Bearer dv_x_y"}),
        ):
            assert_problem(response, 503, "database is unavailable")
            assert response.headers["retry-after"] == "5"
        health = client.get("/healthz")
    database.dispose()
    assert health.status_code == 503
    assert any("cannot reach the database" in p for p in health.json()["problems"])


@pytest.fixture
def capped_app(tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, int]]]:
    """The app over a SQLite file whose page limit the test sets, with a route that writes."""
    url = f"sqlite:///{tmp_path / 'capped.db'}"
    engine = make_engine(url)
    with engine.begin() as connection:
        migrate.upgrade(connection)
        connection.exec_driver_sql("CREATE TABLE filler (data BLOB)")
        pages = int(connection.exec_driver_sql("PRAGMA page_count").scalar_one())
    engine.dispose()
    cap = {"pages": pages + 64}

    @event.listens_for(engine, "connect")
    def _limit(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute(f"PRAGMA max_page_count = {cap['pages']}")

    settings = Settings(data_dir=tmp_path, database_url=url, log_level="CRITICAL")
    keys.ensure_signing_key(settings.effective_ledger_key_path, settings.ledger_origin)
    app: FastAPI = create_app(settings, database=Database(engine))

    @app.post("/test/fill")
    def fill(session: SessionDep) -> dict[str, bool]:
        session.execute(text("INSERT INTO filler VALUES (randomblob(50000))"))
        return {"stored": True}

    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, cap
    engine.dispose()


def test_a_full_sqlite_disk_is_answered_507_reads_go_on_and_writes_resume(
    capped_app: tuple[TestClient, dict[str, int]],
) -> None:
    client, cap = capped_app
    statuses = [client.post("/test/fill").status_code for _ in range(40)]
    assert statuses[0] == 200 and 507 in statuses and set(statuses) == {200, 507}, statuses
    assert_problem(client.post("/test/fill"), 507, "disk is full")
    assert client.get("/api/v1/regions").status_code == 200  # reads still work
    cap["pages"] *= 100  # space freed: new connections see it
    client.app.state.db.dispose()  # type: ignore[attr-defined]
    assert client.post("/test/fill").status_code == 200
