"""The log's audit behind ``dv ledger verify``: recompute everything from the stored bytes.

It streams entries, stored hashes and checkpoints in index order, keeping only the tree's right
border (O(log n) hashes) in memory, and checks: every leaf hash against its bytes, every bytes
as canonical JSON, every hash-chain link and per-thing chain link, every stored tree hash, every
checkpoint's root, origin and signature, and that the newest checkpoint covers every entry within
the moment a publisher takes to sign one (so the server cannot be serving an older one as
current).

The log never learns what its entries mean. The rows other packages keep and the log vouches
for (parcels, sealed days of readings, …) are checked by record checkers that the caller hands
in (``RecordChecker``): each names the entry kinds it wants to see while the log streams past,
gets those entries as (index, kind, bytes), then checks its own rows with its own queries,
reporting problems by entry index and subject. ``digital_village.audit`` composes the log
audit with every package's checker.

Here is the walk: the tree recomputed as the entries stream, each stored hash and checkpoint
checked against it, a large log's blocks in worker processes (``audit_blocks.py``). What one
entry must be is in ``audit_entries.py``, one checkpoint in ``audit_checkpoints.py``, and
canonical JSON is decided in ``canonical.py``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple, Protocol

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from digital_village.ledger import audit_blocks, audit_checkpoints, audit_entries, log, merkle, note
from digital_village.ledger.models import LedgerCheckpoint, LedgerEntry, LedgerKey

BATCH = 2000
MAX_PROBLEMS = audit_entries.MAX_PROBLEMS
# How long the newest checkpoint may lag the entries (a publisher signs within a second).
PUBLISH_GRACE_S = 2.0
GRACE_STEP_S = 0.25


@dataclass(frozen=True)
class Problem:
    """One thing found wrong, at the entry index (or checkpoint size) where it shows.

    ``subject`` names the row when the problem is in a record the ledger vouches for (as its
    checker names it: ``parcel:<dkbm>``, ``seal:<dkbm>/<day>/<part>``, …); None for the log's
    own tables.
    """

    index: int
    what: str
    subject: str | None = None

    def __str__(self) -> str:
        return f"index {self.index}: {self.what}"


class Found(Protocol):
    """How a check reports a problem: the entry index it shows at, what, and which record."""

    def __call__(self, index: int, what: str, subject: str | None = None) -> None: ...


class RecordChecker(ABC):
    """Checks the rows one package keeps against the ledger entries that vouch for them.

    While the log streams, ``entry`` is called for each entry whose kind is in ``kinds`` (in
    index order, with the entry's exact bytes); then ``finish`` checks the package's rows,
    running whatever queries it needs (joining ``ledger_entry`` itself where that is simpler),
    and returns what it counted (name → number, shown in the report in this order). Problems go
    to ``found`` with the entry index and the record's subject. A checker is used for one audit.
    """

    kinds: Collection[str] = ()

    def entry(self, seq: int, kind: str, body: bytes) -> None:
        """One entry of a kind this checker asked for, as the log streams past it."""
        return  # by default nothing: a checker that reads only its own rows keeps no entries

    @abstractmethod
    def finish(self, session: Session, found: Found) -> Mapping[str, int]:
        """Check the package's rows; return the counts to report."""


@dataclass
class AuditReport:
    entries: int = 0
    stored_hashes: int = 0
    checkpoints: int = 0
    root: str | None = None
    # What the record checkers counted, by name, in their order.
    records: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "stored_hashes": self.stored_hashes,
            "checkpoints": self.checkpoints,
            "root": self.root,
            **self.records,
            "first_bad_index": self.problems[0].index if self.problems else None,
            "problems": [
                {"index": p.index, "what": p.what, "subject": p.subject} for p in self.problems
            ],
        }


def keyset(session: Session, query: Any, key: Any, start: int = 0) -> Iterator[Any]:
    """Stream rows ordered by ``key`` (the query's first column) in batches: constant memory on
    both backends."""
    after = start - 1
    while True:
        rows = session.execute(query.where(key > after).order_by(key).limit(BATCH)).all()
        if not rows:
            return
        yield from rows
        after = rows[-1][0]


def entry_data(body: bytes | None) -> dict[str, Any] | None:
    """The ``data`` object of an entry's bytes, or None when there is none to read."""
    if body is None:
        return None
    try:
        data = json.loads(body).get("data")
    except (ValueError, AttributeError):
        return None
    return data if isinstance(data, dict) else None


