"""Stored values read as the database holds them, for checks that must survive any edit.

An insider can change what a column holds behind the application's back — on SQLite even its
type (text in a date column, a number in a blob). The ORM's readers would raise on the first
such row and stop the audit; checks select columns through :func:`raw` instead and read each
value with the functions here, which return :data:`UNREADABLE` rather than raise. A check that
meets one names the row and the column: a finding, never a traceback.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

from sqlalchemy import type_coerce
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import NullType


class Unreadable:
    """A stored value that is not of its column's type."""

    def __repr__(self) -> str:
        return "<unreadable>"


UNREADABLE: Final = Unreadable()


def raw(column: Any) -> ColumnElement[Any]:
    """``column`` selected without the ORM's type conversion (labelled with its own name)."""
    return type_coerce(column, NullType()).label(column.key)


def as_bytes(value: Any) -> bytes | Unreadable:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return UNREADABLE


def as_text(value: Any) -> str | Unreadable:
    return value if isinstance(value, str) else UNREADABLE


def as_number(value: Any) -> float | Unreadable:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return UNREADABLE
    return float(value)


def as_date(value: Any) -> dt.date | Unreadable:
    if isinstance(value, dt.datetime):
        return UNREADABLE
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            return UNREADABLE
    return UNREADABLE


def as_time(value: Any) -> dt.datetime | Unreadable:
    """A stored UTC timestamp (naive on SQLite, as ``db.UTCDateTime`` writes it), aware."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return UNREADABLE
    if not isinstance(value, dt.datetime):
        return UNREADABLE
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
