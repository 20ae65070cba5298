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

This module is longer than most (~650 lines) on purpose: the streaming walk, its parallel form
(worker processes checking entries while the walk recomputes the tree) and the checks of one
entry, one stored hash and one checkpoint share the walk's private state and row shapes, and
read best together as "what the audit checks"; canonical JSON is decided in ``canonical.py``.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Final, NamedTuple, Protocol

from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from digital_village.ledger import canonical, log, merkle, note
from digital_village.ledger.models import LedgerCheckpoint, LedgerEntry, LedgerKey

BATCH = 2000
MAX_PROBLEMS = 100
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
    verifiers = {}
    for vkey in [*session.scalars(select(LedgerKey.vkey)), *extra_vkeys]:
        try:
            parsed = note.Verifier.parse(vkey)
            verifiers[parsed.key_id.hex()] = parsed
        except note.NoteError as error:
            found(-1, f"a stored verifier key is malformed: {error}")
    return verifiers


_ENTRY_COLUMNS: Final = (
    "seq",
    "kind",
    "body",
    "leaf_hash",
    "prev_hash",
    "chain_key",
    "chain_prev_seq",
    "chain_prev_leaf",
    "chain_prev_key",
)
_ENTRIES_SQL: Final = (
    "SELECT e.seq, e.kind, e.body, e.leaf_hash, e.prev_hash, e.chain_key, e.chain_prev_seq, "
    "p.leaf_hash, p.chain_key FROM ledger_entry e "
    "LEFT JOIN ledger_entry p ON p.seq = e.chain_prev_seq "
    "WHERE e.seq > ? ORDER BY e.seq LIMIT ?"
)
_HASHES_SQL: Final = "SELECT idx, hash FROM ledger_hash WHERE idx >= ? AND idx < ? ORDER BY idx"
_HASHES_FROM_SQL: Final = "SELECT idx FROM ledger_hash WHERE idx >= ? ORDER BY idx LIMIT 1"
_CHECKPOINTS_SQL: Final = (
    "SELECT size, root_hash, note FROM ledger_checkpoint WHERE size > ? ORDER BY size LIMIT ?"
)
# Entries read and checked per round trip.
WALK_BATCH: Final = 5000


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


# From this many entries the audit checks entries in worker processes (one per core) while
# this one recomputes the tree: each entry's own checks cost twice the tree's share.
PARALLEL_FROM = 100_000
# Entries per worker task (several per worker, so that the workers finish together).
TASK_ENTRIES: Final = 50_000
_NARROW_SQL: Final = (
    "SELECT seq, kind, leaf_hash, {} FROM ledger_entry WHERE seq > ? ORDER BY seq LIMIT ?"
)
_ENTRY_SQL: Final = _ENTRIES_SQL.replace(
    "WHERE e.seq > ? ORDER BY e.seq LIMIT ?", "WHERE e.seq = ?"
)


def _fixed(values: Sequence[Any], found: Found) -> Sequence[Any]:
    """The entry's columns as the log wrote their types (the usual case: as they are), else as
    ``_readable`` reads them, naming each changed column."""
    _, kind, body, leaf, prev, chain_key, _, chain_prev_leaf, _ = values
    if (
        type(body) is bytes
        and type(leaf) is bytes
        and len(leaf) == merkle.HASH_SIZE
        and (prev is None or type(prev) is bytes)
        and (chain_prev_leaf is None or type(chain_prev_leaf) is bytes)
        and type(kind) is str
        and (chain_key is None or type(chain_key) is str)
    ):
        return values
    row = _readable(SimpleNamespace(**dict(zip(_ENTRY_COLUMNS, values, strict=True))), found)
    return tuple(getattr(row, column) for column in _ENTRY_COLUMNS)