def audit(
    session: Session,
    *,
    origin: str,
    extra_vkeys: Sequence[str] = (),
    progress: Callable[[int], None] | None = None,
    checkers: Sequence[RecordChecker] = (),
) -> AuditReport:
    """Check the whole log, then the rows it vouches for (``checkers``); first bad index first."""
    report = AuditReport()
    problems = report.problems

    def found(index: int, what: str, subject: str | None = None) -> None:
        if len(problems) < MAX_PROBLEMS:
            problems.append(Problem(index, what, subject))

    verifiers = _verifiers(session, extra_vkeys, found)
    handlers: dict[str, list[Callable[[int, str, bytes], None]]] = {}
    for checker in checkers:
        for kind in checker.kinds:
            handlers.setdefault(kind, []).append(checker.entry)
    newest_signed = _walk(session, _Walk(report, origin, verifiers, handlers, progress, found))
    _check_newest_checkpoint(session, report, newest_signed, found)
    for checker in checkers:
        report.records.update(checker.finish(session, found))
    problems.sort(key=lambda p: p.index)
    return report


def _verifiers(
    session: Session, extra_vkeys: Sequence[str], found: Found
) -> dict[str, note.Verifier]:
    """The log's stored verifier keys and the caller's, by key ID."""
    vkeys = [*session.scalars(select(LedgerKey.vkey)), *extra_vkeys]
    return audit_checkpoints.verifiers(vkeys, found)


_HASHES_FROM_SQL: Final = "SELECT idx FROM ledger_hash WHERE idx >= ? ORDER BY idx LIMIT 1"
_CHECKPOINTS_SQL: Final = (
    "SELECT size, root_hash, note FROM ledger_checkpoint WHERE size > ? ORDER BY size LIMIT ?"
)


class _CheckpointRow(NamedTuple):
    size: Any
    root_hash: Any
    note: Any


def _checkpoint_rows(driver: log.DriverCursor) -> Iterator[_CheckpointRow]:
    after: Any = -1
    while True:
        rows = driver.rows(_CHECKPOINTS_SQL, (after, BATCH))
        if not rows:
            return
        for row in rows:
            yield _CheckpointRow(*row)
        after = rows[-1][0]


# From this many entries the audit goes block by block in worker processes (one per core):
# each checks a block's entries and recomputes its part of the tree (audit_blocks.py), this one
# joins the blocks' roots and checks the checkpoints.
PARALLEL_FROM = 100_000
# Entries per worker task, rounded down to a power of two (several tasks per worker, so that
# the workers finish together).
TASK_ENTRIES: Final = 16_384
_CHECKPOINT_SIZES_SQL: Final = (
    "SELECT size FROM ledger_checkpoint WHERE size > ? AND size <= ? ORDER BY size"
)


@dataclass(frozen=True)
class _Walk:
    """What one audit's walk reports to and checks with."""

    report: AuditReport
    origin: str
    verifiers: dict[str, note.Verifier]
    handlers: Mapping[str, list[Callable[[int, str, bytes], None]]]
    progress: Callable[[int], None] | None
    found: Found


class _Tree:
    """The tree recomputed as the log wrote it, with every checkpoint checked on the way.

    Each leaf gives its own row and one per subtree it completes, from the tree's right border;
    each batch's rows are compared with the stored ones in one list comparison, and only a
    batch that differs is gone through hash by hash to name the first."""

    def __init__(self, driver: log.DriverCursor, walk: _Walk) -> None:
        self.driver, self.report, self.origin = driver, walk.report, walk.origin
        self.verifiers, self.found, self.handlers = walk.verifiers, walk.found, walk.handlers
        self.checkpoints = _checkpoint_rows(driver)
        self.next_checkpoint: _CheckpointRow | None = None
        self.next_size = -1
        self.next()
        # Roots of the perfect subtrees the tree so far splits into, big first.
        self.border: list[bytes] = []
        self.expected: list[bytes] = []
        self.start = 0
        self.newest_signed = 0

    def next(self) -> None:
        """On to the next checkpoint."""
        self.next_checkpoint = next(self.checkpoints, None)
        self.next_size = self.next_checkpoint.size if self.next_checkpoint is not None else -1

    def checkpoint(self, size: int, root: bytes) -> None:
        """The next checkpoint, at ``size``, against the tree's root at that size."""
        assert self.next_checkpoint is not None
        audit_checkpoints.check_checkpoint(
            self.next_checkpoint, root, self.origin, self.verifiers, self.found
        )
        self.report.checkpoints += 1
        self.newest_signed = size

    def add(self, seq: int, leaf: bytes) -> None:
        """Leaf ``seq`` (the tree's size so far): its rows, and the checkpoint at seq + 1."""
        expected, border, sha256 = self.expected, self.border, hashlib.sha256
        expected.append(leaf)
        node = leaf
        completes = seq
        while completes & 1:
            node = sha256(b"\x01" + border.pop() + node).digest()
            expected.append(node)
            completes >>= 1
        border.append(node)
        size = seq + 1
        while self.next_checkpoint is not None and self.next_size <= size:
            if self.next_size == size:
                self.checkpoint(size, audit_blocks.fold_root(border))
            self.next()

    def compare(self, size: int) -> None:
        """Compare the rows of the leaves added since the last comparison with the stored."""
        self.report.stored_hashes += audit_blocks.compare_hashes(
            self.driver, self.start, size, self.expected, self.found
        )
        self.start, self.expected = size, []

    def finish(self, size: int) -> int:
        """The log ends at ``size``: leftover hashes and checkpoints beyond it; the newest
        checkpoint's size."""
        self.compare(size)
        self.report.entries = size
        self.report.root = audit_blocks.fold_root(self.border).hex()
        leftover = self.driver.rows(_HASHES_FROM_SQL, (merkle.stored_hash_count(size),))
        if leftover:
            self.found(size, f"stored tree hash {leftover[0][0]} belongs to no entry")
        while self.next_checkpoint is not None:
            self.found(
                self.next_checkpoint.size - 1,
                f"a checkpoint was signed at size {self.next_checkpoint.size} but the log has "
                f"only {size} entries: entries were removed",
            )
            self.next()
        return self.newest_signed


