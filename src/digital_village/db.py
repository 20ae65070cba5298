"""Engine and session factory, the declarative base and shared column types.

SQLite (the embedded default) runs in WAL mode with foreign keys on. Write sessions start with
``BEGIN IMMEDIATE`` so two writers queue on the database lock at the start of their transaction
instead of failing half-way when a read lock cannot be upgraded. PostgreSQL runs through psycopg 3.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
import os
import sqlite3
import stat
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from sqlalchemy import (
    DateTime,
    Engine,
    MetaData,
    create_engine,
    event,
)
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import NullPool
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of every table, with an explicit constraint naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def naive_utc(value: dt.datetime) -> dt.datetime:
    """The UTC wall time of an aware datetime, without its tzinfo: how times are stored."""
    if value.tzinfo is None:
        raise ValueError("naive datetime given; every stored time must carry a timezone")
    return value.astimezone(dt.UTC).replace(tzinfo=None)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timestamp stored in UTC and always returned timezone-aware.

    SQLite has no timezone type; storing naive UTC and re-attaching the zone on the way out
    keeps both backends identical.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        return None if value is None else naive_utc(value)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def utcnow() -> dt.datetime:
    """The current time, timezone-aware, in UTC."""
    return dt.datetime.now(dt.UTC)


def is_sqlite(url: str) -> bool:
    """Whether the SQLAlchemy URL names a SQLite database."""
    return make_url(url).get_backend_name() == "sqlite"


def _install_sqlite_pragmas(engine: Engine, *, checkpoint_pages: int | None = None) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin, so that
        # BEGIN IMMEDIATE and SAVEPOINT behave as written.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        # Memory-map and cache generously: point lookups over hundreds of thousands of parcels
        # and the ledger's tree hashes are random reads that otherwise go through read().
        cursor.execute("PRAGMA mmap_size=268435456")
        cursor.execute("PRAGMA cache_size=-65536")
        if checkpoint_pages is not None:
            cursor.execute(f"PRAGMA wal_autocheckpoint={checkpoint_pages:d}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("dv_write", False)
        if not immediate:
            conn.exec_driver_sql("BEGIN")
            return
        # Waiting for the database's one writer, apart from holding it (RequestCost).
        started = time.perf_counter()
        _begin_immediate(conn)
        took = time.perf_counter() - started
        conn.info[_WRITE_BEGAN] = started + took
        cost = _COST.get()
        if cost is not None:
            cost.write_wait += took
            cost.statements += 1


BUSY_TIMEOUT_S = 30.0
# How long a writer sleeps between its tries for SQLite's write lock, growing to the last.
WRITE_LOCK_POLL_S = (0.0002, 0.0005, 0.001, 0.002, 0.003)


def _begin_immediate(conn: Connection) -> None:
    """``BEGIN IMMEDIATE``, trying for the write lock every few milliseconds for up to
    BUSY_TIMEOUT_S.

    SQLite's own busy handler sleeps in growing steps of up to 100 ms between its tries, so a
    writer that has waited a while looks for the lock ten times a second and loses it to any
    writer that comes along in between: behind a stream of short transactions (the chunks of a
    long job, a busy hour's events) it waited for seconds. Polled every 3 ms instead, a
    waiting writer gets the lock soon after it is free.
    """
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    cursor = dbapi.cursor()
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    tries = 0
    cursor.execute("PRAGMA busy_timeout=0")
    try:
        while True:
            try:
                cursor.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as error:
                busy = getattr(error, "sqlite_errorcode", 0) & 0xFF == _SQLITE_BUSY
                if not busy or time.monotonic() > deadline:
                    # As SQLAlchemy would raise it: a database that stays locked answers 503.
                    raise DBAPIError.instance(
                        "BEGIN IMMEDIATE", None, error, sqlite3.Error
                    ) from error
            time.sleep(WRITE_LOCK_POLL_S[min(tries, len(WRITE_LOCK_POLL_S) - 1)])
            tries += 1
    finally:
        cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        cursor.close()


@dataclass
class RequestCost:
    """What one request asked of the database: statements run, and the time its write
    transactions waited for the write lock (SQLite's ``BEGIN IMMEDIATE``) and then held it.
    On PostgreSQL a write transaction holds what other writers wait for from when it takes the
    log's or the sealer's lock (``note_lock_taken``), and has waited until then; one that takes
    neither holds for all it lasts. Filled in by the engine's events for the request that set
    it (``track_cost``), threads of the request included."""

    statements: int = 0
    write_wait: float = 0.0
    write_hold: float = 0.0
    # Writes that read before taking the writer and found, once they had it, that what they
    # read may have changed, so read again (a capture checked beside the writer).
    stale_reads: int = 0


_COST: ContextVar[RequestCost | None] = ContextVar("dv_request_cost", default=None)
_WRITE_BEGAN = "dv_write_began"
_LOCK_TAKEN = "dv_lock_taken"


def note_lock_taken(connection: Connection) -> None:
    """PostgreSQL: this transaction has just taken a lock other writers queue on (the log's,
    the sealer's), so what came before was waiting and its hold starts now (RequestCost). The
    first such lock of a transaction counts."""
    if connection.info.get(_LOCK_TAKEN):
        return
    connection.info[_LOCK_TAKEN] = True
    began = connection.info.get(_WRITE_BEGAN)
    if began is None:
        return
    now = time.perf_counter()
    connection.info[_WRITE_BEGAN] = now
    cost = _COST.get()
    if cost is not None:
        cost.write_wait += now - began


def current_cost() -> RequestCost | None:
    """The RequestCost this context's database work is counted in, if any."""
    return _COST.get()


def track_cost() -> RequestCost:
    """Count this context's database work (the caller's request) in a new RequestCost."""
    cost = RequestCost()
    _COST.set(cost)
    return cost


def _install_cost_tracking(engine: Engine) -> None:
    @event.listens_for(engine, "before_cursor_execute")
    def _on_statement(*_: Any) -> None:
        cost = _COST.get()
        if cost is not None:
            cost.statements += 1

    if engine.dialect.name != "sqlite":  # SQLite's begin listener notes when it got the lock

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            if conn.get_execution_options().get("dv_write", False):
                conn.info[_WRITE_BEGAN] = time.perf_counter()

    def _on_end(conn: Connection) -> None:
        if conn.invalidated:  # the database went away mid-transaction: nothing left to time,
            return  # and touching conn.info would try to reconnect inside the rollback
        began = conn.info.pop(_WRITE_BEGAN, None)
        conn.info.pop(_LOCK_TAKEN, None)
        cost = _COST.get()
        if began is not None and cost is not None:
            cost.write_hold += time.perf_counter() - began

    event.listen(engine, "commit", _on_end)
    event.listen(engine, "rollback", _on_end)


# A long-running engine copies the WAL back into the database file from a thread of its own
# (see WalCheckpointer); a writer checkpoints itself only when the WAL outgrows this many pages
# (40 MiB), which happens only if that thread falls behind.
BACKSTOP_CHECKPOINT_PAGES = 10_000
CHECKPOINT_INTERVAL_S = 0.25


_log = logging.getLogger(__name__)


class WalCheckpointer:
    """Checkpoints a SQLite database's WAL in the background while its engine lives.

    SQLite's own checkpoint runs inside the commit that crosses ``wal_autocheckpoint``: at
    county scale most of a capture's commit (0.14 s of a 0.65 s, 1,000-event document) went to
    copying pages from the WAL into the database file. A PASSIVE checkpoint on a connection of
    its own does the same copying without blocking readers or writers, and as SQLite releases
    the GIL it runs on another core while the writer goes on. Errors (a full disk, another
    process checkpointing) are logged and retried at the next tick; the backstop above keeps
    the WAL bounded regardless.
    """

    def __init__(self, path: str, interval: float = CHECKPOINT_INTERVAL_S) -> None:
        self.path = path
        self.interval = interval
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="wal-checkpoint", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()

    def _run(self) -> None:
        connection: sqlite3.Connection | None = None
        while not self.stopped.wait(self.interval):
            try:
                if connection is None:
                    connection = sqlite3.connect(self.path, timeout=0, isolation_level=None)
                connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error as error:
                _log.debug("background WAL checkpoint of %s: %s", self.path, error)
                if connection is not None:
                    connection.close()
                    connection = None
        if connection is not None:
            connection.close()


_CHECKPOINTERS: weakref.WeakKeyDictionary[Engine, WalCheckpointer] = weakref.WeakKeyDictionary()


PRIVATE_MODE: Final = 0o600
_SQLITE_SIDE_FILES: Final = ("", "-wal", "-shm", "-journal")


def private_file(path: Path) -> None:
    """Make sure ``path`` exists and only its owner may read or write it (0600), whatever the
    umask. Used for files that hold names, phones and token hashes: the database, backups."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, PRIVATE_MODE)
    except FileExistsError:
        pass
    else:
        os.close(descriptor)
    _tighten(path)


def _tighten(path: Path) -> None:
    try:
        if stat.S_IMODE(path.stat().st_mode) != PRIVATE_MODE:
            path.chmod(PRIVATE_MODE)
    except FileNotFoundError:
        pass


def _private_sqlite_file(database: str) -> None:
    """The database file created 0600 before SQLite opens it: SQLite gives its WAL, shared-
    memory and journal files the database file's mode, so they are private too. Files an
    older version left readable by others are tightened."""
    path = Path(database)
    private_file(path)
    for suffix in _SQLITE_SIDE_FILES[1:]:
        _tighten(path.with_name(path.name + suffix))


def _sqlite_file_path(url: str) -> str | None:
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return database


def make_engine(url: str) -> Engine:
    """Create the engine for a database URL, configured for its backend.

    A SQLite file gets a background WAL checkpointer that stops when the engine is
    garbage-collected (or :meth:`Database.dispose` is called).
    """
    if is_sqlite(url):
        database = _sqlite_file_path(url)
        engine = create_engine(url, connect_args={"check_same_thread": False})
        if database is not None:
            _private_sqlite_file(database)
            _install_sqlite_pragmas(engine, checkpoint_pages=BACKSTOP_CHECKPOINT_PAGES)
            checkpointer = _CHECKPOINTERS[engine] = WalCheckpointer(database)
            checkpointer.start()
            weakref.finalize(engine, checkpointer.stop)
        else:
            _install_sqlite_pragmas(engine)
        _install_cost_tracking(engine)
        return engine
    engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)
    _install_cost_tracking(engine)
    return engine


def make_single_use_engine(url: str) -> Engine:
    """An engine without a pool, for CLI commands and migrations that run once and exit."""
    if is_sqlite(url):
        database = _sqlite_file_path(url)
        if database is not None:
            _private_sqlite_file(database)
        engine = create_engine(url, poolclass=NullPool)
        _install_sqlite_pragmas(engine)
    else:
        engine = create_engine(url, poolclass=NullPool)
    # A command's long jobs size their chunks on how long they held the writer.
    _install_cost_tracking(engine)
    return engine


class Failure(enum.Enum):
    """What a database error says about the database rather than about the request."""

    DISK_FULL = "disk full"  # writes cannot succeed until space is freed; reads still can
    UNAVAILABLE = "unavailable"  # down, restarting, unreachable or overloaded: try again later


# SQLite primary result codes (the low byte of an extended code).
_SQLITE_BUSY = 5
_SQLITE_FULL = 13
_SQLITE_UNAVAILABLE = frozenset(
    {
        5,  # SQLITE_BUSY: another writer held the lock past busy_timeout
        6,  # SQLITE_LOCKED
        7,  # SQLITE_NOMEM
        8,  # SQLITE_READONLY: the file or its folder lost write permission
        10,  # SQLITE_IOERR
        14,  # SQLITE_CANTOPEN
        15,  # SQLITE_PROTOCOL
    }
)
# PostgreSQL SQLSTATEs: 53100 disk_full; classes 08 (connection), 53 (insufficient resources),
# 57 (operator intervention: shutdown, restart, cancelled), 58 (system error); and the
# transient conflicts a retry resolves.
_PG_DISK_FULL = "53100"
_PG_UNAVAILABLE_CLASSES = ("08", "53", "57", "58")
_PG_UNAVAILABLE_STATES = {"40001", "40P01", "55P03"}


def reason_of(error: BaseException) -> str:
    """The driver's own message for a database error, its first line (no SQL, no parameters)."""
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0][:300] if text else error.__class__.__name__


def failure_of(error: BaseException) -> Failure | None:
    """Whether an error means the database is full or unavailable (None: anything else).

    Such errors are no fault of the request and not a bug: the API answers 507 or 503 and the
    client may try again, where any other database error remains a 500.
    """
    if isinstance(error, PoolTimeoutError):
        return Failure.UNAVAILABLE  # every pooled connection stayed busy past pool_timeout
    if not isinstance(error, DBAPIError):
        return None
    original = error.orig
    code = getattr(original, "sqlite_errorcode", None)
    if isinstance(code, int):
        if code & 0xFF == _SQLITE_FULL:
            return Failure.DISK_FULL
        return Failure.UNAVAILABLE if code & 0xFF in _SQLITE_UNAVAILABLE else None
    state = getattr(original, "sqlstate", None)
    if isinstance(state, str):
        if state == _PG_DISK_FULL:
            return Failure.DISK_FULL
        if state[:2] in _PG_UNAVAILABLE_CLASSES or state in _PG_UNAVAILABLE_STATES:
            return Failure.UNAVAILABLE
        return None
    # No code from the server: the driver lost or could not open the connection.
    if error.connection_invalidated or isinstance(error, (OperationalError, InterfaceError)):
        return Failure.UNAVAILABLE
    return None


class Database:
    """Hands out sessions: read sessions, and write sessions that take the write lock first."""

    def __init__(self, bind: Engine | Connection) -> None:
        self.bind = bind
        engine = bind if isinstance(bind, Engine) else bind.engine
        self.dialect = engine.dialect.name
        if isinstance(bind, Connection):
            # Tests hand in a connection inside an outer transaction; every session then works
            # in a savepoint and the test rolls everything back at the end.
            factory = sessionmaker(bind=bind, join_transaction_mode="create_savepoint")
            self._reader = self._writer = factory
        else:
            self._reader = sessionmaker(bind=bind, expire_on_commit=False)
            self._writer = sessionmaker(
                bind=bind.execution_options(dv_write=True), expire_on_commit=False
            )

    @classmethod
    def from_url(cls, url: str) -> Database:
        """A database with its own connection pool."""
        return cls(make_engine(url))

    def session(self, *, write: bool = False) -> Session:
        """A new session; ``write=True`` takes the database's write lock when it begins."""
        return (self._writer if write else self._reader)()

    def side_reader(self) -> Session | None:
        """A read session to use beside a write session: for work that reads before it takes
        the write lock (a capture's checks). None when every session shares one connection
        (tests), where a read beside the writer would see the writer's own savepoints."""
        return None if isinstance(self.bind, Connection) else self._reader()

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Session]:
        """A session committed when the block succeeds and rolled back when it raises."""
        session = self.session(write=write)
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        """Close pooled connections and stop the engine's WAL checkpointer."""
        if isinstance(self.bind, Engine):
            self.bind.dispose()
            checkpointer = _CHECKPOINTERS.pop(self.bind, None)
            if checkpointer is not None:
                checkpointer.stop()