def _ignore(index: int, what: str, subject: str | None = None) -> None:
    """A Found for what another part of the audit reports."""


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
        self.verifiers, self.found = walk.verifiers, walk.found
        self.checkpoints = _checkpoint_rows(driver)
        self.next_checkpoint = next(self.checkpoints, None)
        self.next_size = self.next_checkpoint.size if self.next_checkpoint is not None else -1
        # Roots of the perfect subtrees the tree so far splits into, big first.
        self.border: list[bytes] = []
        self.expected: list[bytes] = []
        self.start = 0
        self.newest_signed = 0

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
                _check_checkpoint(
                    self.next_checkpoint, _root(border), self.origin, self.verifiers, self.found
                )
                self.report.checkpoints += 1
                self.newest_signed = size
            self.next_checkpoint = next(self.checkpoints, None)
            self.next_size = self.next_checkpoint.size if self.next_checkpoint is not None else -1

    def compare(self, size: int) -> None:
        """Compare the rows of the leaves added since the last comparison with the stored."""
        _compare_hashes(self.driver, self.report, self.start, size, self.expected, self.found)
        self.start, self.expected = size, []

    def finish(self, size: int) -> int:
        """The log ends at ``size``: leftover hashes and checkpoints beyond it; the newest
        checkpoint's size."""
        self.compare(size)
        self.report.entries = size
        self.report.root = _root(self.border).hex()
        leftover = self.driver.rows(_HASHES_FROM_SQL, (merkle.stored_hash_count(size),))
        if leftover:
            self.found(size, f"stored tree hash {leftover[0][0]} belongs to no entry")
        while self.next_checkpoint is not None:
            self.found(
                self.next_checkpoint.size - 1,
                f"a checkpoint was signed at size {self.next_checkpoint.size} but the log has "
                f"only {size} entries: entries were removed",
            )
            self.next_checkpoint = next(self.checkpoints, None)
        return self.newest_signed


def _walk(session: Session, walk: _Walk) -> int:
    """Stream entries, tree hashes and checkpoints in step, a batch of entries per round trip;
    the size of the newest checkpoint. A large log's entries are checked by worker processes
    meanwhile (``_walk_parallel``)."""
    driver = log.DriverCursor(session)
    url = _shared_url(session)
    if url is not None:
        last = driver.rows("SELECT max(seq) FROM ledger_entry")[0][0]
        if isinstance(last, int) and last + 1 >= PARALLEL_FROM and (os.cpu_count() or 1) > 1:
            return _walk_parallel(driver, url, last + 1, walk)
    found, handlers, progress = walk.found, walk.handlers, walk.progress
    tree = _Tree(driver, walk)
    expected_prev: bytes | None = None
    size = 0
    stopped = False
    while not stopped:
        batch = driver.rows(_ENTRIES_SQL, (size - 1, WALK_BATCH))
        if not batch:
            break
        for values in batch:
            seq = values[0]
            if type(seq) is not int or seq != size:
                found(size, f"entry missing: the next stored entry has index {seq!r}")
                stopped = True
                break
            values = _fixed(values, found)
            kind, body, leaf = values[1], values[2], values[3]
            if hashlib.sha256(b"\x00" + body).digest() != leaf:
                found(seq, "the entry's bytes do not match its leaf hash (entry edited)")
            _check_entry(values, expected_prev, found)
            for handler in handlers.get(kind, ()):
                handler(seq, kind, body)
            tree.add(seq, leaf)
            size += 1
            expected_prev = leaf
        tree.compare(size)
        if progress is not None:
            progress(size)
    return tree.finish(size)


def _shared_url(session: Session) -> str | None:
    """The database's URL when other processes can open it (a file or a server), else None
    (a connection handed in, as tests do, or an in-memory database)."""
    bind = session.get_bind()
    if not isinstance(bind, Engine):
        return None
    url = bind.url
    if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
        return None
    return url.render_as_string(hide_password=False)