def _walk(session: Session, walk: _Walk) -> int:
    """Stream entries, tree hashes and checkpoints in step, a batch of entries per round trip;
    the size of the newest checkpoint. A large log's entries are checked by worker processes
    meanwhile (``_walk_parallel``)."""
    driver = log.DriverCursor(session)
    database = _worker_database(session)
    if database is not None:
        last = driver.rows("SELECT max(seq) FROM ledger_entry")[0][0]
        if isinstance(last, int) and last + 1 >= PARALLEL_FROM and (os.cpu_count() or 1) > 1:
            return _walk_parallel(driver, database, last + 1, walk)
    found, handlers, progress = walk.found, walk.handlers, walk.progress
    tree = _Tree(driver, walk)
    expected_prev: bytes | None = None
    size = 0
    stopped = False
    while not stopped:
        batch = driver.rows(audit_entries.ENTRIES_SQL, (size - 1, audit_entries.WALK_BATCH))
        if not batch:
            break
        for values in batch:
            seq = values[0]
            if type(seq) is not int or seq != size:
                found(size, f"entry missing: the next stored entry has index {seq!r}")
                stopped = True
                break
            values = audit_entries.fixed_types(values, found)
            kind, body, leaf = values[1], values[2], values[3]
            if hashlib.sha256(b"\x00" + body).digest() != leaf:
                found(seq, "the entry's bytes do not match its leaf hash (entry edited)")
            audit_entries.check_entry(values, expected_prev, found)
            for handler in handlers.get(kind, ()):
                handler(seq, kind, body)
            tree.add(seq, leaf)
            size += 1
            expected_prev = leaf
        tree.compare(size)
        if progress is not None:
            progress(size)
    return tree.finish(size)


def _worker_database(session: Session) -> audit_blocks.Database | None:
    """How worker processes open the database, when they can (a file or a server), else None
    (a connection handed in, as tests do, or an in-memory database)."""
    bind = session.get_bind()
    if not isinstance(bind, Engine):
        return None
    url, dialect = bind.url, bind.dialect
    if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
        return None
    args, kwargs = dialect.create_connect_args(url)
    # psycopg's adapters as SQLAlchemy sets them up; the worker reads bytes, text and integers.
    kwargs.pop("context", None)
    return audit_blocks.Database(
        dialect.loaded_dbapi.__name__, tuple(args), dict(kwargs), dialect.paramstyle == "qmark"
    )


