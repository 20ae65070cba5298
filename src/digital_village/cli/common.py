"""What every CLI command shares: settings, a database transaction, and error reporting."""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from digital_village import migrate
from digital_village.config import Settings
from digital_village.db import Database, is_sqlite, make_single_use_engine
from digital_village.errors import DomainError

# China Standard Time: every time the CLI prints is in it, with its offset.
CHINA_TIME = dt.timezone(dt.timedelta(hours=8), "CST")

console = Console(soft_wrap=True)
err_console = Console(stderr=True)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print an error the way a shell user expects and exit with a non-zero code."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def load_settings() -> Settings:
    """Settings from the environment, with configuration errors reported plainly."""
    try:
        return Settings()
    except Exception as error:  # pydantic's message names the bad variable
        fail(f"invalid configuration: {error}", code=2)


def require_migrated(settings: Settings) -> Engine:
    """An engine on a database that exists and is fully migrated; else exit 2 saying why."""
    url = settings.effective_database_url
    if is_sqlite(url):
        path = make_url(url).database
        if path and path != ":memory:" and not Path(path).exists():
            fail(f"no database at {path}; run `dv init` first", code=2)
    engine = make_single_use_engine(url)
    try:
        migrate.check_current(engine)
    except DomainError as error:
        engine.dispose()
        fail(error.detail, code=2)
    return engine


@contextmanager
def transaction(settings: Settings) -> Iterator[Session]:
    """A write transaction for one command: committed on success, nothing kept on error."""
    engine = require_migrated(settings)
    database = Database(engine)
    try:
        with database.transaction(write=True) as session:
            yield session
    except DomainError as error:
        fail(error.detail, code=2 if error.status == 503 else 1)
    finally:
        engine.dispose()


def print_json(value: Any) -> None:
    """Machine-readable output on stdout."""
    sys.stdout.write(json.dumps(value, ensure_ascii=False, indent=2, default=str) + "\n")


def china_time(moment: dt.datetime | str, *, seconds: bool = False) -> str:
    """A moment in China Standard Time with its offset, e.g. ``2026-05-18 09:00 +08:00``; an
    ISO 8601 string is read first (``Z`` or an offset; a naive time is taken as UTC)."""
    if isinstance(moment, str):
        moment = dt.datetime.fromisoformat(moment.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    shown = moment.astimezone(CHINA_TIME)
    return shown.strftime("%Y-%m-%d %H:%M:%S +08:00" if seconds else "%Y-%m-%d %H:%M +08:00")