def _walk_parallel(driver: log.DriverCursor, url: str, total: int, walk: _Walk) -> int:
    """Workers check the entries of ``[0, total)`` task by task; this process reads only index,
    kind and leaf hash (and the bytes of kinds a record checker wants), recomputes the tree and
    checks the checkpoints."""
    found, handlers, progress = walk.found, walk.handlers, walk.progress
    kinds = sorted(handlers)
    body_column = (
        f"CASE WHEN kind IN ({','.join('?' * len(kinds))}) THEN body END" if kinds else "NULL"
    )
    narrow = _NARROW_SQL.format(body_column)
    workers = os.cpu_count() or 2
    tasks = [
        (url, start, min(start + TASK_ENTRIES, total)) for start in range(0, total, TASK_ENTRIES)
    ]
    # Spawned, not forked: a fork copies whatever lock another thread held at that moment.
    context = multiprocessing.get_context("spawn")
    tree = _Tree(driver, walk)
    size = 0
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        checked = [pool.submit(_check_entries, *task) for task in tasks]
        stopped = False
        while not stopped:
            batch = driver.rows(narrow, (*kinds, size - 1, WALK_BATCH))
            if not batch:
                break
            for seq, kind, leaf, body in batch:
                if type(seq) is not int or seq != size:
                    found(size, f"entry missing: the next stored entry has index {seq!r}")
                    stopped = True
                    break
                if (
                    type(leaf) is not bytes
                    or len(leaf) != merkle.HASH_SIZE
                    or type(kind) is not str
                ):
                    # As the sequential walk reads it; the workers name what changed.
                    values = _fixed(driver.rows(_ENTRY_SQL, (seq,))[0], _ignore)
                    kind, leaf = values[1], values[3]
                    body = values[2] if kind in handlers else None
                if body is not None:
                    body = body if type(body) is bytes else _bytes_of(body)
                    for handler in handlers[kind]:
                        handler(seq, kind, body)
                tree.add(seq, leaf)
                size += 1
            tree.compare(size)
            if progress is not None:
                progress(size)
        for future in checked:
            for index, what in future.result():
                if index < size:
                    found(index, what)
    return tree.finish(size)


def _check_entries(url: str, start: int, stop: int) -> list[tuple[int, str]]:
    """A worker's task: each entry of ``[start, stop)`` checked on its own (its bytes against
    its leaf hash, canonical JSON, its links to the entry before it and to its chain)."""
    problems: list[tuple[int, str]] = []

    def found(index: int, what: str, subject: str | None = None) -> None:
        if index >= start and len(problems) < MAX_PROBLEMS:
            problems.append((index, what))

    engine = create_engine(url, poolclass=NullPool)
    try:
        with Session(engine) as session:
            driver = log.DriverCursor(session)
            # The entry before the first, read as the walk reads it, for the first one's link.
            size = max(start - 1, 0)
            expected_prev: bytes | None = None
            while size < stop:
                batch = driver.rows(_ENTRIES_SQL, (size - 1, min(WALK_BATCH, stop - size)))
                for values in batch:
                    if values[0] != size:
                        return problems  # a gap: the walk names it
                    values = _fixed(values, found if size >= start else _ignore)
                    seq, body, leaf = values[0], values[2], values[3]
                    if seq >= start:
                        if hashlib.sha256(b"\x00" + body).digest() != leaf:
                            found(
                                seq, "the entry's bytes do not match its leaf hash (entry edited)"
                            )
                        _check_entry(values, expected_prev, found)
                    expected_prev = leaf
                    size += 1
                if not batch:
                    break
    finally:
        engine.dispose()
    return problems


def _root(border: Sequence[bytes]) -> bytes:
    if not border:
        return merkle.EMPTY_ROOT
    node = border[-1]
    for left in reversed(border[:-1]):
        node = merkle.hash_children(left, node)
    return node


def _compare_hashes(
    driver: log.DriverCursor,
    report: AuditReport,
    start: int,
    stop: int,
    expected: list[bytes],
    found: Found,
) -> None:
    """The stored tree hashes of leaves [start, stop) against those the leaves give."""
    first = merkle.stored_hash_count(start)
    last = merkle.stored_hash_count(stop)
    stored = driver.rows(_HASHES_SQL, (first, last))
    if len(stored) == last - first and [value for _, value in stored] == expected:
        report.stored_hashes += len(stored)
        return
    by_index = dict(stored)
    report.stored_hashes += len(by_index)
    position = 0
    for leaf in range(start, stop):
        for _ in range(1 + (leaf ^ (leaf + 1)).bit_length() - 1):
            idx = first + position
            if idx not in by_index:
                found(leaf, f"stored tree hash {idx} is missing")
            elif by_index[idx] != expected[position]:
                found(leaf, f"stored tree hash {idx} differs from the one the leaves give")
            position += 1


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


_HASH_COLUMNS = ("leaf_hash", "prev_hash", "chain_prev_leaf")


