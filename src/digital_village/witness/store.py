"""The witness's own small SQLite store: the logs it witnesses and, per log, the latest
checkpoint it cosigned.

It lives in ``DV_DATA_DIR/witness.db``, apart from any log's database: a witness is run by
someone else than the log's operator. Every write is one short ``BEGIN IMMEDIATE``
transaction, so several threads or processes serving one store never interleave a check
and an update: :meth:`WitnessStore.advance` is a compare-and-set on (size, root hash).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

FILE_NAME = "witness.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS witnessed_log (
    origin TEXT PRIMARY KEY,
    size INTEGER NOT NULL DEFAULT 0,
    root_hash BLOB,
    checkpoint BLOB,
    updated_at REAL
);
CREATE TABLE IF NOT EXISTS log_key (
    origin TEXT NOT NULL REFERENCES witnessed_log(origin),
    vkey TEXT NOT NULL,
    added_at REAL NOT NULL,
    PRIMARY KEY (origin, vkey)
);
CREATE TABLE IF NOT EXISTS refused_checkpoint (
    id INTEGER PRIMARY KEY,
    origin TEXT NOT NULL,
    old_size INTEGER NOT NULL,
    reason TEXT NOT NULL,
    request BLOB NOT NULL,
    at REAL NOT NULL
);
"""


@dataclass(frozen=True)
class LogState:
    """What the witness knows of one log: its keys and the latest checkpoint it cosigned."""

    origin: str
    vkeys: tuple[str, ...]
    size: int
    root_hash: bytes | None
    checkpoint: bytes | None


class WitnessStore:
    """The witness's SQLite file; safe to share between threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # A cosignature is a promise: the state behind it must survive a power cut.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=5000")
        with self._lock:
            self._db.executescript(_SCHEMA)

    @classmethod
    def in_folder(cls, data_dir: Path) -> WitnessStore:
        """The store in a data folder (``DV_DATA_DIR``)."""
        return cls(data_dir / FILE_NAME)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def add_log(self, origin: str, vkey: str) -> bool:
        """Witness the log ``origin`` signed by ``vkey`` (a second key: a rotation); True if new."""
        with self._write() as db:
            db.execute("INSERT OR IGNORE INTO witnessed_log (origin) VALUES (?)", (origin,))
            cursor = db.execute(
                "INSERT OR IGNORE INTO log_key (origin, vkey, added_at) VALUES (?, ?, ?)",
                (origin, vkey, time.time()),
            )
            return cursor.rowcount == 1

    def remove_key(self, origin: str, vkey: str) -> bool:
        """Stop trusting one key of a log (its cosigned state is kept); True if it was there."""
        with self._write() as db:
            cursor = db.execute("DELETE FROM log_key WHERE origin = ? AND vkey = ?", (origin, vkey))
            return cursor.rowcount == 1

    def logs(self) -> list[LogState]:
        """Every log witnessed, by origin."""
        with self._lock:
            rows = self._db.execute(
                "SELECT origin, size, root_hash, checkpoint FROM witnessed_log ORDER BY origin"
            ).fetchall()
            keys = self._db.execute("SELECT origin, vkey FROM log_key ORDER BY added_at").fetchall()
        by_origin: dict[str, list[str]] = {}
        for origin, vkey in keys:
            by_origin.setdefault(origin, []).append(vkey)
        return [
            LogState(origin, tuple(by_origin.get(origin, ())), size, root, checkpoint)
            for origin, size, root, checkpoint in rows
        ]

    def state(self, origin: str) -> LogState | None:
        """The log's keys and latest cosigned checkpoint; None for a log not witnessed."""
        with self._lock:
            row = self._db.execute(
                "SELECT size, root_hash, checkpoint FROM witnessed_log WHERE origin = ?",
                (origin,),
            ).fetchone()
            if row is None:
                return None
            keys = self._db.execute(
                "SELECT vkey FROM log_key WHERE origin = ? ORDER BY added_at", (origin,)
            ).fetchall()
        return LogState(origin, tuple(k for (k,) in keys), row[0], row[1], row[2])

    def advance(
        self,
        origin: str,
        *,
        expected_size: int,
        expected_root: bytes | None,
        size: int,
        root_hash: bytes,
        checkpoint: bytes,
    ) -> int | None:
        """Record a newer cosigned checkpoint if the stored one is still the expected one.

        Returns None when it was recorded, else the size now stored (another request moved
        the log on in between): the caller must not cosign then.
        """
        with self._write() as db:
            cursor = db.execute(
                "UPDATE witnessed_log SET size = ?, root_hash = ?, checkpoint = ?, updated_at = ?"
                " WHERE origin = ? AND size = ? AND root_hash IS ?",
                (size, root_hash, checkpoint, time.time(), origin, expected_size, expected_root),
            )
            if cursor.rowcount == 1:
                return None
            row = db.execute(
                "SELECT size FROM witnessed_log WHERE origin = ?", (origin,)
            ).fetchone()
            return int(row[0]) if row else 0

    def record_refusal(self, origin: str, old_size: int, reason: str, request: bytes) -> None:
        """Keep a signed checkpoint the witness refused: it may prove the log misbehaved."""
        with self._write() as db:
            db.execute(
                "INSERT INTO refused_checkpoint (origin, old_size, reason, request, at)"
                " VALUES (?, ?, ?, ?, ?)",
                (origin, old_size, reason, request, time.time()),
            )

    def refusals(self, origin: str) -> list[tuple[int, str]]:
        """(old size, reason) of each refused request for the log, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT old_size, reason FROM refused_checkpoint WHERE origin = ? ORDER BY id",
                (origin,),
            ).fetchall()
        return [(int(old), str(reason)) for old, reason in rows]
