"""The publisher: signs the log's checkpoints apart from the transactions that append.

Signing a checkpoint in every appending transaction made each one-entry request pay for a tree
hash, a consistency check and an Ed25519 signature while holding the database's one writer. A
serving process appends with ``Ledger(sign_on_append=False)`` instead, and its publisher signs
one checkpoint for everything appended since the last: at most every ``interval`` (250 ms) and
within about a second of an append.

The database is the arbiter. Publishing takes the log's writer lock (PostgreSQL's advisory lock,
SQLite's ``BEGIN IMMEDIATE``), reads the log's size and the newest checkpoint and signs only when
that checkpoint does not cover every entry, so every worker of ``dv serve --workers N`` may run
a publisher: a size is signed once (the checkpoint's primary key is its size), and a worker that
finds a checkpoint younger than ``interval`` leaves the next one to later.

What reads "the current checkpoint" (the ledger routes, proofs, batch proofs, pages) reads the
newest *signed* one: an entry appended but not covered yet is answered as pending (a batch
proof's ``pending``, a tlog-proof's 404 naming it) until the next checkpoint, a moment later.

Commands that append and exit (``dv demo``, imports) and tests use ledgers that sign on append,
or call :func:`publish_now` before they finish; a serving process flushes on shutdown.

Hook: ``Publisher.listeners`` (and the ``listeners`` argument of :func:`publish_now`) are called
with each :class:`Published` checkpoint after the transaction that stored it has committed, on
the publishing thread, once per checkpoint this process signed (not for sizes another worker
signed first). A listener that fails is logged and does not stop publishing; one that does slow
work (asking witnesses to cosign) should hand it to its own thread, or the next checkpoint waits.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from sqlalchemy import text
from sqlalchemy.orm import Session

from digital_village.db import Database, utcnow
from digital_village.ledger import log as ledger_log
from digital_village.ledger.log import Ledger

logger = logging.getLogger("digital_village.ledger.publisher")

INTERVAL_S: Final = 0.25
# The longest an entry waits for a checkpoint with a publisher running (what readers allow for).
MAX_DELAY_S: Final = 1.0
# After a failed attempt (database away), the publisher tries again after this.
RETRY_S: Final = 1.0

_SIZES_SQL = text(
    "SELECT (SELECT max(seq) FROM ledger_entry), (SELECT max(size) FROM ledger_checkpoint)"
)


@dataclass(frozen=True)
class Published:
    """A checkpoint as stored: its tree size, root hash and signed note (the served bytes)."""

    size: int
    root_hash: bytes
    note: bytes


Listener = Callable[[Published], None]


def uncovered(session: Session) -> tuple[int, int]:
    """(entries stored, size of the newest checkpoint): one cheap read, no lock."""
    last_seq, signed = session.execute(_SIZES_SQL).one()
    return (0 if last_seq is None else int(last_seq) + 1), int(signed or 0)


def sign_pending(session: Session, ledger: Ledger, *, min_age: float = 0.0) -> Published | None:
    """In the session's write transaction: sign a checkpoint of every entry stored, unless the
    newest checkpoint covers them all or (``min_age``) was signed less than that many seconds
    ago. Takes the log's lock first, so concurrent publishers sign each size once."""
    ledger.lock(session)
    size = ledger_log.entry_count(session)
    latest = ledger_log.latest_checkpoint(session)
    if size == 0 or (latest is not None and latest.size >= size):
        return None
    if min_age and latest is not None:
        age = (utcnow() - latest.created_at).total_seconds()
        if 0 <= age < min_age:
            return None
    checkpoint = ledger.sign_checkpoint(session, size)
    return Published(int(checkpoint.size), bytes(checkpoint.root_hash), bytes(checkpoint.note))


def _announce(published: Published, listeners: Iterable[Listener]) -> None:
    for listener in listeners:
        try:
            listener(published)
        except Exception:
            logger.exception("a checkpoint listener failed for size %d", published.size)


def publish_now(
    database: Database, ledger: Ledger, listeners: Sequence[Listener] = ()
) -> Published | None:
    """Sign a checkpoint covering every committed entry now, unless one already does; then
    call ``listeners`` with it. What a command that appended calls before it exits."""
    with database.session() as session:
        stored, signed = uncovered(session)
    if stored <= signed:
        return None
    with database.transaction(write=True) as session:
        published = sign_pending(session, ledger)
    if published is not None:
        _announce(published, listeners)
    return published


class Publisher:
    """Signs checkpoints on a background thread while a process serves (``start``/``stop``).

    ``ledger`` is the ledger or a function loading it (the signing key may appear after the
    process started: until it does, each attempt is logged and retried).
    """

    def __init__(
        self,
        database: Database,
        ledger: Ledger | Callable[[], Ledger],
        *,
        interval: float = INTERVAL_S,
        listeners: Iterable[Listener] = (),
    ) -> None:
        self.database = database
        self._ledger = ledger if isinstance(ledger, Ledger) else None
        self._load = None if isinstance(ledger, Ledger) else ledger
        self.interval = interval
        # Called with each checkpoint this process stored, after its commit (see the module).
        self.listeners: list[Listener] = list(listeners)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # One publication at a time in this process (the thread, a flush, a route).
        self._publishing = threading.Lock()
        self.published = 0

    def ledger(self) -> Ledger:
        """The ledger this publisher signs with (loaded on first use)."""
        if self._ledger is None:
            assert self._load is not None
            self._ledger = self._load()
        return self._ledger

    def publish_now(self, *, min_age: float = 0.0) -> Published | None:
        """Sign a checkpoint of every committed entry now unless one covers them (or, with
        ``min_age``, the newest is younger than that); listeners hear of a new one."""
        with self._publishing:
            with self.database.session() as session:
                stored, signed = uncovered(session)
            if stored <= signed:
                return None
            with self.database.transaction(write=True) as session:
                published = sign_pending(session, self.ledger(), min_age=min_age)
            if published is not None:
                self.published += 1
                _announce(published, self.listeners)
            return published

    def start(self) -> Publisher:
        """Publish in the background until ``stop``."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="ledger-publisher", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread, then sign what is left uncovered (a serving process's last act)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        try:
            self.publish_now()
        except Exception:
            logger.exception("could not sign the last checkpoint at shutdown")

    def _run(self) -> None:
        # Each look starts ``interval`` after the last one ended, and a checkpoint younger than
        # that (another worker's) is left alone: at most one checkpoint per interval.
        wait = self.interval
        while not self._stop.wait(wait):
            try:
                self.publish_now(min_age=self.interval)
            except Exception:
                logger.exception("could not publish a checkpoint; trying again")
                wait = RETRY_S
                continue
            wait = self.interval
