"""The audit's checks of the log's entries, each on its own: its bytes against its leaf hash,
as canonical JSON, its link to the entry before it and to its chain.

``check_entry`` (after ``fixed_types``) is the reference, entry by entry. ``check_entries``
streams a range of entries and first tries a whole batch at once (``_clean_batch``: the same
conditions as columns of the batch, compared as lists, hashed and parsed by C loops): only a
batch that is not clean in every respect is gone through entry by entry, which names what is
wrong where, so the findings are the reference's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Sequence
from itertools import repeat
from operator import methodcaller
from types import NoneType, SimpleNamespace
from typing import Any, Final, Protocol

import orjson

from digital_village.ledger import canonical, merkle

# How a check reports what it found: the entry index it shows at, and what.
Report = Callable[[int, str], None]

MAX_PROBLEMS: Final = 100
# Entries read and checked per round trip.
WALK_BATCH: Final = 5000
# Entries checked at once by ``_clean_batch``: enough to make Python's share per entry small,
# few enough that their bytes, parsed values and hashes stay in the processor's cache (a whole
# read batch at once is slower than entry by entry).
CLEAN_BATCH: Final = 256
ENTRY_COLUMNS: Final = (
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
ENTRIES_SQL: Final = (
    "SELECT e.seq, e.kind, e.body, e.leaf_hash, e.prev_hash, e.chain_key, e.chain_prev_seq, "
    "p.leaf_hash, p.chain_key FROM ledger_entry e "
    "LEFT JOIN ledger_entry p ON p.seq = e.chain_prev_seq "
    "WHERE e.seq > ? ORDER BY e.seq LIMIT ?"
)


class Rows(Protocol):
    """Reads rows by SQL with ``?`` placeholders (``log.DriverCursor`` is one)."""

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...


def ignore(index: int, what: str) -> None:
    """A Report for what another part of the audit reports."""


def check_entries(
    driver: Rows, start: int, stop: int, kinds: Collection[str], found: Report
) -> tuple[list[bytes], list[tuple[int, str, bytes]], tuple[Any] | None]:
    """Each entry of ``[start, stop)`` checked on its own; the leaf hashes the tree is made of,
    the entries of ``kinds`` as (index, kind, bytes), and at a missing entry the next stored
    one's index."""
    leaves: list[bytes] = []
    wanted: list[tuple[int, str, bytes]] = []
    expected_prev: bytes | None = None
    if start > 0:
        # The entry before the first, read as the walk reads it, for the first one's link.
        before = driver.rows(ENTRIES_SQL, (start - 2, 1))
        if not before:
            return leaves, wanted, None
        if type(before[0][0]) is not int or before[0][0] != start - 1:
            return leaves, wanted, (before[0][0],)
        expected_prev = fixed_types(before[0], ignore)[3]
    size = start
    while size < stop:
        batch = driver.rows(ENTRIES_SQL, (size - 1, min(WALK_BATCH, stop - size)))
        if not batch:
            return leaves, wanted, None  # the entries end here, as the walk would find
        for offset in range(0, len(batch), CLEAN_BATCH):
            part = batch[offset : offset + CLEAN_BATCH]
            clean = _clean_batch(part, size, expected_prev)
            if clean is None:
                gap = _check_batch(part, size, expected_prev, kinds, found, leaves, wanted)
                if gap is not None:
                    return leaves, wanted, gap
            else:
                leaves += clean
                if kinds:
                    wanted += [(row[0], row[1], row[2]) for row in part if row[1] in kinds]
            expected_prev = leaves[-1]
            size += len(part)
    return leaves, wanted, None