def _readable(row: Any, found: Found) -> Any:
    """A row whose columns were given another type or encoding (text for bytes, a number for
    text, …): named as a finding at its index, then read as the bytes its values stand for, so
    the walk goes on and the entry's own checks report whatever else differs."""
    values = dict(vars(row))
    seq = row.seq

    def changed(column: str, value: Any) -> None:
        found(
            seq,
            f"the entry's {column} is stored as {type(value).__name__}, not as the log wrote "
            "it: the column's type or encoding was changed",
        )

    body = values["body"]
    if type(body) is not bytes:
        changed("bytes (body)", body)
        values["body"] = _bytes_of(body)
    for column in _HASH_COLUMNS:
        value = values[column]
        if value is not None and type(value) is not bytes:
            changed(column, value)
            values[column] = _bytes_of(value)
    if len(values["leaf_hash"]) != merkle.HASH_SIZE:
        found(seq, f"the stored leaf hash has {len(values['leaf_hash'])} bytes, not 32")
        # The tree is recomputed from the entry's bytes: stored tree hashes then show the rest.
        values["leaf_hash"] = merkle.hash_leaf(values["body"])
    for column in ("kind", "chain_key"):
        value = values[column]
        if value is not None and type(value) is not str:
            changed(column, value)
            values[column] = str(value)
    return SimpleNamespace(**values)


def _bytes_of(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return str(value).encode("utf-8", "surrogatepass")


def _check_entry(values: Sequence[Any], expected_prev: bytes | None, found: Found) -> None:
    """An entry's own checks but its leaf hash: previous-entry link, canonical JSON, kind, chain
    link. ``values`` in _ENTRY_COLUMNS order, as stored (or as _readable made them)."""
    seq, kind, body, _leaf, prev, chain_key, chain_prev_seq, chain_prev_leaf, chain_prev_key = (
        values
    )
    if prev != expected_prev:
        found(seq, "the stored previous-entry hash does not match the previous entry")
    parsed = canonical.parse_canonical(body)
    if parsed is None:
        found(seq, "the entry's bytes are not JSON")
        return
    envelope, is_canonical = parsed
    if not is_canonical:
        found(seq, "the entry's bytes are not RFC 8785 canonical JSON")
    if not isinstance(envelope, dict):
        found(seq, "the entry is not a JSON object")
        return
    if envelope.get("prev") != (expected_prev.hex() if expected_prev else None):
        found(seq, "the hash chain is broken: 'prev' does not name the previous entry")
    if envelope.get("kind") != kind:
        found(seq, "the stored kind differs from the entry's")
    chain = envelope.get("chain")
    if chain_key is None and chain is None:
        return
    if not isinstance(chain, dict) or chain.get("key") != chain_key:
        found(seq, "the stored chain key differs from the entry's")
        return
    if chain_prev_seq is None:
        if chain.get("prev") is not None:
            found(seq, "the entry names a previous chain entry that is not stored")
        return
    if chain_prev_leaf is None:
        found(seq, f"the previous entry of chain '{chain_key}' ({chain_prev_seq!r}) is gone")
        return
    if chain_prev_key != chain_key or chain.get("prev") != chain_prev_leaf.hex():
        found(seq, f"the chain '{chain_key}' is broken at this entry")


def _check_checkpoint(
    row: Any,
    root: bytes,
    origin: str,
    verifiers: dict[str, note.Verifier],
    found: Found,
) -> None:
    where = row.size - 1
    if row.root_hash != root:
        found(where, f"the checkpoint at size {row.size} has a root the entries do not produce")
    try:
        opened = note.open_note(row.note, list(verifiers.values()))
        checkpoint = note.Checkpoint.parse(opened.text)
    except note.NoteError as error:
        found(where, f"the checkpoint at size {row.size} fails signature checks: {error}")
        return
    except ValueError as error:
        found(where, f"the checkpoint at size {row.size} is malformed: {error}")
        return
    if checkpoint.origin != origin:
        found(where, f"the checkpoint at size {row.size} names origin {checkpoint.origin!r}")
    if checkpoint.size != row.size or checkpoint.root_hash != row.root_hash:
        found(where, f"the signed checkpoint text at size {row.size} differs from its stored row")


def count_entries(session: Session) -> int:
    """How many entries the log holds (for progress bars)."""
    return int(session.scalar(select(func.count()).select_from(LedgerEntry)) or 0)
