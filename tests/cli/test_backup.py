"""`dv backup` and `dv restore`: the restored database is the one backed up, and audited."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from digital_village.cli.main import app
from digital_village.config import Settings
from digital_village.db import Database
from digital_village.ledger.log import EntryIn, Ledger
from digital_village.ledger.models import LedgerEntry

runner = CliRunner()


def _append(settings: Settings, count: int) -> None:
    database = Database.from_url(settings.effective_database_url)
    ledger = Ledger.from_key_file(settings.effective_ledger_key_path, settings.ledger_origin)
    with database.transaction() as session:
        ledger.append_many(session, [EntryIn("backup.test", {"n": n}) for n in range(count)])
    database.dispose()


def _entries(settings: Settings) -> int:
    database = Database.from_url(settings.effective_database_url)
    with database.session() as session:
        count = session.scalar(select(func.count()).select_from(LedgerEntry)) or 0
    database.dispose()
    return count


def test_backup_then_restore_brings_back_that_moment(
    cli_env: Path, backend: str, tmp_path: Path
) -> None:
    if backend == "postgres" and shutil.which("pg_dump") is None:
        pytest.skip("pg_dump not installed")
    assert runner.invoke(app, ["init"]).exit_code == 0
    settings = Settings()
    _append(settings, 5)
    out = tmp_path / "backups" / "dv.backup"
    made = runner.invoke(app, ["backup", str(out)])
    assert made.exit_code == 0, made.output
    assert out.stat().st_size > 0
    assert runner.invoke(app, ["backup", str(out)]).exit_code == 2  # no silent overwrite

    _append(settings, 3)
    assert _entries(settings) == 8
    refused = runner.invoke(app, ["restore", str(out)])
    assert refused.exit_code == 2 and "--yes" in refused.output
    restored = runner.invoke(app, ["restore", str(out), "--yes"])
    assert restored.exit_code == 0, restored.output
    assert "ledger OK: 5 entries" in restored.output
    assert _entries(settings) == 5


def test_restore_of_a_missing_file_says_so(cli_env: Path) -> None:
    result = runner.invoke(app, ["restore", "/nonexistent/dv.backup", "--yes"])
    assert result.exit_code == 2 and "no backup file" in result.output
