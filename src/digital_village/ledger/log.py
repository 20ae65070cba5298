"""The log: append entries in the caller's transaction, sign checkpoints, build proofs.

A ledger either signs a checkpoint in every appending transaction (``sign_on_append``, the
default: tests and one-off scripts see a checkpoint the moment their transaction commits) or
leaves signing to the publisher (``ledger/publisher.py``), which signs one checkpoint for
everything appended in the last moment: a serving process appends with
``sign_on_append=False`` so that one-entry requests do no signing of their own.

One writer at a time: on PostgreSQL a transaction-scoped advisory lock, on SQLite the write lock
that write sessions take with ``BEGIN IMMEDIATE``. The primary key on the sequence number makes
a fork impossible even if that discipline were broken: the second writer's insert fails.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from digital_village.db import current_cost, naive_utc, note_lock_taken, utcnow
from digital_village.errors import DomainError, Invalid, NotFound, NotReady
from digital_village.ledger import canonical, keys, merkle, note, reads, witnesses
from digital_village.ledger.models import LedgerCheckpoint, LedgerEntry, LedgerKey
from digital_village.ledger.proof import ConsistencyProof, TlogProof

_HASHES_SQL = "SELECT idx, hash FROM ledger_hash WHERE idx IN ({})"
_ENTRY_BODY_SQL = "SELECT body FROM ledger_entry WHERE seq = ?"
_NEWEST_CHECKPOINT_SQL = "SELECT size, note FROM ledger_checkpoint ORDER BY size DESC LIMIT 1"
_CHECKPOINT_SQL = "SELECT size, note FROM ledger_checkpoint WHERE size = ?"
_LOCK_SQL = "SELECT pg_advisory_xact_lock(?)"
_INSERT_ENTRY_SQL = (
    "INSERT INTO ledger_entry (seq, kind, body, leaf_hash, prev_hash, chain_key, "
    "chain_prev_seq, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_HASH_SQL = "INSERT INTO ledger_hash (idx, hash) VALUES (?, ?)"
_LAST_ENTRY_SQL = "SELECT seq, leaf_hash FROM ledger_entry ORDER BY seq DESC LIMIT 1"
_CHAIN_HEAD_SQL = (
    "SELECT seq, leaf_hash FROM ledger_entry WHERE chain_key = ? ORDER BY seq DESC LIMIT 1"
)
_CHAIN_HEADS_SQL = (
    "SELECT e.chain_key, e.seq, e.leaf_hash FROM ledger_entry e JOIN ("
    "SELECT max(seq) AS seq FROM ledger_entry WHERE chain_key IN ({}) GROUP BY chain_key"
    ") h ON e.seq = h.seq"
)
# pg_advisory_xact_lock key shared by every process appending to this database ("dvlog").
ADVISORY_LOCK_KEY = 0x64766C6F67
ENVELOPE_VERSION = 1


class LedgerIntegrityError(DomainError):
    """The stored log no longer matches what was signed; the log refuses to go on."""

    status = 503
    title = "Ledger integrity failure"


@dataclass(frozen=True)
class EntryIn:
    """What a domain service asks to record."""

    kind: str
    data: Mapping[str, Any]
    chain_key: str | None = None


@dataclass(frozen=True)
class AppendedEntry:
    """An entry as appended: its index in the tree and the exact bytes that were hashed."""

    seq: int
    kind: str
    leaf_hash: bytes
    body: bytes
    chain_key: str | None


def _placeholders(count: int) -> str:
    return ",".join("?" * count)


def read_hashes_from(session: Session) -> merkle.ReadHashes:
    """A reader of stored tree hashes from the database, for the merkle module (through the
    driver: a proof reads a few dozen hashes, and building the query cost more than running
    it)."""
    return DriverCursor(session).read_hashes


def _as_hash(value: Any) -> bytes:
    # bytes from either driver; anything else only when an insider changed the column's type.
    return value if type(value) is bytes else reads.as_bytes(value)


class DriverCursor:
    """The DB-API cursor of a session's connection, in its transaction, for the append path.

    A one-entry append is half a dozen indexed statements, and the audit reads the log in
    batches of thousands of rows; through SQLAlchemy's execution machinery each statement cost
    several times what SQLite takes to run it, each row several times what reading it costs.
    Errors come out as SQLAlchemy raises them (``DBAPIError``), so a full disk or a lost server
    is still told from a bug, and the request's statement count still includes these.
    """

    def __init__(self, session: Session) -> None:
        connection = session.connection()
        self.dialect = connection.dialect
        self.qmark = self.dialect.paramstyle == "qmark"
        dbapi = connection.connection.dbapi_connection
        assert dbapi is not None
        self.cursor = dbapi.cursor()
        self.cost = current_cost()

    def _run(self, sql: str, params: Any, many: bool) -> None:
        if not self.qmark:
            sql = sql.replace("?", "%s")
        if self.cost is not None:
            self.cost.statements += 1
        try:
            if many:
                self.cursor.executemany(sql, params)
            else:
                self.cursor.execute(sql, params)
        except self.dialect.loaded_dbapi.Error as error:
            raise DBAPIError.instance(
                sql, params, error, self.dialect.loaded_dbapi.Error, dialect=self.dialect
            ) from error

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        self._run(sql, tuple(params), many=False)
        return list(self.cursor.fetchall())

    def insert(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        if rows:
            self._run(sql, rows, many=True)

    def stored_time(self, moment: dt.datetime) -> Any:
        """A UTCDateTime column's bound value: naive UTC (text, as SQLAlchemy writes it, on
        SQLite)."""
        naive = naive_utc(moment)
        return naive.isoformat(" ", "microseconds") if self.qmark else naive

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        if not indexes:
            return []
        wanted = sorted(set(indexes))
        found = dict(self.rows(_HASHES_SQL.format(_placeholders(len(wanted))), wanted))
        missing = [i for i in indexes if i not in found]
        if missing:
            raise LedgerIntegrityError(f"stored tree hashes missing at storage index {missing[0]}")
        return [_as_hash(found[i]) for i in indexes]


class Ledger:
    """Appends to one log and signs its checkpoints with one key."""

    def __init__(self, *, origin: str, signer: note.Signer, sign_on_append: bool = True) -> None:
        self.origin = origin
        self.signer = signer
        self.vkey = signer.verifier().to_string()
        self.key_id = signer.key_id.hex()
        # False: appends leave the checkpoint to a publisher (ledger/publisher.py).
        self.sign_on_append = sign_on_append

    @classmethod
    def from_key_file(cls, path: Path, origin: str, *, sign_on_append: bool = True) -> Ledger:
        """The ledger signing with the key stored at ``path``."""
        if not path.is_file():
            raise NotReady(f"ledger signing key missing at {path}; run `dv init`")
        return cls(origin=origin, signer=keys.load_signer(path), sign_on_append=sign_on_append)

    def append(
        self,
        session: Session,
        *,
        kind: str,
        data: Mapping[str, Any],
        chain_key: str | None = None,
    ) -> AppendedEntry:
        """Append one entry in the session's transaction (and sign the new checkpoint when the
        ledger signs on append)."""
        return self.append_many(session, [EntryIn(kind, data, chain_key)])[0]

    def append_many(self, session: Session, items: Sequence[EntryIn]) -> list[AppendedEntry]:
        """Append entries in order, in the session's transaction, then sign one checkpoint when
        the ledger signs on append (otherwise the publisher signs one soon after the commit)."""
        if not items:
            return []
        driver = DriverCursor(session)
        if driver.dialect.name == "postgresql":
            driver.rows(_LOCK_SQL, (ADVISORY_LOCK_KEY,))
            note_lock_taken(session.connection())
        # SQLite: write sessions began with BEGIN IMMEDIATE and hold the only write lock.
        last = driver.rows(_LAST_ENTRY_SQL)
        size = int(last[0][0]) + 1 if last else 0
        prev_hash: bytes | None = _as_hash(last[0][1]) if last else None
        stored = driver.read_hashes
        pending: dict[int, bytes] = {}

        def read(indexes: Sequence[int]) -> list[bytes]:
            # Hashes written earlier in this batch are not in the database yet.
            from_db = stored([i for i in indexes if i not in pending])
            fetched = iter(from_db)
            return [pending[i] if i in pending else next(fetched) for i in indexes]

        chain_heads = self._chain_heads(
            driver, {item.chain_key for item in items if item.chain_key is not None}
        )
        now = utcnow()
        time_text = _rfc3339(now)
        stored_now = driver.stored_time(now)
        rows: list[tuple[Any, ...]] = []
        appended: list[AppendedEntry] = []
        for item in items:
            envelope: dict[str, Any] = {
                "v": ENVELOPE_VERSION,
                "kind": item.kind,
                "time": time_text,
                "prev": prev_hash.hex() if prev_hash else None,
                "data": dict(item.data),
            }
            chain_prev: tuple[int, bytes] | None = None
            if item.chain_key is not None:
                chain_prev = chain_heads.get(item.chain_key)
                envelope["chain"] = {
                    "key": item.chain_key,
                    "prev": chain_prev[1].hex() if chain_prev else None,
                }
            try:
                body = canonical.dumps(envelope)
            except (canonical.CanonicalizationError, TypeError, ValueError) as error:
                raise Invalid(f"entry {item.kind!r} is not canonical JSON: {error}") from error
            leaf_hash = merkle.hash_leaf(body)
            pending.update(merkle.stored_hashes_for_leaf(size, leaf_hash, read))
            rows.append(
                (
                    size,
                    item.kind,
                    body,
                    leaf_hash,
                    prev_hash,
                    item.chain_key,
                    chain_prev[0] if chain_prev else None,
                    stored_now,
                )
            )
            appended.append(AppendedEntry(size, item.kind, leaf_hash, body, item.chain_key))
            if item.chain_key is not None:
                chain_heads[item.chain_key] = (size, leaf_hash)
            prev_hash = leaf_hash
            size += 1
        driver.insert(_INSERT_ENTRY_SQL, rows)
        driver.insert(_INSERT_HASH_SQL, sorted(pending.items()))
        if self.sign_on_append:
            self.sign_checkpoint(session, size, read)
        return appended

    def lock(self, session: Session) -> None:
        """Hold the log's single-writer lock until the session's transaction ends.

        ``append`` takes it; a caller whose checks must see everything appended before its
        own entries (a capture checking that a lot or an event is new) takes it before it reads.
        """
        connection = session.connection()
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(_LOCK_SQL.replace("?", "%s"), (ADVISORY_LOCK_KEY,))
            note_lock_taken(connection)
        # SQLite: write sessions began with BEGIN IMMEDIATE and hold the only write lock.

    @staticmethod
    def _chain_heads(driver: DriverCursor, chain_keys: set[str]) -> dict[str, tuple[int, bytes]]:
        """The last entry (index, leaf hash) of each chain: one index seek per chain for a few,
        one query per 500 chains for a whole batch."""
        heads: dict[str, tuple[int, bytes]] = {}
        keys = sorted(chain_keys)
        if len(keys) <= 4:
            for key in keys:
                for seq, leaf_hash in driver.rows(_CHAIN_HEAD_SQL, (key,)):
                    heads[key] = (int(seq), _as_hash(leaf_hash))
            return heads
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            sql = _CHAIN_HEADS_SQL.format(_placeholders(len(chunk)))
            for chain_key, seq, leaf_hash in driver.rows(sql, chunk):
                heads[chain_key] = (int(seq), _as_hash(leaf_hash))
        return heads

    def sign_checkpoint(
        self, session: Session, size: int, read: merkle.ReadHashes | None = None
    ) -> LedgerCheckpoint:
        """Sign and store the checkpoint of the first ``size`` entries, in the session's
        transaction (the caller holds the log's lock and no checkpoint of ``size`` exists yet),
        after checking that the tree extends the newest signed one."""
        read = read or read_hashes_from(session)
        root = merkle.tree_hash(size, read)
        previous = latest_checkpoint(session)
        if previous is not None:
            # Never sign a tree that does not extend the last signed one.
            try:
                if previous.size > size:
                    raise merkle.ProofError(f"tree shrank from {previous.size} to {size}")
                proof = merkle.consistency_proof(previous.size, size, read)
                merkle.verify_consistency(previous.size, size, proof, previous.root_hash, root)
            except merkle.ProofError as error:
                raise LedgerIntegrityError(
                    f"refusing to sign size {size}: inconsistent with the checkpoint at size "
                    f"{previous.size} ({error}); run `dv ledger verify`"
                ) from error
        if session.get(LedgerKey, self.key_id) is None:
            session.add(LedgerKey(key_id=self.key_id, vkey=self.vkey, first_size=size))
        signed = note.sign_note(note.Checkpoint(self.origin, size, root).to_text(), self.signer)
        checkpoint = LedgerCheckpoint(size=size, root_hash=root, note=signed, key_id=self.key_id)
        session.add(checkpoint)
        session.flush()
        return checkpoint


def _rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def latest_checkpoint(session: Session) -> LedgerCheckpoint | None:
    """The newest signed checkpoint, or None for an empty log."""
    return session.scalars(
        select(LedgerCheckpoint).order_by(LedgerCheckpoint.size.desc()).limit(1)
    ).first()


def checkpoint_at(session: Session, size: int) -> LedgerCheckpoint:
    """The checkpoint signed at exactly this tree size."""
    checkpoint = session.get(LedgerCheckpoint, size)
    if checkpoint is None:
        raise NotFound(f"no checkpoint was signed at tree size {size}")
    return checkpoint


def get_entry(session: Session, seq: int) -> LedgerEntry:
    """The entry at this index."""
    entry = session.get(LedgerEntry, seq)
    if entry is None:
        raise NotFound(f"no ledger entry at index {seq}")
    return entry


def inclusion_proof_file(session: Session, seq: int, size: int | None = None) -> bytes:
    """A C2SP tlog-proof for entry ``seq``, against the newest checkpoint or the one at ``size``."""
    # Two indexed reads through the driver: a proof is built in well under a millisecond.
    driver = DriverCursor(session)
    found = driver.rows(_ENTRY_BODY_SQL, (seq,))
    if not found:
        raise NotFound(f"no ledger entry at index {seq}")
    body = reads.as_bytes(found[0][0])
    if size is None:
        newest = driver.rows(_NEWEST_CHECKPOINT_SQL)
    else:
        newest = driver.rows(_CHECKPOINT_SQL, (size,))
        if not newest:
            raise NotFound(f"no checkpoint was signed at tree size {size}")
    checkpoint = (
        LedgerCheckpoint(size=int(newest[0][0]), note=reads.as_bytes(newest[0][1]))
        if newest
        else None
    )
    if checkpoint is None or checkpoint.size <= seq:
        # Appended, but the publisher has not signed a checkpoint over it yet (it does within
        # a second): pending, never proven against an unsigned tree.
        raise NotFound(
            f"entry {seq} is not covered by a signed checkpoint yet"
            + ("" if size is not None else ": it is pending, ask again in a second")
        )
    path = merkle.inclusion_proof(seq, checkpoint.size, read_hashes_from(session))
    return TlogProof(
        index=seq,
        inclusion_proof=tuple(path),
        checkpoint=witnesses.served_note(session, checkpoint),
        extra=body,
    ).to_text()


def consistency_proof_file(session: Session, first: int, second: int) -> bytes:
    """A consistency proof between two tree sizes of this log."""
    latest = latest_checkpoint(session)
    size = latest.size if latest else 0
    if not 0 <= first <= second <= size:
        raise Invalid(f"need 0 <= first <= second <= {size} (the log size); got {first}, {second}")
    hashes = merkle.consistency_proof(first, second, read_hashes_from(session)) if first else []
    return ConsistencyProof(first=first, second=second, hashes=tuple(hashes)).to_text()


def verifier_keys(session: Session) -> list[str]:
    """Every verifier key that has signed checkpoints of this log, oldest first."""
    return list(session.scalars(select(LedgerKey.vkey).order_by(LedgerKey.first_size)))


def entry_count(session: Session) -> int:
    """How many entries the log holds (the next entry's index)."""
    last = session.scalar(select(func.max(LedgerEntry.seq)))
    return 0 if last is None else int(last) + 1


# The same read on a bare DB-API connection, for readers that keep one outside any session.
ENTRY_COUNT_SQL = "SELECT max(seq) FROM ledger_entry"


def entries_since(session: Session, start: int, limit: int) -> list[tuple[str, str | None, bytes]]:
    """(kind, chain key, bytes) of the entries from index ``start`` on, in order, at most
    ``limit`` of them."""
    query = (
        select(LedgerEntry.kind, LedgerEntry.chain_key, LedgerEntry.body)
        .where(LedgerEntry.seq >= start)
        .order_by(LedgerEntry.seq)
        .limit(limit)
    )
    return [(str(kind), chain_key, bytes(body)) for kind, chain_key, body in session.execute(query)]


def chains_between(session: Session, *, start: int, stop: int) -> list[tuple[int, str]]:
    """(index, chain key) of the entries in [start, stop) that extend a chain."""
    query = (
        select(LedgerEntry.seq, LedgerEntry.chain_key)
        .where(LedgerEntry.seq >= start, LedgerEntry.seq < stop, LedgerEntry.chain_key.is_not(None))
        .order_by(LedgerEntry.seq)
    )
    return [(int(seq), str(chain_key)) for seq, chain_key in session.execute(query)]
