"""``dv backup`` and ``dv restore``: a consistent copy of the database, and back, audited."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.engine import make_url

from digital_village import audit
from digital_village.cli.common import console, fail, load_settings, transaction
from digital_village.config import Settings
from digital_village.db import is_sqlite, private_file
from digital_village.ledger import keys


def _libpq_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        fail("an in-memory database cannot be backed up", code=2)
    return Path(database)


def _run(command: list[str]) -> None:
    tool = shutil.which(command[0])
    if tool is None:
        fail(f"{command[0]} is not installed (apt-get install postgresql-client-15)", code=2)
    result = subprocess.run([tool, *command[1:]], capture_output=True, text=True)  # noqa: S603
    if result.returncode != 0:
        fail(f"{command[0]} failed: {result.stderr.strip()}")


def backup(
    out: Annotated[Path, typer.Argument(help="The backup file to write.")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Copy the database while it runs: SQLite's online backup, or pg_dump for PostgreSQL."""
    settings = load_settings()
    url = settings.effective_database_url
    if out.exists() and not force:
        fail(f"{out} exists; pass --force to overwrite it", code=2)
    out.parent.mkdir(parents=True, exist_ok=True)
    if is_sqlite(url):
        source_path = _sqlite_path(url)
        if not source_path.exists():
            fail(f"no database at {source_path}; nothing to back up", code=2)
        partial = out.with_name(out.name + ".partial")
        partial.unlink(missing_ok=True)
        private_file(partial)  # it holds names, phones and token hashes
        with sqlite3.connect(source_path) as source, sqlite3.connect(partial) as target:
            source.backup(target)  # a consistent snapshot, even while the server writes
        partial.replace(out)
    else:
        partial = out.with_name(out.name + ".partial")
        partial.unlink(missing_ok=True)
        private_file(partial)  # pg_dump writes into it and keeps its mode
        _run(["pg_dump", "--format=custom", "--no-owner", f"--file={partial}", _libpq_url(url)])
        partial.replace(out)
    console.print(f"backed up {make_url(url).render_as_string()} to {out}")
    console.print(
        f"the ledger signing key is not in the backup: keep {settings.effective_ledger_key_path} "
        "safe separately"
    )


def restore(
    backup_file: Annotated[Path, typer.Argument(help="A file made by `dv backup`.")],
    yes: Annotated[bool, typer.Option("--yes", help="Replace the current database.")] = False,
) -> None:
    """Put a backup in place of the database, then audit the restored ledger."""
    settings = load_settings()
    url = settings.effective_database_url
    if not backup_file.is_file():
        fail(f"no backup file at {backup_file}", code=2)
    if is_sqlite(url):
        target_path = _sqlite_path(url)
        if target_path.exists() and not yes:
            fail(f"{target_path} exists; pass --yes to replace it with the backup", code=2)
        private_file(target_path)
        with sqlite3.connect(backup_file) as source, sqlite3.connect(target_path) as target:
            source.backup(target)
    else:
        if not yes:
            fail("restoring replaces the current PostgreSQL database; pass --yes", code=2)
        _run(
            [
                "pg_restore",
                "--clean",
                "--if-exists",
                "--no-owner",
                f"--dbname={_libpq_url(url)}",
                str(backup_file),
            ]
        )
    console.print(f"restored {backup_file}; auditing the ledger …")
    _audit_after_restore(settings)


def _audit_after_restore(settings: Settings) -> None:
    extra = []
    if settings.effective_ledger_key_path.is_file():
        extra.append(keys.verifier_key(settings.effective_ledger_key_path))
    with transaction(settings) as session:
        report = audit.audit(session, origin=settings.ledger_origin, extra_vkeys=extra)
    if not report.ok:
        console.print(f"[bold red]the restored ledger FAILED its audit[/]: {report.problems[0]}")
        raise typer.Exit(1)
    console.print(
        f"[bold green]ledger OK[/]: {report.entries} entries and {report.checkpoints} checkpoints"
    )
