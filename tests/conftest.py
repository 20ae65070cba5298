"""Shared fixtures: the whole suite runs on SQLite and, with DV_TEST_POSTGRES_URL, on PostgreSQL.

Migrations run once per backend; each test then works inside a transaction that is rolled
back, so tests are isolated and fast, and the migrations themselves are exercised.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from digital_village import migrate
from digital_village.app import create_app
from digital_village.config import Settings
from digital_village.db import Database, make_engine
from digital_village.ledger import keys

POSTGRES_URL = os.environ.get("DV_TEST_POSTGRES_URL")
IN_CI = os.environ.get("CI", "").lower() == "true"
# Without a PostgreSQL server the suite runs once, on SQLite; the skip is reported once below.
BACKENDS = ["sqlite", "postgres"] if POSTGRES_URL else ["sqlite"]
SHARED_STANDARDS = Path(__file__).resolve().parents[1].parent / "shared" / "standards"
# GS1's EPCIS 2.0 JSON Schema, kept beside the checkout (../shared): the tests that validate
# documents against the official schema need it; without it they skip, and the run says so.
GS1_EPCIS_SCHEMA = Path(
    os.environ.get("DV_TEST_GS1_SCHEMA") or SHARED_STANDARDS / "EPCIS-JSON-Schema.json"
)
GS1_SCHEMA_SKIP = f"GS1's EPCIS 2.0 JSON Schema not found at {GS1_EPCIS_SCHEMA}"


def need_gs1_schema() -> Path:
    """The schema's path; skips the test when it is missing (fails it under CI=true)."""
    if not GS1_EPCIS_SCHEMA.is_file():
        if IN_CI:
            pytest.fail(f"CI=true but {GS1_SCHEMA_SKIP}")
        pytest.skip(GS1_SCHEMA_SKIP)
    return GS1_EPCIS_SCHEMA


def pytest_configure(config: pytest.Config) -> None:
    if IN_CI and not POSTGRES_URL:
        raise pytest.UsageError(
            "CI=true but DV_TEST_POSTGRES_URL is not set: the PostgreSQL tests must run in CI"
        )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist, tests that share the one MQTT broker run in one worker: device ids
    repeat across the workers' databases, and their topics would cross."""
    for item in items:
        if item.get_closest_marker("mqtt") is not None:
            item.add_marker(pytest.mark.xdist_group("mqtt"))


def pytest_report_header() -> list[str]:
    if GS1_EPCIS_SCHEMA.is_file():
        schema = f"GS1 EPCIS JSON Schema: {GS1_EPCIS_SCHEMA}"
    else:
        schema = f"GS1 EPCIS JSON Schema: MISSING at {GS1_EPCIS_SCHEMA} (its tests are SKIPPED)"
    if POSTGRES_URL:
        shown = make_url(POSTGRES_URL).render_as_string()
        return [f"backends: sqlite, postgres ({shown})", schema]
    return [
        "backends: sqlite only (set DV_TEST_POSTGRES_URL to run every test on PostgreSQL too)",
        schema,
    ]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say at the end, where it is seen, which tests a missing GS1 schema skipped."""
    skipped = [
        report
        for report in terminalreporter.stats.get("skipped", [])
        if GS1_SCHEMA_SKIP in str(getattr(report, "longrepr", ""))
    ]
    if skipped:
        terminalreporter.write_line(
            f"{len(skipped)} tests SKIPPED: {GS1_SCHEMA_SKIP} (put GS1's schema there, "
            "or check out ../shared beside this repository)",
            yellow=True,
        )


class PostgresServer:
    """Creates throwaway databases on the test server, so parallel runs never collide."""

    def __init__(self, url: str) -> None:
        self.url = make_url(url)
        self.admin = create_engine(
            self.url.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=None
        )

    def create_database(self, prefix: str = "dv_test") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        with self.admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        return self.url.set(database=name).render_as_string(hide_password=False)

    def drop_database(self, url: str) -> None:
        name = make_url(url).database
        with self.admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    if not POSTGRES_URL:
        pytest.skip("PostgreSQL not configured: set DV_TEST_POSTGRES_URL")
    server = PostgresServer(POSTGRES_URL)
    yield server
    server.admin.dispose()


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if name == "postgres" and not POSTGRES_URL:
        pytest.skip("PostgreSQL not configured: set DV_TEST_POSTGRES_URL")
    return name


@pytest.fixture(scope="session")
def database_url(
    backend: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[str]:
    """A fresh, empty database of the current backend for this test session."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'test.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    url = server.create_database()
    yield url
    server.drop_database(url)


@pytest.fixture
def committed_database_url(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[str]:
    """A migrated database of the current backend whose commits are real (not rolled back):
    for tests of concurrent writers, processes and restarts."""
    if backend == "sqlite":
        url, server = f"sqlite:///{tmp_path / 'committed.db'}", None
    else:
        server = request.getfixturevalue("postgres_server")
        url = server.create_database("dv_committed")
    engine = make_engine(url)
    with engine.begin() as connection:
        migrate.upgrade(connection)
    engine.dispose()
    yield url
    if server is not None:
        server.drop_database(url)


@pytest.fixture(scope="session")
def migrated_engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    with engine.begin() as connection:
        migrate.upgrade(connection)
    yield engine
    engine.dispose()


@pytest.fixture
def connection(migrated_engine: Engine) -> Iterator[Connection]:
    with migrated_engine.connect() as conn:
        outer = conn.begin()
        yield conn
        outer.rollback()


@pytest.fixture
def db(connection: Connection) -> Database:
    return Database(connection)


@pytest.fixture
def session(db: Database) -> Iterator[Session]:
    with db.session(write=True) as s:
        yield s


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    settings = Settings(
        data_dir=tmp_path,
        database_url=database_url,
        ledger_origin="test.digital-village.example/ledger",
        log_format="text",
        log_level="WARNING",
        max_body_bytes=64 * 1024,
        public_base_url="https://dv.test",
    )
    keys.ensure_signing_key(settings.effective_ledger_key_path, settings.ledger_origin)
    return settings


@pytest.fixture
def client(settings: Settings, db: Database) -> Iterator[TestClient]:
    app = create_app(settings, database=db)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def cli_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str, request: pytest.FixtureRequest
) -> Iterator[Path]:
    """Environment for `dv` commands: a fresh data folder and database of the backend."""
    monkeypatch.setenv("DV_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("DV_LOG_FORMAT", "text")
    if backend == "postgres":
        server = request.getfixturevalue("postgres_server")
        url = server.create_database("dv_cli")
        monkeypatch.setenv("DV_DATABASE_URL", url)
        yield tmp_path / "var"
        server.drop_database(url)
    else:
        monkeypatch.delenv("DV_DATABASE_URL", raising=False)
        yield tmp_path / "var"


@dataclass
class World:
    """A small county with two cooperatives and a token for every role."""

    coop_a: int
    coop_b: int
    household_a: int
    household_b: int
    device_a: int
    device_b: int
    tokens: dict[str, str]

    def auth(self, role: str) -> dict[str, str]:
        return {} if role == "anonymous" else {"Authorization": f"Bearer {self.tokens[role]}"}


@pytest.fixture
def world(db: Database) -> World:
    from tests.factories import build_world

    return build_world(db)
