"""C2SP tlog-tiles: tile paths, entry bundles and the tree's hashes read back from tiles.

A tile at level L, index N holds up to 256 consecutive hashes of tree level 8·L, starting at
hash N·256: at level 0 the leaf hashes, above that each hash is the Merkle tree hash of one
full tile of the level below. A *partial* tile (``.p/W``) holds the first W < 256 hashes of a
tile that is not full yet. An entry bundle holds the entries of one level-0 tile, each as a
big-endian uint16 length and the entry's bytes.

Our stored hashes use the same numbering as the tiles' hashes (``merkle.stored_hash_index``),
so the server reads a tile as 256 rows; a client turns tiles back into a ``read_hashes``
callback (:class:`TileHashes`) and computes any root or proof with the merkle module.

Only the standard library and the merkle module: a mirror or an auditor's script imports it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from digital_village.ledger import merkle

TILE_HEIGHT: Final = 8
TILE_WIDTH: Final = 1 << TILE_HEIGHT  # hashes (or entries) in a full tile
MAX_LEVEL: Final = 63
ENTRIES: Final = "entries"
MAX_ENTRY_BYTES: Final = 0xFFFF  # what a bundle's uint16 length can say
_PATH: Final = re.compile(
    r"tile/(0|[1-9][0-9]?|entries)/((?:x[0-9]{3}/)*[0-9]{3})(?:\.p/([0-9]+))?"
)


class TileError(ValueError):
    """A tile path, tile or entry bundle is malformed; the message says how."""


@dataclass(frozen=True, order=True)
class Tile:
    """One tile (``level`` ``None`` for an entry bundle) of ``width`` hashes or entries."""

    level: int | None
    index: int
    width: int = TILE_WIDTH

    def __post_init__(self) -> None:
        if self.level is not None and not 0 <= self.level <= MAX_LEVEL:
            raise TileError(f"tile level {self.level} is not between 0 and {MAX_LEVEL}")
        if self.index < 0:
            raise TileError(f"tile index {self.index} is negative")
        if not 1 <= self.width <= TILE_WIDTH:
            raise TileError(f"tile width {self.width} is not between 1 and {TILE_WIDTH}")

    @property
    def full(self) -> bool:
        return self.width == TILE_WIDTH

    @property
    def path(self) -> str:
        """The tile's path under the log's prefix, e.g. ``tile/0/x001/234.p/5``."""
        level = ENTRIES if self.level is None else str(self.level)
        suffix = "" if self.full else f".p/{self.width}"
        return f"tile/{level}/{encode_index(self.index)}{suffix}"

    @property
    def first(self) -> int:
        """The index (at its level) of the tile's first hash or entry."""
        return self.index * TILE_WIDTH


def encode_index(index: int) -> str:
    """``N`` in zero-padded three-digit path elements, all but the last with an ``x``."""
    digits = str(index)
    digits = "0" * (-len(digits) % 3) + digits
    groups = [digits[i : i + 3] for i in range(0, len(digits), 3)]
    return "/".join([f"x{group}" for group in groups[:-1]] + [groups[-1]])


def parse_path(path: str) -> Tile:
    """The tile a path names (``tile/<L>/<N>[.p/<W>]`` or ``tile/entries/<N>[.p/<W>]``)."""
    match = _PATH.fullmatch(path)
    if match is None:
        raise TileError(f"not a tile path: {path!r}")
    level_text, index_text, width_text = match.groups()
    groups = index_text.split("/")
    # Exactly one spelling per index: no leading all-zero group ("x000/001" is "001").
    if len(groups) > 1 and groups[0] == "x000":
        raise TileError(f"tile index in {path!r} has a leading zero group")
    index = int("".join(group.removeprefix("x") for group in groups))
    width = TILE_WIDTH
    if width_text is not None:
        if width_text.startswith("0") or not 1 <= int(width_text) < TILE_WIDTH:
            raise TileError(f"partial tile width in {path!r} is not between 1 and 255")
        width = int(width_text)
    level = None if level_text == ENTRIES else int(level_text)
    return Tile(level, index, width)


def hashes_at_level(size: int, level: int) -> int:
    """How many hashes tile level ``level`` has for a tree of ``size`` leaves."""
    return size >> (TILE_HEIGHT * level)


def tiles_for_size(size: int, *, level: int | None, start: int = 0) -> Iterator[Tile]:
    """The tiles of one level (``None``: the entry bundles) that a tree of ``size`` has, full
    ones from tile index ``start`` on, then its partial tile if any."""
    count = size if level is None else hashes_at_level(size, level)
    full, rest = divmod(count, TILE_WIDTH)
    for index in range(start, full):
        yield Tile(level, index)
    if rest:
        yield Tile(level, full, rest)


