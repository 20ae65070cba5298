"""Bulk writes: rows through the driver in one executemany, and long jobs in short write
transactions.

``insert_rows`` is the bulk paths' insert (ledger entries, events, parcels, registry rows);
``write_in_chunks`` keeps a long job from holding the database's one writer for seconds.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from typing import Any, TypeVar, cast

from sqlalchemy import LargeBinary, Table, insert
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from sqlalchemy.sql.schema import ScalarElementColumnDefault

from digital_village.db import Base, Database, UTCDateTime, current_cost, naive_utc, track_cost

# A parameter that needs converting: its index, the converter, and whether rows often share
# its value (a timestamp), so that insert_rows wraps the converter in a _Repeating.
_Converter = tuple[int, Callable[[Any], Any], bool]
# SQL, parameter order, the parameters to convert, positional?, scalar defaults to fill in
_Insert = tuple[str, tuple[str, ...], tuple[_Converter, ...], bool, dict[str, Any]]
_INSERTS: dict[tuple[str, str, tuple[str, ...]], _Insert] = {}


class _Repeating:
    """A bind converter that remembers its last answer.

    The rows of one batch share timestamps (the capture's record time, an entry's creation
    time): converting a datetime for the database costs microseconds, looking it up nothing.
    Only for immutable values, compared by identity; one per insert_rows call, as it is not
    safe to share between threads.
    """

    __slots__ = ("convert", "result", "value")

    def __init__(self, convert: Callable[[Any], Any]) -> None:
        self.convert = convert
        self.value: object = _Repeating
        self.result: Any = None

    def __call__(self, value: Any) -> Any:
        if value is not self.value:
            self.result = self.convert(value)
            self.value = value
        return self.result


def _sqlite_utc_text(value: dt.datetime | None) -> str | None:
    """UTCDateTime's bound value on SQLite, in one step: the text SQLAlchemy stores."""
    return None if value is None else naive_utc(value).isoformat(" ", "microseconds")


def _converters(table: Table, order: Sequence[str], dialect: Any) -> tuple[_Converter, ...]:
    found: list[_Converter] = []
    for index, name in enumerate(order):
        kind = table.c[name].type
        convert = kind.dialect_impl(dialect).bind_processor(dialect)
        if convert is None or (dialect.name == "sqlite" and isinstance(kind, LargeBinary)):
            continue  # sqlite3 binds bytes as a BLOB itself; SQLAlchemy's wrapper only copies
        timestamp = isinstance(kind, UTCDateTime)
        if timestamp and dialect.name == "sqlite":
            convert = _sqlite_utc_text
        found.append((index, convert, timestamp))
    return tuple(found)


def _compiled_insert(connection: Connection, table: Table, columns: tuple[str, ...]) -> _Insert:
    """The driver's INSERT for these columns, its parameter order and each column's converter."""
    dialect = connection.dialect
    key = (dialect.name, table.name, columns)
    found = _INSERTS.get(key)
    if found is None:
        # for_executemany: no RETURNING of generated ids (PostgreSQL would add it otherwise).
        compiled = insert(table).compile(
            dialect=dialect, column_keys=list(columns), for_executemany=True
        )
        positional = compiled.positiontup is not None
        order = tuple(compiled.positiontup or ()) if positional else tuple(compiled.params)
        converters = _converters(table, order, dialect)
        # Columns the rows leave out but whose Python-side default SQLAlchemy renders anyway.
        defaults = {}
        for name in order:
            if name in columns:
                continue
            default = table.c[name].default
            if not isinstance(default, ScalarElementColumnDefault):
                raise ValueError(f"insert into {table.name}: every row must give {name!r}")
            defaults[name] = default.arg
        found = (compiled.string, order, converters, positional, defaults)
        _INSERTS[key] = found
    return found


def insert_rows(
    connection: Connection, model: type[Base], rows: Sequence[Mapping[str, Any]]
) -> None:
    """Insert rows that all name the same columns with one driver executemany.

    The same SQL as ``connection.execute(insert(table), rows)``, and each value goes through its
    column type's bind converter as there, but without SQLAlchemy's per-row parameter machinery,
    which costs more than the insert itself on bulk paths. Scalar Python-side defaults (a flag
    that starts False) are filled in; a column with a computed default (a timestamp) must be
    given in every row.
    """
    if not rows:
        return
    table = cast(Table, model.__table__)
    sql, order, converters, positional, defaults = _compiled_insert(
        connection, table, tuple(rows[0])
    )
    if defaults:
        rows = [{**defaults, **row} for row in rows]
    # Values in parameter order, read by one C call per row; then the few that need converting.
    values_of = itemgetter(*order) if len(order) > 1 else lambda row: (row[order[0]],)
    converting = tuple(
        (index, _Repeating(convert) if repeats else convert)
        for index, convert, repeats in converters
    )
    params: list[Any] = []
    for row in rows:
        values = values_of(row)
        if converting:
            values = list(values)
            for index, convert in converting:
                values[index] = convert(values[index])
        params.append(tuple(values) if positional else dict(zip(order, values, strict=True)))
    connection.exec_driver_sql(sql, params)


T = TypeVar("T")
# A write transaction may hold the writer for < 100 ms: chunks aim at 70 ms.
CHUNK_TARGET_S = 0.07
# The pause between chunks: as long as the last one held the writer, within these bounds.
CHUNK_PAUSE_MIN_S = 0.01
CHUNK_PAUSE_MAX_S = 0.05


def write_in_chunks(
    database: Database,
    items: Sequence[T],
    write: Callable[[Session, Sequence[T]], None],
    *,
    first: int = 50,
    durations: list[float] | None = None,
) -> None:
    """``write`` over ``items`` in chunks, one write transaction each, sized so that each
    holds the database's writer for about CHUNK_TARGET_S (measured as it goes); ``durations``
    gets how long each held it.

    For long jobs that check everything first and then only store: a job holding the
    database's one writer for seconds would make every other write wait that long. Chunks are
    sized on the time they hold the writer, not on their CPU time: on a busy machine a chunk's
    CPU time stretches into a longer hold, and the hold is what other writers wait for.
    """
    cost = current_cost() or track_cost()
    size, start = first, 0
    while start < len(items):
        chunk = items[start : start + size]
        before = cost.write_hold
        with database.transaction(write=True) as session:
            write(session, chunk)
        held = cost.write_hold - before
        if durations is not None:
            durations.append(held)
        start += len(chunk)
        rate = len(chunk) / max(held, 1e-4)
        size = max(10, min(5_000, int(rate * CHUNK_TARGET_S)))
        if start < len(items):
            # Let writers that waited meanwhile go first: taking the lock back at once, the
            # job would win it from them every time.
            time.sleep(min(max(held, CHUNK_PAUSE_MIN_S), CHUNK_PAUSE_MAX_S))
