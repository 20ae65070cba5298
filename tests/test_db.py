"""Bulk inserts through the driver (db.insert_rows) store what an ORM insert would."""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

import pytest
from sqlalchemy import Connection, String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from digital_village.db import UTCDateTime, insert_rows, utcnow


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


def test_a_computed_default_must_be_given(connection: Connection, table: Any) -> None:
    with pytest.raises(ValueError, match="'at'"):
        insert_rows(connection, table, [{"name": "a"}])
    assert connection.execute(select(_Row.id)).all() == []
