"""A real server over a fresh log, and Go's tile checker: what the tile and mirror tests share."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from sqlalchemy import text

from digital_village import migrate
from digital_village.app import create_app
from digital_village.config import Settings
from digital_village.db import Database, make_engine
from digital_village.ledger import keys
from digital_village.ledger.log import EntryIn, Ledger
from tests.e2e.conftest import LiveServer
from tests.ledger.test_go_interop import GOPATH, _go

CHECKER = Path(__file__).resolve().parents[1] / "interop" / "tilecheck"


@dataclass
class LiveLog:
    """The app served on 127.0.0.1 over its own database, and the log behind it."""

    url: str
    db: Database
    ledger: Ledger
    settings: Settings

    @property
    def prefix(self) -> str:
        """The log's tlog-tiles prefix."""
        return f"{self.url}/ledger/"

    def append(self, start: int, stop: int, *, batch: int = 50, kind: str = "test.tile") -> None:
        for first in range(start, stop, batch):
            with self.db.transaction() as session:
                self.ledger.append_many(
                    session,
                    [
                        EntryIn(kind, {"n": n, "lot": f"RS2026-{n:04d}"})
                        for n in range(first, min(stop, first + batch))
                    ],
                )

    def execute(self, sql: str, **params: object) -> None:
        """A change made behind the log's back (an insider with the database)."""
        with self.db.transaction() as session:
            session.execute(text(sql), params)


@contextmanager
def live_log(
    backend: str,
    folder: Path,
    request: pytest.FixtureRequest,
    *,
    mirror_url: str | None = None,
    routes: Callable[[FastAPI], None] = lambda app: None,
) -> Iterator[LiveLog]:
    """A served log over a fresh database of the backend (with test-only ``routes``)."""
    if backend == "postgres":
        server = request.getfixturevalue("postgres_server")
        url = server.create_database("dv_tiles")
    else:
        url = f"sqlite:///{folder / 'log.db'}"
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            migrate.upgrade(connection)
        settings = Settings(
            data_dir=folder,
            database_url=url,
            ledger_origin="tiles.digital-village.example/ledger",
            log_format="text",
            log_level="WARNING",
            rate_limit_public_per_minute=1_000_000,
            ledger_mirror_url=mirror_url,
        )
        keys.ensure_signing_key(settings.effective_ledger_key_path, settings.ledger_origin)
        ledger = Ledger.from_key_file(settings.effective_ledger_key_path, settings.ledger_origin)
        db = Database(engine)
        app = create_app(settings, database=db)
        routes(app)
        with LiveServer(app) as served:
            yield LiveLog(served.url, db, ledger, settings)
    finally:
        engine.dispose()
        if backend == "postgres":
            server.drop_database(url)


@pytest.fixture(scope="session")
def tile_checker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Go's tile checker (tests/interop/tilecheck), built once."""
    go = _go()
    folder = tmp_path_factory.mktemp("tilecheck")
    binary = folder / "tilecheck"
    subprocess.run(
        [go, "build", "-o", str(binary), str(CHECKER / "main.go")],
        check=True,
        env=go_env(folder),
        capture_output=True,
        timeout=300,
    )
    return binary


def go_env(folder: Path) -> dict[str, str]:
    """Go offline, on Debian's golang.org/x/mod sources."""
    return {
        **os.environ,
        "GOPATH": str(GOPATH),
        "GO111MODULE": "off",
        "GOCACHE": str(folder / "gocache"),
        "GOFLAGS": "",
    }


def run_checker(checker: Path, vkey: str, source: str, *extra: str) -> tuple[int, str]:
    """Run the Go checker on a tile prefix or folder: exit code and what it printed."""
    done = subprocess.run(
        [str(checker), *extra, vkey, source], capture_output=True, text=True, timeout=300
    )
    return done.returncode, done.stdout + done.stderr