def _walk_parallel(
    driver: log.DriverCursor, database: audit_blocks.Database, total: int, walk: _Walk
) -> int:
    """Workers check the log block by block (``audit_blocks.check_block``); this process joins
    the blocks' subtree roots into the tree, checks the stored hashes above each block and every
    checkpoint, and hands the record checkers their entries, in index order."""
    block = 1 << (TASK_ENTRIES.bit_length() - 1)
    tasks = [
        (start, stop, [row[0] for row in driver.rows(_CHECKPOINT_SIZES_SQL, (start, stop))])
        for start in range(0, total, block)
        for stop in [min(start + block, total)]
    ]
    tree = _BlockTree(driver, walk)

    def root_at(start: int, stop: int, size: int) -> bytes:
        """A checkpoint signed while the audit ran: the block's root up to it, afresh."""
        with audit_blocks.Workers(database, block, (), [(start, stop, [size])], 1) as again:
            return next(again.results()).at_sizes[size]

    processes = os.cpu_count() or 2
    with audit_blocks.Workers(database, block, walk.handlers, tasks, processes) as workers:
        for (start, stop, _), result in zip(tasks, workers.results(), strict=False):
            tree.add_block(result, start, block, functools.partial(root_at, start, stop))
            if walk.progress is not None:
                walk.progress(result.stop)
            if result.stop < stop:
                break  # an entry is missing: the log ends there
    return tree.finish(tree.start)


class _BlockTree(_Tree):
    """The tree joined block by block from what the workers recomputed of each."""

    def add_block(
        self, block: audit_blocks.Block, start: int, width: int, root_at: Callable[[int], bytes]
    ) -> None:
        """The block of leaves from ``start``: its findings, its entries for the record
        checkers, the checkpoints within it, its roots joined to the border."""
        found = self.found
        for index, what in block.problems:
            found(index, what)
        for seq, kind, body in block.entries:
            for handler in self.handlers[kind]:
                handler(seq, kind, body)
        while self.next_checkpoint is not None and self.next_size <= block.stop:
            if self.next_size > start:
                inner = block.at_sizes.get(self.next_size) or root_at(self.next_size)
                self.checkpoint(self.next_size, audit_blocks.fold_root([*self.border, inner]))
            self.next()
        self.report.stored_hashes += block.stored
        if block.stop - start == width:
            self._join(block, start, width)
        else:
            self.border.extend(block.border)  # the log ends in this block
        if block.gap:
            found(block.stop, f"entry missing: the next stored entry has index {block.next_seq!r}")
        self.start = block.stop

    def _join(self, block: audit_blocks.Block, start: int, width: int) -> None:
        """A full block's root onto the border: it may complete subtrees above the block, whose
        stored hashes (its last leaf's topmost rows) are checked here."""
        border = self.border
        node = block.border[0]
        expected = []
        completes = start // width
        while completes & 1:
            node = merkle.hash_children(border.pop(), node)
            expected.append(node)
            completes >>= 1
        border.append(node)
        stored = dict(block.above)
        self.report.stored_hashes += len(stored)
        for offset, value in enumerate(expected):
            idx = block.above_from + offset
            if idx not in stored:
                self.found(block.stop - 1, f"stored tree hash {idx} is missing")
            elif stored[idx] != value:
                self.found(
                    block.stop - 1, f"stored tree hash {idx} differs from the one the leaves give"
                )


def _newest_signed_now(session: Session) -> int:
    """The newest checkpoint's size as committed now, outside the audit's own snapshot."""
    query = select(func.max(LedgerCheckpoint.size))
    bind = session.get_bind()
    if isinstance(bind, Engine):
        with bind.connect() as connection:
            return int(connection.scalar(query) or 0)
    return int(session.scalar(query) or 0)


def _check_newest_checkpoint(
    session: Session, report: AuditReport, newest_signed: int, found: Found
) -> None:
    """A checkpoint covers every entry within a moment of its append (in its transaction, or
    by the publisher within a second): the newest checkpoint soon covers all the audit saw."""
    size = report.entries
    if size <= newest_signed or any("entries were removed" in p.what for p in report.problems):
        return
    # Entries seen may have been appended just before the audit's snapshot, their checkpoint
    # published just after it: fresh looks, for as long as a publisher may take, settle it.
    deadline = time.monotonic() + PUBLISH_GRACE_S
    newest_signed = max(newest_signed, _newest_signed_now(session))
    while size > newest_signed and time.monotonic() < deadline:
        time.sleep(GRACE_STEP_S)
        newest_signed = max(newest_signed, _newest_signed_now(session))
    if size > newest_signed:
        found(
            newest_signed,
            f"no signed checkpoint covers entries {newest_signed} to {size - 1}: the newest "
            f"checkpoint is at size {newest_signed} of {size}, {PUBLISH_GRACE_S:g} s later "
            "(newer checkpoints were removed, or the log's publisher is not running; an old "
            "checkpoint would be served as current)",
        )


def count_entries(session: Session) -> int:
    """How many entries the log holds (for progress bars)."""
    return int(session.scalar(select(func.count()).select_from(LedgerEntry)) or 0)
