"""Every query of the ``reading`` and ``reading_day`` tables.

Bulk inserts bypass the ORM: SQLite gets ``INSERT … VALUES (…), (…), … ON CONFLICT DO NOTHING``
of ``_SQLITE_ROWS_PER_INSERT`` rows a statement through the driver; PostgreSQL gets ``COPY``
(binary) straight into the table for large batches (through a temporary table and ``INSERT …
SELECT … ON CONFLICT DO NOTHING`` when a key is already stored), ``executemany`` for small
ones. Either way the row count says how many were new, so the rest were duplicates.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Table, and_, bindparam, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

try:  # the PostgreSQL driver is an optional extra
    from psycopg import errors as psycopg_errors
except ImportError:  # pragma: no cover - SQLite-only installs never reach the COPY path
    psycopg_errors = None  # type: ignore[assignment]

from digital_village.iot.models import Reading, ReadingDay

CHINA_TIME = dt.timezone(dt.timedelta(hours=8), "CST")
"""Days are China Standard Time calendar days (UTC+8; no daylight saving since 1991)."""
DAY_MS = 86_400_000
CHINA_OFFSET_MS = 8 * 3_600_000
_COPY_THRESHOLD = 2_000
_SQLITE_ROWS_PER_INSERT = 100
"""Rows per multi-row ``INSERT`` on SQLite (500 parameters, far below SQLite's limit of 32,766).
One statement inserting many rows costs SQLite and the driver about two thirds of the CPU of a
statement per row (measured 1.1 against 1.7 µs a row), the driver's per-statement reset and
bind being most of the difference; 50 and 200 rows a statement measured the same."""

InsertRow = tuple[int, int, int, float, bool]
"""(device_id, metric code, time in ms, value, flagged) — the column order of ``_COLUMNS``."""

_COLUMNS = ("device_id", "metric_id", "time_ms", "value", "flagged")
_TABLE = Reading.__tablename__
_READING_DAY: Table = ReadingDay.__table__  # type: ignore[assignment]


def _placeholder(connection: Connection) -> str:
    return "?" if connection.dialect.paramstyle == "qmark" else "%s"


def _insert_sql(mark: str, rows: int = 1) -> str:
    """INSERT of ``rows`` readings a statement, with the driver's parameter ``mark``."""
    row = "(" + ", ".join([mark] * len(_COLUMNS)) + ")"
    # Table and column names are this module's constants; values travel as parameters.
    columns = ", ".join(_COLUMNS)
    values = ", ".join([row] * rows)
    return f"INSERT INTO {_TABLE} ({columns}) VALUES {values} ON CONFLICT DO NOTHING"  # noqa: S608


_SQLITE_MANY_ROWS = _insert_sql("?", _SQLITE_ROWS_PER_INSERT)
_SQLITE_ONE_ROW = _insert_sql("?")
_DEVICE_OF = itemgetter(0)
_METRIC_OF = itemgetter(1)
_TIME_OF = itemgetter(2)


def _sqlite_insert(raw: Any, rows: Sequence[InsertRow]) -> int:
    """Insert through the sqlite3 driver, ``_SQLITE_ROWS_PER_INSERT`` rows a statement; return
    how many rows were new."""
    width = len(_COLUMNS)
    # Grouped by metric, a probe's batch (every metric at each sample time) goes into the table
    # one key range after another instead of alternating between them: measured 0.15 µs a row
    # less, sort included. The sort is stable, so of two rows with one key the first still wins.
    ordered: list[InsertRow] = sorted(rows, key=_METRIC_OF)
    flat: list[Any] = list(chain.from_iterable(ordered))
    # The flag as 0/1: the driver binds a bool only after failing to find an adapter for it,
    # which costs more than the conversion (measured about 0.2 µs a row).
    flags = flat[width - 1 :: width]
    flat[width - 1 :: width] = [0] * len(flags) if not any(flags) else [int(f) for f in flags]
    per_statement = width * _SQLITE_ROWS_PER_INSERT
    whole = len(flat) - len(flat) % per_statement
    cursor = raw.cursor()
    try:
        inserted = 0
        if whole:
            # zip over one iterator: the flat values in consecutive groups of one statement's
            # parameters, cut without copying slices.
            values = iter(flat if whole == len(flat) else flat[:whole])
            cursor.executemany(_SQLITE_MANY_ROWS, zip(*[values] * per_statement, strict=True))
            inserted += cursor.rowcount
        if whole < len(flat):
            rest = iter(flat[whole:])
            cursor.executemany(_SQLITE_ONE_ROW, zip(*[rest] * width, strict=True))
            inserted += cursor.rowcount
    finally:
        cursor.close()
    return inserted


def local_day(time_ms: int) -> dt.date:
    """The China Standard Time calendar day of an epoch-millisecond time."""
    return dt.date.fromordinal(_EPOCH_ORDINAL + (time_ms + CHINA_OFFSET_MS) // DAY_MS)


_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()


def day_bounds_ms(day: dt.date) -> tuple[int, int]:
    """[start, end) of a China Standard Time day in epoch milliseconds."""
    start = (day.toordinal() - _EPOCH_ORDINAL) * DAY_MS - CHINA_OFFSET_MS
    return start, start + DAY_MS


class DayMarks:
    """(device, day) pairs of the current China day already marked pending by this process.

    A long-running ingest worker need not mark the same pair on every batch: the sealer never
    touches the current day (it seals a day only ``SEAL_GRACE_MS`` after it ended), so a mark
    made today still stands. Pairs of earlier days are always marked again.
    """

    def __init__(self) -> None:
        self.day: dt.date | None = None
        self.devices: set[int] = set()
        self.staged: set[int] = set()

    def unmarked(self, pairs: set[tuple[int, dt.date]], today: dt.date) -> set[tuple[int, dt.date]]:
        if self.day != today:
            self.day, self.devices, self.staged = today, set(), set()
        return {
            (device, day) for device, day in pairs if day != today or device not in self.devices
        }

    def stage(self, pairs: set[tuple[int, dt.date]], today: dt.date) -> None:
        """Note marks made in the open transaction (they count once it commits)."""
        self.staged.update(device for device, day in pairs if day == today)

    def committed(self) -> None:
        """The transaction that made the staged marks committed."""
        self.devices |= self.staged
        self.staged = set()

    def rolled_back(self) -> None:
        """The transaction that made the staged marks was rolled back."""
        self.staged = set()


SEAL_GRACE_MS = 15 * 60_000
"""A day is sealed no earlier than this long after it ended, so in-flight readings arrive."""
SEAL_LOCK_KEY = 0x64767365616C
"""PostgreSQL advisory lock ("dvseal"): the sealer holds it exclusively; ingest of readings of
a day that may already be sealed holds it shared, so a late reading is either seen by a seal or
marks its day pending again after that seal, never lost in between."""


def sealable_before(now_ms: int) -> dt.date:
    """Days before this one are over (by the grace period) and may be sealed."""
    return local_day(now_ms - SEAL_GRACE_MS)


def insert_many(
    session: Session, rows: Sequence[InsertRow], *, marks: DayMarks | None = None
) -> int:
    """Store readings, skipping keys already stored; return how many were new."""
    if not rows:
        return 0
    connection = session.connection()
    pairs = days_of(rows)
    now_ms = int(time.time() * 1000)
    if connection.dialect.name == "postgresql" and min(day for _, day in pairs) < sealable_before(
        now_ms
    ):
        session.execute(text("SELECT pg_advisory_xact_lock_shared(:key)"), {"key": SEAL_LOCK_KEY})
    # Straight to the driver, in the session's transaction: SQLAlchemy's per-row parameter
    # handling would cost more than the database's insert itself.
    if connection.dialect.name == "sqlite":
        inserted = _sqlite_insert(connection.connection.driver_connection, rows)
    elif connection.dialect.name == "postgresql" and len(rows) >= _COPY_THRESHOLD:
        inserted = _copy_insert(connection, rows)
    else:
        cursor: Any = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(_insert_sql(_placeholder(connection)), rows)
            inserted = cursor.rowcount
        finally:
            cursor.close()
    if marks is None:
        mark_days_pending(session, pairs)
    else:
        today = local_day(now_ms)
        mark_days_pending(session, marks.unmarked(pairs, today))
        marks.stage(pairs, today)
    return int(inserted)


def days_of(rows: Sequence[InsertRow]) -> set[tuple[int, dt.date]]:
    """The (device, China day) pairs the rows fall on."""
    first = (min(map(_TIME_OF, rows)) + CHINA_OFFSET_MS) // DAY_MS
    last = (max(map(_TIME_OF, rows)) + CHINA_OFFSET_MS) // DAY_MS
    devices = set(map(_DEVICE_OF, rows))
    if first == last or (last == first + 1 and len(devices) == 1):
        # One day, or one device over two days: its earliest reading lies on the first and its
        # latest on the second, so both days have readings (the usual cases, found in C loops).
        days = {dt.date.fromordinal(_EPOCH_ORDINAL + n) for n in (first, last)}
        return {(device_id, day) for device_id in devices for day in days}
    ordinals = {(row[0], (row[2] + CHINA_OFFSET_MS) // DAY_MS) for row in rows}
    return {(device_id, dt.date.fromordinal(_EPOCH_ORDINAL + n)) for device_id, n in ordinals}


def _copy_insert(connection: Connection, rows: Sequence[InsertRow]) -> int:
    raw: Any = connection.connection.driver_connection
    columns = ", ".join(_COLUMNS)
    types = ["int4", "int2", "int8", "float8", "bool"]
    with raw.cursor() as cursor:
        # Optimistic: new readings go straight into the table with COPY, the fastest way in.
        # A key already stored (a re-sent backlog) makes COPY fail; then, from a savepoint, the
        # batch goes through a temporary table and one INSERT … ON CONFLICT DO NOTHING.
        cursor.execute("SAVEPOINT dv_reading_copy")
        try:
            with cursor.copy(f"COPY {_TABLE} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(types)
                for row in rows:
                    copy.write_row(row)
        except psycopg_errors.UniqueViolation:
            cursor.execute("ROLLBACK TO SAVEPOINT dv_reading_copy")
        else:
            cursor.execute("RELEASE SAVEPOINT dv_reading_copy")
            return len(rows)
        cursor.execute("RELEASE SAVEPOINT dv_reading_copy")
        cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS reading_incoming "
            "(device_id int4, metric_id int2, time_ms int8, value float8, flagged bool) "
            "ON COMMIT DELETE ROWS"
        )
        with cursor.copy(f"COPY reading_incoming ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(types)
            for row in rows:
                copy.write_row(row)
        cursor.execute(
            f"INSERT INTO {_TABLE} ({columns}) SELECT {columns} FROM reading_incoming "  # noqa: S608
            "ON CONFLICT DO NOTHING"
        )
        inserted: int = cursor.rowcount
        cursor.execute("DELETE FROM reading_incoming")
    return inserted


def _mark_pending_upsert(dialect: Any) -> Any:
    insert = dialect.insert(_READING_DAY)
    return insert.on_conflict_do_update(
        index_elements=["device_id", "day"], set_={"pending": insert.excluded.pending}
    )


# Built once: every batch runs one, and building the upsert costs several times running it.
_MARK_PENDING = {
    "postgresql": _mark_pending_upsert(postgresql),
    "sqlite": _mark_pending_upsert(sqlite),
}


def mark_days_pending(session: Session, pairs: Iterable[tuple[int, dt.date]]) -> None:
    """Note that these (device, day) pairs have readings that may still need sealing."""
    rows = [
        {"device_id": device_id, "day": day, "pending": True} for device_id, day in sorted(pairs)
    ]
    if not rows:
        return
    session.execute(_MARK_PENDING[session.get_bind().dialect.name], rows)


def pending_days(session: Session, *, before: dt.date) -> list[tuple[int, dt.date]]:
    """(device, day) pairs with readings not yet sealed, for days before ``before``."""
    query = (
        select(ReadingDay.device_id, ReadingDay.day)
        .where(ReadingDay.pending.is_(True), ReadingDay.day < before)
        .order_by(ReadingDay.day, ReadingDay.device_id)
    )
    return [(device_id, day) for device_id, day in session.execute(query)]


def clear_pending(session: Session, pairs: Iterable[tuple[int, dt.date]]) -> None:
    """Mark (device, day) pairs as sealed."""
    rows = [{"b_device_id": device_id, "b_day": day} for device_id, day in pairs]
    if not rows:
        return
    session.execute(
        update(_READING_DAY)
        .where(
            ReadingDay.device_id == bindparam("b_device_id"),
            ReadingDay.day == bindparam("b_day"),
        )
        .values(pending=False)
        .execution_options(synchronize_session=False),
        rows,
    )


@dataclass(frozen=True)
class StoredReading:
    """One stored reading, as read back."""

    device_id: int
    metric_id: int
    time_ms: int
    value: float
    flagged: bool
    seal_id: int | None


def _range(device_id: int, metric_ids: Sequence[int], start_ms: int, end_ms: int) -> Any:
    # Equality on device, IN on metric and a range on time: every condition uses the key.
    return and_(
        Reading.device_id == device_id,
        Reading.metric_id.in_(metric_ids),
        Reading.time_ms >= start_ms,
        Reading.time_ms < end_ms,
    )


def series(
    session: Session,
    *,
    device_id: int,
    metric_ids: Sequence[int],
    start_ms: int,
    end_ms: int,
    limit: int,
    unsealed_only: bool = False,
) -> list[StoredReading]:
    """A device's readings of some metrics in [start, end), by metric then time."""
    query = select(
        Reading.device_id,
        Reading.metric_id,
        Reading.time_ms,
        Reading.value,
        Reading.flagged,
        Reading.seal_id,
    ).where(_range(device_id, metric_ids, start_ms, end_ms))
    if unsealed_only:
        query = query.where(Reading.seal_id.is_(None))
    query = query.order_by(Reading.metric_id, Reading.time_ms).limit(limit)
    return [StoredReading(*row) for row in session.execute(query)]


def get(session: Session, *, device_id: int, metric_id: int, time_ms: int) -> StoredReading | None:
    """One reading by its key."""
    row = session.execute(
        select(
            Reading.device_id,
            Reading.metric_id,
            Reading.time_ms,
            Reading.value,
            Reading.flagged,
            Reading.seal_id,
        ).where(
            Reading.device_id == device_id,
            Reading.metric_id == metric_id,
            Reading.time_ms == time_ms,
        )
    ).first()
    return StoredReading(*row) if row else None


def sealed_by(session: Session, seal_id: int) -> list[StoredReading]:
    """Every reading a seal covers, in leaf order (device, metric, time)."""
    query = (
        select(
            Reading.device_id,
            Reading.metric_id,
            Reading.time_ms,
            Reading.value,
            Reading.flagged,
            Reading.seal_id,
        )
        .where(Reading.seal_id == seal_id)
        .order_by(Reading.device_id, Reading.metric_id, Reading.time_ms)
    )
    return [StoredReading(*row) for row in session.execute(query)]


def count_unsealed(
    session: Session, *, device_id: int, metric_ids: Sequence[int], start_ms: int, end_ms: int
) -> int:
    """How many of a device's readings of these metrics in [start, end) no seal covers."""
    query = (
        select(func.count())
        .select_from(Reading)
        .where(_range(device_id, metric_ids, start_ms, end_ms), Reading.seal_id.is_(None))
    )
    return int(session.scalar(query) or 0)


def unsealed_keys(
    session: Session, *, device_id: int, metric_ids: Sequence[int], start_ms: int, end_ms: int
) -> list[tuple[int, int, int]]:
    """The keys of a device's readings of these metrics in [start, end) that no seal covers."""
    query = select(Reading.device_id, Reading.metric_id, Reading.time_ms).where(
        _range(device_id, metric_ids, start_ms, end_ms), Reading.seal_id.is_(None)
    )
    return [
        (device_id_, metric_id, time_ms)
        for device_id_, metric_id, time_ms in session.execute(query)
    ]


def set_seal_span(
    session: Session,
    seal_id: int,
    *,
    device_id: int,
    metric_ids: Sequence[int],
    start_ms: int,
    end_ms: int,
) -> None:
    """Attach every unsealed reading of a device's metrics in [start, end) to a seal."""
    session.execute(
        update(Reading)
        .where(_range(device_id, metric_ids, start_ms, end_ms), Reading.seal_id.is_(None))
        .values(seal_id=seal_id)
        .execution_options(synchronize_session=False)
    )


def set_seal(session: Session, seal_id: int | None, keys: Sequence[tuple[int, int, int]]) -> None:
    """Attach readings (by key) to a seal (None: to none)."""
    if not keys:
        return
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        # One statement over arrays of the keys: an UPDATE a key would be a round trip each
        # (a day of a few sensors' readings took seconds, under the sealer's lock).
        devices, metrics, times = (list(column) for column in zip(*keys, strict=True))
        connection.exec_driver_sql(
            f"UPDATE {_TABLE} AS r SET seal_id = %s "  # noqa: S608 (constants and placeholders)
            "FROM unnest(%s::integer[], %s::smallint[], %s::bigint[]) AS k(d, m, t) "
            "WHERE r.device_id = k.d AND r.metric_id = k.m AND r.time_ms = k.t",
            (seal_id, devices, metrics, times),
        )
        return
    mark = _placeholder(connection)
    connection.exec_driver_sql(
        f"UPDATE {_TABLE} SET seal_id = {mark} "  # noqa: S608 (constants and placeholders)
        f"WHERE device_id = {mark} AND metric_id = {mark} AND time_ms = {mark}",
        [(seal_id, device_id, metric_id, time_ms) for device_id, metric_id, time_ms in keys],
    )


@dataclass(frozen=True)
class Bucket:
    """Aggregates of one metric over one time bucket."""

    metric_id: int
    start_ms: int
    count: int
    minimum: float
    maximum: float
    total: float

    @property
    def mean(self) -> float:
        return self.total / self.count


def buckets(
    session: Session,
    *,
    device_id: int,
    metric_ids: Sequence[int],
    start_ms: int,
    end_ms: int,
    bucket_ms: int,
    offset_ms: int = 0,
) -> list[Bucket]:
    """Per metric and bucket: count, min, max and sum, grouped in the database.

    Buckets start at multiples of ``bucket_ms`` shifted by ``offset_ms`` (a day bucket with
    the China offset starts at local midnight).
    """
    # Integer division on both backends (bigint / bigint truncates; times are positive).
    index = (Reading.time_ms + offset_ms) // bucket_ms
    query = (
        select(
            Reading.metric_id,
            index.label("bucket"),
            func.count(),
            func.min(Reading.value),
            func.max(Reading.value),
            func.sum(Reading.value),
        )
        .where(_range(device_id, metric_ids, start_ms, end_ms))
        .group_by(Reading.metric_id, index)
        .order_by(Reading.metric_id, index)
    )
    return [
        Bucket(
            metric_id=int(metric_id),
            start_ms=int(bucket) * bucket_ms - offset_ms,
            count=int(count),
            minimum=float(low),
            maximum=float(high),
            total=float(total),
        )
        for metric_id, bucket, count, low, high, total in session.execute(query)
    ]


def latest(
    session: Session, *, device_id: int, metric_ids: Sequence[int], before_ms: int | None = None
) -> list[StoredReading]:
    """The newest reading of each metric of a device (optionally before a time)."""
    found: list[StoredReading] = []
    for metric_id in metric_ids:
        query = select(
            Reading.device_id,
            Reading.metric_id,
            Reading.time_ms,
            Reading.value,
            Reading.flagged,
            Reading.seal_id,
        ).where(Reading.device_id == device_id, Reading.metric_id == metric_id)
        if before_ms is not None:
            query = query.where(Reading.time_ms < before_ms)
        row = session.execute(query.order_by(Reading.time_ms.desc()).limit(1)).first()
        if row is not None:
            found.append(StoredReading(*row))
    return found
