"""Bulk reads of entries for pages, proofs and checks: many at once, within every backend's
parameter limits. An entry's bytes are returned as stored (never re-serialised)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from digital_village.ledger.models import LedgerEntry

CHUNK: Final = 900


def _chunks(values: Iterable[Any]) -> Iterable[list[Any]]:
    ordered = sorted(set(values))
    for start in range(0, len(ordered), CHUNK):
        yield ordered[start : start + CHUNK]


def as_bytes(value: Any) -> bytes:
    """A stored entry's bytes as the database hands them back. SQLite lets an insider turn the
    column's value into text (or a number): its UTF-8 then stands for the entry, so a page or a
    proof goes on and the entry's own check decides (the audit names the changed type)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return str(value).encode("utf-8", "surrogatepass")


def entries_by_seq(session: Session, seqs: Iterable[int]) -> dict[int, tuple[str, bytes]]:
    """(kind, bytes) of the stored entries among ``seqs``."""
    found: dict[int, tuple[str, bytes]] = {}
    for chunk in _chunks(seqs):
        query = select(LedgerEntry.seq, LedgerEntry.kind, LedgerEntry.body).where(
            LedgerEntry.seq.in_(chunk)
        )
        found.update(
            (int(seq), (kind, as_bytes(body))) for seq, kind, body in session.execute(query)
        )
    return found


def chain_entries(
    session: Session, chain_keys: Iterable[str]
) -> dict[str, list[tuple[int, str, bytes]]]:
    """Each chain's entries (index, kind, bytes) in index order; chains without any left out."""
    found: dict[str, list[tuple[int, str, bytes]]] = {}
    for chunk in _chunks(chain_keys):
        query = (
            select(LedgerEntry.chain_key, LedgerEntry.seq, LedgerEntry.kind, LedgerEntry.body)
            .where(LedgerEntry.chain_key.in_(chunk))
            .order_by(LedgerEntry.seq)
        )
        for key, seq, kind, body in session.execute(query):
            found.setdefault(str(key), []).append((int(seq), kind, as_bytes(body)))
    return found


def data_of(body: bytes) -> dict[str, Any]:
    """The ``data`` object of an entry's bytes; empty when the bytes hold none (an edited
    entry: its proof fails in any case, and the audit names it)."""
    try:
        data = orjson.loads(body).get("data")
    except (orjson.JSONDecodeError, AttributeError):
        return {}
    return data if isinstance(data, dict) else {}
