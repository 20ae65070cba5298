"""Bulk inserts through the driver (bulk.insert_rows) store what an ORM insert would."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import Connection, String, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from digital_village.bulk import _sqlite_utc_text, insert_rows
from digital_village.db import (
    _CHECKPOINTERS,
    Database,
    UTCDateTime,
    WalCheckpointer,
    make_engine,
    make_single_use_engine,
    utcnow,
)


class _Base(DeclarativeBase):
    pass


class _Row(_Base):
    __tablename__ = "test_insert_rows"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(20))
    voided: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(10), default="active")
    note: Mapped[str | None] = mapped_column(String(20), default=None)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


@pytest.fixture
def table(connection: Connection) -> Any:
    _Base.metadata.create_all(connection)
    return cast(Any, _Row)


def test_rows_get_scalar_defaults_and_converted_values(connection: Connection, table: Any) -> None:
    moment = dt.datetime(2026, 5, 18, 8, 30, tzinfo=dt.UTC)
    insert_rows(
        connection,
        table,
        [{"name": "a", "at": moment}, {"name": "b", "at": moment + dt.timedelta(hours=1)}],
    )
    insert_rows(connection, table, [{"name": "c", "at": moment, "voided": True, "status": "x"}])
    rows = connection.execute(
        select(_Row.name, _Row.voided, _Row.status, _Row.note, _Row.at).order_by(_Row.id)
    ).all()
    assert [tuple(row) for row in rows] == [
        ("a", False, "active", None, moment),
        ("b", False, "active", None, moment + dt.timedelta(hours=1)),
        ("c", True, "x", None, moment),
    ]


def test_rows_sharing_a_timestamp_each_store_their_own(connection: Connection, table: Any) -> None:
    first = dt.datetime(2026, 5, 18, 8, 30, tzinfo=dt.UTC)
    second = dt.datetime(2026, 5, 19, 8, 30, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    order = [first, first, second, second, first]
    insert_rows(connection, table, [{"name": str(i), "at": at} for i, at in enumerate(order)])
    stored = connection.scalars(select(_Row.at).order_by(_Row.id)).all()
    assert stored == order


def test_a_computed_default_must_be_given(connection: Connection, table: Any) -> None:
    with pytest.raises(ValueError, match="'at'"):
        insert_rows(connection, table, [{"name": "a"}])
    assert connection.execute(select(_Row.id)).all() == []


def _wait_for(condition: Any, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _write_two_megabytes(connection: Any) -> None:
    with connection.begin():
        connection.exec_driver_sql("CREATE TABLE blobs (b BLOB)")
        connection.exec_driver_sql("INSERT INTO blobs VALUES (zeroblob(2000000))")


def test_the_checkpointer_copies_the_wal_into_the_database_file(tmp_path: Path) -> None:
    path = tmp_path / "village.db"
    engine = make_single_use_engine(f"sqlite:///{path}")
    # The connection stays open: the last one to close would checkpoint the WAL itself.
    keeper = engine.connect()
    _write_two_megabytes(keeper)
    # 500 pages: below SQLite's own threshold, so the commit left them in the WAL.
    assert path.stat().st_size < 1_000_000
    checkpointer = WalCheckpointer(str(path), interval=0.02)
    checkpointer.start()
    try:
        assert _wait_for(lambda: path.stat().st_size >= 2_000_000)
    finally:
        checkpointer.stop()
        checkpointer.thread.join(5)
    assert not checkpointer.thread.is_alive()
    assert keeper.exec_driver_sql("SELECT length(b) FROM blobs").scalar() == 2_000_000
    keeper.close()
    engine.dispose()


def test_a_served_database_is_checkpointed_until_disposed(tmp_path: Path) -> None:
    path = tmp_path / "village.db"
    engine = make_engine(f"sqlite:///{path}")
    checkpointer = _CHECKPOINTERS[engine]
    assert checkpointer.thread.is_alive()
    with engine.connect() as connection:
        _write_two_megabytes(connection)
    assert _wait_for(lambda: path.stat().st_size >= 2_000_000)
    Database(engine).dispose()
    checkpointer.thread.join(5)
    assert not checkpointer.thread.is_alive()


def test_a_missing_database_folder_does_not_stop_the_checkpointer(tmp_path: Path) -> None:
    checkpointer = WalCheckpointer(str(tmp_path / "gone" / "village.db"), interval=0.01)
    checkpointer.start()
    time.sleep(0.1)
    assert checkpointer.thread.is_alive()
    checkpointer.stop()
    checkpointer.thread.join(5)
    assert not checkpointer.thread.is_alive()


@pytest.mark.parametrize(
    "moment",
    [
        dt.datetime(2026, 5, 18, 8, 30, tzinfo=dt.UTC),
        dt.datetime(2026, 5, 18, 8, 30, 1, 250, tzinfo=dt.timezone(dt.timedelta(hours=8))),
        dt.datetime(5, 1, 1, 23, 59, 59, 999999, tzinfo=dt.timezone(dt.timedelta(hours=-3))),
        None,
    ],
)
def test_sqlite_timestamps_are_bound_as_sqlalchemy_binds_them(moment: dt.datetime | None) -> None:
    dialect = sqlite.dialect()
    reference = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    assert reference is not None
    assert _sqlite_utc_text(moment) == reference(moment)


def test_a_naive_timestamp_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        _sqlite_utc_text(dt.datetime(2026, 5, 18, 8, 30))
