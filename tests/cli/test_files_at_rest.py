"""Files at rest hold names, phones and token hashes: the SQLite database, its WAL and shared
memory files, and `dv backup` output are created 0600 whatever the umask, and a database left
readable by others is tightened when it is opened."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from digital_village.cli.main import app
from digital_village.db import make_engine, make_single_use_engine

runner = CliRunner()


@pytest.fixture(params=[0o000, 0o022])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """Run with a permissive umask (everything world-readable unless the code says otherwise)."""
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("single_use", [False, True])
def test_a_new_sqlite_database_and_its_wal_and_shm_are_0600(
    tmp_path: Path, umask: int, single_use: bool
) -> None:
    path = tmp_path / "var" / "dv.db"
    engine = (make_single_use_engine if single_use else make_engine)(f"sqlite:///{path}")
    connection = engine.connect()
    connection.execute(text("CREATE TABLE t (x INTEGER)"))
    connection.execute(text("INSERT INTO t VALUES (1)"))
    connection.commit()
    # The WAL and the shared-memory index exist while a connection is open.
    for suffix in ("", "-wal", "-shm"):
        found = path.with_name(path.name + suffix)
        assert found.exists(), found
        assert _mode(found) == 0o600, (found, oct(_mode(found)))
    connection.close()
    engine.dispose()


def test_an_existing_database_readable_by_others_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "dv.db"
    first = make_single_use_engine(f"sqlite:///{path}")
    with first.begin() as connection:
        connection.execute(text("CREATE TABLE t (x INTEGER)"))
    first.dispose()
    for suffix in ("", "-wal", "-shm"):
        found = path.with_name(path.name + suffix)
        if found.exists():
            found.chmod(0o644)
    engine = make_engine(f"sqlite:///{path}")
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM t")).scalar() == 0
        for suffix in ("", "-wal", "-shm"):
            found = path.with_name(path.name + suffix)
            if found.exists():
                assert _mode(found) == 0o600, found
    engine.dispose()


def test_backups_and_restored_databases_are_0600(
    cli_env: Path, backend: str, tmp_path: Path, umask: int
) -> None:
    if backend == "postgres" and shutil.which("pg_dump") is None:
        pytest.skip("pg_dump not installed")
    assert runner.invoke(app, ["init"]).exit_code == 0
    out = tmp_path / "backups" / "dv.backup"
    made = runner.invoke(app, ["backup", str(out)])
    assert made.exit_code == 0, made.output
    assert _mode(out) == 0o600
    again = runner.invoke(app, ["backup", str(out), "--force"])
    assert again.exit_code == 0, again.output
    assert _mode(out) == 0o600
    if backend == "sqlite":
        database = cli_env / "digital-village.db"
        assert _mode(database) == 0o600
        database.unlink()
        restored = runner.invoke(app, ["restore", str(out), "--yes"])
        assert restored.exit_code == 0, restored.output
        assert _mode(database) == 0o600
