"""Bulk writes: rows through the driver in one executemany, and long jobs in short write
transactions.

``insert_rows`` is the bulk paths' insert (ledger entries, events, parcels, registry rows);
``write_in_chunks`` keeps a long job from holding the database's one writer for seconds.
"""

from __future__ import annotations

import datetime as dt
import logging
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
log = logging.getLogger(__name__)
# A write transaction may hold the writer for < 100 ms: chunks aim at 70 ms.
CHUNK_TARGET_S = 0.07
CHUNK_MIN, CHUNK_MAX = 10, 5_000
# A chunk that held the writer this long (on PostgreSQL: the log's or the sealer's lock, from
# when it took it, db.note_lock_taken) is logged: other writes waited as long behind it.
CHUNK_WARN_S = 0.25
# Chunks remembered to fit the hold of a chunk as fixed cost + cost per item.
CHUNK_HISTORY = 8
# The pause between chunks: as long as the last one held the writer, within these bounds, so
# that a long job holds the writer at most half the time and the writers that queued behind a
# chunk get through before the next (with pauses capped at 50 ms, chunks stretched to 70 ms on
# a busy machine held it 58 % of the time, and sensors and managers waited seconds in turn).
CHUNK_PAUSE_MIN_S = 0.01
CHUNK_PAUSE_MAX_S = 0.25


def next_chunk_size(history: Sequence[tuple[int, float]], target: float = CHUNK_TARGET_S) -> int:
    """The size of the next chunk from (size, hold) of the last ones.

    A chunk's hold is about fixed + size × per_item: the statements every chunk runs (a
    checkpoint, look-ups, round trips to a busy server) and the rows. Sized on the items' share
    alone, a chunk's fixed cost would make every chunk look too long, each smaller than the
    last, until the fixed cost was paid for every ten items. So the two are fitted (least
    squares) and the chunk takes what is left of the target after the fixed cost, or, once the
    fixed cost alone is half the target, as many items as make the chunk hold twice the fixed
    cost (the items then cost no more than the overhead every chunk pays anyway).

    A chunk is at most twice the largest of those measured: two chunks of nearly one size on
    a busy machine fit any slope, and a fit that took the cost for nearly all fixed once sized
    a parcel import's next chunk at 4,475 features, which held the writer for 1.2 s.
    """
    sizes = [float(size) for size, _ in history]
    holds = [hold for _, hold in history]
    mean_size, mean_hold = sum(sizes) / len(sizes), sum(holds) / len(holds)
    spread = sum((size - mean_size) ** 2 for size in sizes)
    if spread > 0:
        per_item = (
            sum(
                (size - mean_size) * (hold - mean_hold)
                for size, hold in zip(sizes, holds, strict=True)
            )
            / spread
        )
        fixed = mean_hold - per_item * mean_size
    else:
        per_item, fixed = 0.0, 0.0
    if per_item <= 0 or fixed < 0:
        # Too few or too noisy to tell apart: the average cost per item.
        per_item, fixed = max(mean_hold, 1e-6) / max(mean_size, 1.0), 0.0
    # Hold about the target, or twice the fixed cost when that alone takes half the target.
    wanted = max(target - fixed, fixed) / per_item
    return max(CHUNK_MIN, min(CHUNK_MAX, round(wanted), 2 * round(max(sizes))))


def write_in_chunks(
    database: Database,
    items: Sequence[T],
    write: Callable[[Session, Sequence[T]], None],
    *,
    first: int = 50,
    most: int = CHUNK_MAX,
    durations: list[float] | None = None,
) -> None:
    """``write`` over ``items`` in chunks, one write transaction each, sized so that each
    holds the database's writer for about CHUNK_TARGET_S (``next_chunk_size``, measured as it
    goes); ``durations`` gets how long each held it.

    For long jobs that check everything first and then only store: a job holding the
    database's one writer for seconds would make every other write wait that long. Chunks are
    sized on the time they hold the writer, not on their CPU time: on a busy machine a chunk's
    CPU time stretches into a longer hold, and the hold is what other writers wait for.
    ``most`` caps a chunk's items: for items whose cost differs too much to size chunks by
    count (the sealer's parcel-days), ``most=1`` writes each in a transaction of its own.
    """
    cost = current_cost() or track_cost()
    history: list[tuple[int, float]] = []
    size, start = min(first, most), 0
    while start < len(items):
        chunk = items[start : start + size]
        before = cost.write_hold
        with database.transaction(write=True) as session:
            write(session, chunk)
        held = cost.write_hold - before
        if durations is not None:
            durations.append(held)
        if held > CHUNK_WARN_S:
            log.warning(
                "a write transaction of a long job (%d items) held the writer %.0f ms",
                len(chunk),
                held * 1000,
            )
        start += len(chunk)
        history = [*history[1 - CHUNK_HISTORY :], (len(chunk), held)]
        size = next_chunk_size(history)
        if len(history) == 1 and size == len(chunk):
            size += CHUNK_MIN  # a second size, so that fixed and per-item costs can be told apart
        size = min(size, most)
        if start < len(items):
            # Let writers that waited meanwhile go first: taking the lock back at once, the
            # job would win it from them every time.
            time.sleep(min(max(held, CHUNK_PAUSE_MIN_S), CHUNK_PAUSE_MAX_S))
