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
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Protocol

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, aliased

from digital_village.ledger import canonical, merkle, note
from digital_village.ledger.models import LedgerCheckpoint, LedgerEntry, LedgerHash, LedgerKey

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


class RecordChecker:
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

    def finish(self, session: Session, found: Found) -> Mapping[str, int]:
        """Check the package's rows; return the counts to report."""
        raise NotImplementedError


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


class _Frontier:
    """The perfect subtrees on the tree's right border: enough to extend and to root it."""

    def __init__(self) -> None:
        self.by_index: dict[int, bytes] = {}
        self.levels: list[tuple[int, int, bytes]] = []  # (level, storage index, hash), big first

    def read(self, indexes: Sequence[int]) -> list[bytes]:
        return [self.by_index[i] for i in indexes]

    def push(self, size: int, rows: list[tuple[int, bytes]]) -> None:
        """Record leaf ``size - 1``'s rows; the last row is the new largest subtree it closed."""
        completed = len(rows) - 1
        for _ in range(completed):
            _level, idx, _hash = self.levels.pop()
            del self.by_index[idx]
        idx, node = rows[-1]
        self.levels.append((completed, idx, node))
        self.by_index[idx] = node

    def root(self) -> bytes:
        if not self.levels:
            return merkle.EMPTY_ROOT
        node = self.levels[-1][2]
        for _level, _idx, left in reversed(self.levels[:-1]):
            node = merkle.hash_children(left, node)
        return node


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
    newest_signed = _walk(session, report, origin, verifiers, handlers, progress, found)
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


def _walk(
    session: Session,
    report: AuditReport,
    origin: str,
    verifiers: dict[str, note.Verifier],
    handlers: Mapping[str, list[Callable[[int, str, bytes], None]]],
    progress: Callable[[int], None] | None,
    found: Found,
) -> int:
    """Stream entries, tree hashes and checkpoints in step; the size of the newest checkpoint."""
    previous = aliased(LedgerEntry)
    entries = keyset(
        session,
        select(
            LedgerEntry.seq,
            LedgerEntry.kind,
            LedgerEntry.body,
            LedgerEntry.leaf_hash,
            LedgerEntry.prev_hash,
            LedgerEntry.chain_key,
            LedgerEntry.chain_prev_seq,
            previous.leaf_hash.label("chain_prev_leaf"),
            previous.chain_key.label("chain_prev_key"),
        ).outerjoin(previous, previous.seq == LedgerEntry.chain_prev_seq),
        LedgerEntry.seq,
    )
    hashes = keyset(session, select(LedgerHash.idx, LedgerHash.hash), LedgerHash.idx)
    checkpoints = keyset(
        session,
        select(LedgerCheckpoint.size, LedgerCheckpoint.root_hash, LedgerCheckpoint.note),
        LedgerCheckpoint.size,
    )
    next_checkpoint = next(checkpoints, None)
    frontier = _Frontier()
    expected_prev: bytes | None = None
    size = 0
    newest_signed = 0
    for row in entries:
        if not isinstance(row.seq, int) or row.seq != size:
            found(size, f"entry missing: the next stored entry has index {row.seq!r}")
            break
        if not _stored_as_written(row):
            row = _readable(row, found)
        _check_entry(row, expected_prev, found)
        for handler in handlers.get(row.kind, ()):
            handler(row.seq, row.kind, row.body)
        rows = merkle.stored_hashes_for_leaf(size, row.leaf_hash, frontier.read)
        for idx, recomputed in rows:
            stored = next(hashes, None)
            report.stored_hashes += stored is not None
            if stored is None or stored.idx != idx:
                found(size, f"stored tree hash {idx} is missing")
            elif stored.hash != recomputed:
                found(size, f"stored tree hash {idx} differs from the one the leaves give")
        size += 1
        frontier.push(size, rows)
        expected_prev = row.leaf_hash
        while next_checkpoint is not None and next_checkpoint.size <= size:
            if next_checkpoint.size == size:
                _check_checkpoint(next_checkpoint, frontier.root(), origin, verifiers, found)
                report.checkpoints += 1
                newest_signed = size
            next_checkpoint = next(checkpoints, None)
        if progress is not None:
            progress(size)
    report.entries = size
    report.root = frontier.root().hex()
    for leftover in hashes:
        found(size, f"stored tree hash {leftover.idx} belongs to no entry")
        break
    while next_checkpoint is not None:
        found(
            next_checkpoint.size - 1,
            f"a checkpoint was signed at size {next_checkpoint.size} but the log has only "
            f"{size} entries: entries were removed",
        )
        next_checkpoint = next(checkpoints, None)
    return newest_signed


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


def _stored_as_written(row: Any) -> bool:
    """Whether every column the walk reads holds the type the log wrote (the usual case)."""
    return (
        type(row.body) is bytes
        and type(row.leaf_hash) is bytes
        and len(row.leaf_hash) == merkle.HASH_SIZE
        and (row.prev_hash is None or type(row.prev_hash) is bytes)
        and (row.chain_prev_leaf is None or type(row.chain_prev_leaf) is bytes)
        and type(row.kind) is str
        and (row.chain_key is None or type(row.chain_key) is str)
    )


def _readable(row: Any, found: Found) -> Any:
    """A row whose columns were given another type or encoding (text for bytes, a number for
    text, …): named as a finding at its index, then read as the bytes its values stand for, so
    the walk goes on and the entry's own checks report whatever else differs."""
    values = dict(row._mapping)
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


def _check_entry(row: Any, expected_prev: bytes | None, found: Found) -> None:
    seq = row.seq
    if merkle.hash_leaf(row.body) != row.leaf_hash:
        found(seq, "the entry's bytes do not match its leaf hash (entry edited)")
    if row.prev_hash != expected_prev:
        found(seq, "the stored previous-entry hash does not match the previous entry")
    try:
        envelope = json.loads(row.body)
        is_canonical = canonical.dumps(envelope) == row.body
    except (ValueError, canonical.CanonicalizationError):
        found(seq, "the entry's bytes are not JSON")
        return
    if not is_canonical:
        found(seq, "the entry's bytes are not RFC 8785 canonical JSON")
    if not isinstance(envelope, dict):
        found(seq, "the entry is not a JSON object")
        return
    if envelope.get("prev") != (expected_prev.hex() if expected_prev else None):
        found(seq, "the hash chain is broken: 'prev' does not name the previous entry")
    if envelope.get("kind") != row.kind:
        found(seq, "the stored kind differs from the entry's")
    chain = envelope.get("chain")
    if row.chain_key is None and chain is None:
        return
    if not isinstance(chain, dict) or chain.get("key") != row.chain_key:
        found(seq, "the stored chain key differs from the entry's")
        return
    if row.chain_prev_seq is None:
        if chain.get("prev") is not None:
            found(seq, "the entry names a previous chain entry that is not stored")
        return
    if row.chain_prev_leaf is None:
        found(
            seq, f"the previous entry of chain '{row.chain_key}' ({row.chain_prev_seq!r}) is gone"
        )
        return
    if row.chain_prev_key != row.chain_key or chain.get("prev") != row.chain_prev_leaf.hex():
        found(seq, f"the chain '{row.chain_key}' is broken at this entry")


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
