"""The log read as C2SP tlog-tiles: the served checkpoint, hash tiles and entry bundles.

A tile is served only when the latest signed checkpoint covers every hash or entry in it, so a
client (or a mirror) never sees a tile it could not check against a checkpoint. Full tiles never
change: :class:`TileCache` keeps their bytes in memory, and a hit is served without the
database (``tile_router.TileFastPath``).
"""

from __future__ import annotations

import gzip
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from digital_village.errors import DomainError, NotFound
from digital_village.ledger import log, merkle, reads, tiles, witnesses
from digital_village.ledger.log import LedgerIntegrityError
from digital_village.ledger.models import LedgerEntry

DEFAULT_CACHE_BYTES: Final = 64 * 1024 * 1024
# Entry bundles are JSON: gzip level 1 shrinks them several times in well under a millisecond.
GZIP_LEVEL: Final = 1


class EntryTooLong(DomainError):
    """An entry is longer than an entry bundle's uint16 length can say."""

    status = 501
    title = "Entry too long for an entry bundle"


def served_checkpoint(session: Session) -> bytes:
    """The signed note served at ``/ledger/checkpoint``: the latest checkpoint with its
    signature lines, the log's and its witnesses' cosignatures (the one place that decides
    what the log shows as its current tree)."""
    latest = log.latest_checkpoint(session)
    if latest is None:
        raise NotFound("the log is empty: no checkpoint has been signed yet")
    return bytes(witnesses.served_note(session, latest))


def _covered(session: Session, tile: tiles.Tile) -> None:
    """Refuse a tile that reaches beyond the latest checkpoint."""
    latest = log.latest_checkpoint(session)
    size = latest.size if latest is not None else 0
    have = size if tile.level is None else tiles.hashes_at_level(size, tile.level)
    if tile.first + tile.width > have:
        raise NotFound(f"{tile.path} is beyond the log's latest checkpoint (size {size})")


def read_tile(session: Session, tile: tiles.Tile) -> bytes:
    """A hash tile's bytes, from the log's stored tree hashes."""
    if tile.level is None:
        raise ValueError("an entry bundle is not a hash tile")
    _covered(session, tile)
    level = tiles.TILE_HEIGHT * tile.level
    indexes = [merkle.stored_hash_index(level, tile.first + i) for i in range(tile.width)]
    return b"".join(log.read_hashes_from(session)(indexes))


def read_bundle(session: Session, tile: tiles.Tile) -> bytes:
    """An entry bundle's bytes: the stored entries, each behind its uint16 length."""
    if tile.level is not None:
        raise ValueError("a hash tile is not an entry bundle")
    _covered(session, tile)
    query = (
        select(LedgerEntry.seq, LedgerEntry.body)
        .where(LedgerEntry.seq >= tile.first, LedgerEntry.seq < tile.first + tile.width)
        .order_by(LedgerEntry.seq)
    )
    entries: list[bytes] = []
    for seq, body in session.execute(query):
        if seq != tile.first + len(entries):
            raise LedgerIntegrityError(f"ledger entry {tile.first + len(entries)} is missing")
        entries.append(reads.as_bytes(body))
    if len(entries) != tile.width:
        raise LedgerIntegrityError(f"ledger entry {tile.first + len(entries)} is missing")
    for offset, entry in enumerate(entries):
        if len(entry) > tiles.MAX_ENTRY_BYTES:
            raise EntryTooLong(
                f"entry {tile.first + offset} has {len(entry)} bytes: a tlog-tiles entry bundle "
                f"holds entries of at most {tiles.MAX_ENTRY_BYTES}; read it at "
                f"/api/v1/ledger/entries/{tile.first + offset}"
            )
    return tiles.encode_bundle(entries)


@dataclass(frozen=True)
class Cached:
    """A full tile's answer: its bytes, and gzipped when that is worth sending."""

    body: bytes
    gzipped: bytes | None

    @property
    def cost(self) -> int:
        return len(self.body) + len(self.gzipped or b"")


def cached(body: bytes, *, compress: bool) -> Cached:
    """What the cache keeps for a full tile (entry bundles are sent gzipped to who asks)."""
    if not compress:
        return Cached(body, None)
    smaller = gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0)
    return Cached(body, smaller if len(smaller) < len(body) else None)


class TileCache:
    """Full tiles and entry bundles by path, least recently used out past ``max_bytes``.

    Thread-safe: the routes fill it from the thread pool, the fast path reads it on the loop.
    """

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, Cached] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, path: str) -> Cached | None:
        found = self._items.get(path)
        if found is not None:
            with self._lock:
                if path in self._items:
                    self._items.move_to_end(path)
        return found

    def put(self, path: str, item: Cached) -> None:
        if item.cost > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(path, None)
            if old is not None:
                self._bytes -= old.cost
            self._items[path] = item
            self._bytes += item.cost
            while self._bytes > self.max_bytes:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= dropped.cost

    def __len__(self) -> int:
        return len(self._items)