def levels_for_size(size: int) -> range:
    """The tile levels a tree of ``size`` leaves has (none for the empty tree)."""
    top = 0
    while hashes_at_level(size, top + 1):
        top += 1
    return range(top + 1) if size else range(0)


def encode_bundle(entries: Sequence[bytes]) -> bytes:
    """An entry bundle: each entry as a big-endian uint16 length and its bytes."""
    parts: list[bytes] = []
    for entry in entries:
        if len(entry) > MAX_ENTRY_BYTES:
            raise TileError(
                f"an entry of {len(entry)} bytes is longer than an entry bundle can hold "
                f"({MAX_ENTRY_BYTES})"
            )
        parts.append(len(entry).to_bytes(2, "big"))
        parts.append(entry)
    return b"".join(parts)


def decode_bundle(bundle: bytes) -> list[bytes]:
    """The entries of an entry bundle, in order."""
    entries: list[bytes] = []
    offset = 0
    while offset < len(bundle):
        if offset + 2 > len(bundle):
            raise TileError(f"entry bundle ends inside the length of entry {len(entries)}")
        length = int.from_bytes(bundle[offset : offset + 2], "big")
        offset += 2
        if offset + length > len(bundle):
            raise TileError(f"entry bundle ends inside entry {len(entries)}")
        entries.append(bundle[offset : offset + length])
        offset += length
    return entries


def split_hashes(data: bytes, tile: Tile) -> list[bytes]:
    """A tile's hashes; its length must be exactly ``width`` hashes."""
    if len(data) != tile.width * merkle.HASH_SIZE:
        raise TileError(
            f"{tile.path} has {len(data)} bytes, expected {tile.width * merkle.HASH_SIZE}"
        )
    return [data[i : i + merkle.HASH_SIZE] for i in range(0, len(data), merkle.HASH_SIZE)]


def split_stored_index(storage_index: int) -> tuple[int, int]:
    """The (level, index) of the subtree hash at a storage index (``stored_hash_index``'s
    inverse)."""
    if storage_index < 0:
        raise ValueError(f"storage index {storage_index} is negative")
    # Leaf n's own hash is stored at 2n - popcount(n) <= storage_index; find the last such n.
    leaf = storage_index // 2
    while merkle.stored_hash_index(0, leaf) > storage_index:
        leaf -= 1
    while merkle.stored_hash_index(0, leaf + 1) <= storage_index:
        leaf += 1
    level = storage_index - merkle.stored_hash_index(0, leaf)
    return level, leaf >> level


ReadTile = Callable[[Tile], bytes]
"""Returns a tile's bytes (hash tiles only)."""


class TileHashes:
    """A ``merkle.ReadHashes`` over the tiles of a tree of ``size`` leaves.

    A subtree hash of tree level 8·L + r is the Merkle tree hash of 2**r consecutive hashes of
    one tile at level L: the full tile when the tree has it, else the tree's partial tile. The
    hashes are only as good as the tiles: a caller checks what it computes from them against a
    signed root (``merkle.tree_hash``, ``verify_consistency``).
    """

    def __init__(self, size: int, read_tile: ReadTile) -> None:
        self.size = size
        self._read_tile = read_tile
        self._tiles: dict[tuple[int, int], list[bytes]] = {}

    def tile_of(self, level: int, index: int) -> Tile:
        """The tile of this tree at tile ``level``, ``index`` (full or the partial one)."""
        available = hashes_at_level(self.size, level) - index * TILE_WIDTH
        if available <= 0:
            raise merkle.ProofError(f"a tree of size {self.size} has no tile {level}/{index}")
        return Tile(level, index, min(available, TILE_WIDTH))

    def _hashes(self, level: int, index: int) -> list[bytes]:
        key = (level, index)
        if key not in self._tiles:
            tile = self.tile_of(level, index)
            self._tiles[key] = split_hashes(self._read_tile(tile), tile)
        return self._tiles[key]

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        found: list[bytes] = []
        for storage_index in indexes:
            level, index = split_stored_index(storage_index)
            tile_level, rest = divmod(level, TILE_HEIGHT)
            first = index << rest  # the first hash of tile level tile_level it spans
            tile_index, offset = divmod(first, TILE_WIDTH)
            hashes = self._hashes(tile_level, tile_index)
            span = hashes[offset : offset + (1 << rest)]
            if len(span) != 1 << rest:
                raise merkle.ProofError(
                    f"tile {tile_level}/{tile_index} of a tree of size {self.size} is too "
                    f"narrow for the subtree at level {level}, index {index}"
                )
            found.append(span[0] if rest == 0 else merkle.root_of(span))
        return found