def _check_batch(
    batch: list[Any],
    size: int,
    expected_prev: bytes | None,
    kinds: Collection[str],
    found: Report,
    leaves: list[bytes],
    wanted: list[tuple[int, str, bytes]],
) -> tuple[Any] | None:
    """A batch of entries from index ``size``, each checked on its own; their leaf hashes and
    entries of ``kinds`` onto ``leaves`` and ``wanted``; at a missing entry, the next one's
    index."""
    sha256 = hashlib.sha256
    for values in batch:
        seq = values[0]
        if type(seq) is not int or seq != size:
            return (seq,)
        values = fixed_types(values, found)
        kind, body, leaf = values[1], values[2], values[3]
        if sha256(b"\x00" + body).digest() != leaf:
            found(seq, "the entry's bytes do not match its leaf hash (entry edited)")
        check_entry(values, expected_prev, found)
        leaves.append(leaf)
        if kind in kinds:
            wanted.append((seq, kind, body))
        expected_prev = leaf
        size += 1
    return None


_DIGEST: Final = methodcaller("digest")
_LEAF_PREFIX: Final = b"\x00".__add__


def _clean_batch(batch: list[Any], size: int, expected_prev: bytes | None) -> list[bytes] | None:
    """The batch's leaf hashes when none of its entries, from index ``size``, would give a
    finding in ``_check_batch`` (each condition here is one of its checks, made for the whole
    column at once); None when any might."""
    seqs, kinds, bodies, leaves, prevs, keys, prev_seqs, prev_leaves, prev_keys = map(
        list, zip(*batch, strict=True)
    )
    if (
        seqs != list(range(size, size + len(batch)))
        or set(map(type, seqs)) != {int}
        or set(map(type, kinds)) != {str}
        or set(map(type, bodies)) != {bytes}
        or set(map(type, leaves)) != {bytes}
        or set(map(len, leaves)) != {merkle.HASH_SIZE}
        or not set(map(type, prevs)) <= {bytes, NoneType}
        or not set(map(type, keys)) <= {str, NoneType}
        or not set(map(type, prev_leaves)) <= {bytes, NoneType}
        or list(map(_DIGEST, map(hashlib.sha256, map(_LEAF_PREFIX, bodies)))) != leaves
        or prevs != [expected_prev, *leaves[:-1]]
    ):
        return None
    try:
        envelopes = list(map(orjson.loads, bodies))
    except orjson.JSONDecodeError:
        return None
    if (
        not canonical.all_canonical(bodies, envelopes)
        or set(map(type, envelopes)) != {dict}
        or list(map(dict.get, envelopes, repeat("prev")))
        != [expected_prev.hex() if expected_prev else None, *map(bytes.hex, leaves[:-1])]
        or list(map(dict.get, envelopes, repeat("kind"))) != kinds
    ):
        return None
    chains = map(dict.get, envelopes, repeat("chain"))
    if not all(map(_chain_holds, chains, keys, prev_seqs, prev_leaves, prev_keys)):
        return None
    return leaves


def _chain_holds(
    chain: Any, key: str | None, prev_seq: Any, prev_leaf: bytes | None, prev_key: Any
) -> bool:
    """Whether ``check_entry`` finds the entry's chain link as it should be."""
    if key is None and chain is None:
        return True
    if not isinstance(chain, dict) or chain.get("key") != key:
        return False
    if prev_seq is None:
        return chain.get("prev") is None
    if prev_leaf is None:
        return False
    return prev_key == key and chain.get("prev") == prev_leaf.hex()


def fixed_types(values: Sequence[Any], found: Report) -> Sequence[Any]:
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
    row = _readable(SimpleNamespace(**dict(zip(ENTRY_COLUMNS, values, strict=True))), found)
    return tuple(getattr(row, column) for column in ENTRY_COLUMNS)


_HASH_COLUMNS = ("leaf_hash", "prev_hash", "chain_prev_leaf")


def _readable(row: Any, found: Report) -> Any:
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
        values["body"] = bytes_of(body)
    for column in _HASH_COLUMNS:
        value = values[column]
        if value is not None and type(value) is not bytes:
            changed(column, value)
            values[column] = bytes_of(value)
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


def bytes_of(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return str(value).encode("utf-8", "surrogatepass")


def check_entry(values: Sequence[Any], expected_prev: bytes | None, found: Report) -> None:
    """An entry's own checks but its leaf hash: previous-entry link, canonical JSON, kind, chain
    link. ``values`` in ENTRY_COLUMNS order, as stored (or as fixed_types made them)."""
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
