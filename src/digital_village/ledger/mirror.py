"""A mirror of a log's tiles: behind ``dv ledger mirror URL --out DIR``.

Each run copies what the log added since the last run — the new full tiles and entry bundles
and the partial ones of its current checkpoint — into a folder laid out as tlog-tiles
(``checkpoint``, ``tile/<L>/<N>[.p/<W>]``, ``tile/entries/<N>[.p/<W>]``), which any static
HTTP server can serve as a copy of the log. The log is trusted for nothing:

1. its checkpoint must be signed by a verifier key the operator gave;
2. every copied entry must hash to its leaf hash in the level-0 tile, every hash of a tile
   above level 0 must be the tree hash of its full tile below, and the tiles must hash to the
   checkpoint's root;
3. the new tree must extend the one copied before: an RFC 9162 consistency proof, computed
   from the tiles, must lead from the kept checkpoint's root to the new one. A smaller tree, a
   second root for the kept size or a failing proof is a fork: the run stops (:class:`Fork`),
   and the folder keeps the last consistent copy and its checkpoint.

New files are fetched into a staging folder and moved into place only once all of this holds;
the checkpoint is written last, so the folder never names a tree it does not hold. A partial
tile is removed once its full tile is copied (tlog-tiles allows it).

Standard library plus the ledger's note, merkle and tiles modules.
"""

from __future__ import annotations

import gzip
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from digital_village.ledger import merkle, note, tiles
from digital_village.ledger.tiles import Tile

CHECKPOINT: Final = "checkpoint"
STAGING: Final = ".incoming"
# Tiles fetched at once: enough to keep a few connections busy, few enough to hold in memory.
BATCH: Final = 64

Fetch = Callable[[str], bytes]
"""Returns the resource at a path under the log's prefix; raises MirrorError when it cannot."""
Progress = Callable[[int, int], None]
"""Called with (tiles copied, tiles to copy) as the run goes."""


class MirrorError(Exception):
    """The run could not copy the log (unreachable, bad signature, tiles that do not match)."""


class Fork(MirrorError):
    """The log's new checkpoint does not extend the copy: it forked or rewrote its history."""


@dataclass(frozen=True)
class Copied:
    """What one run did."""

    checkpoint: note.Checkpoint
    previous_size: int | None
    tiles: int
    bundles: int

    @property
    def summary(self) -> str:
        size = self.checkpoint.size
        if self.previous_size == size:
            return f"unchanged at size {size}"
        start = "first copy" if self.previous_size is None else f"size {self.previous_size}"
        return (
            f"{start} -> size {size}: {self.tiles} tiles and {self.bundles} entry bundles "
            "copied and verified"
        )


def http_fetch(prefix: str, *, timeout: float = 30.0) -> Fetch:
    """Fetch paths under a log's tile prefix over HTTP(S), accepting gzip."""
    base = prefix if prefix.endswith("/") else prefix + "/"

    def fetch(path: str) -> bytes:
        request = urllib.request.Request(  # noqa: S310 (the operator's URL)
            base + path, headers={"Accept-Encoding": "gzip"}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                body: bytes = response.read()
                if response.headers.get("Content-Encoding", "").lower() == "gzip":
                    body = gzip.decompress(body)
                return body
        except urllib.error.HTTPError as error:
            raise MirrorError(f"cannot fetch {base + path}: HTTP {error.code}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as error:
            raise MirrorError(f"cannot fetch {base + path}: {error}") from None

    return fetch


def kept_checkpoint(folder: Path) -> tuple[note.Checkpoint, bytes] | None:
    """The checkpoint of the last consistent copy in ``folder``, if any."""
    path = folder / CHECKPOINT
    if not path.is_file():
        return None
    signed = path.read_bytes()
    # Verified when it was copied; a key rotated since must not make the copy unreadable.
    return note.Checkpoint.parse(note.parse_note(signed).text), signed


def _open(signed: bytes, verifiers: Iterable[str]) -> note.Checkpoint:
    try:
        return note.Checkpoint.parse(note.open_note(signed, list(verifiers)).text)
    except (note.NoteError, ValueError) as error:
        raise MirrorError(
            f"the log's checkpoint is not signed by the expected key: {error}"
        ) from None


def _check_extends(new: note.Checkpoint, old: note.Checkpoint) -> None:
    if new.origin != old.origin:
        raise MirrorError(
            f"the folder holds a copy of the log {old.origin!r}, not of {new.origin!r}"
        )
    if new.size < old.size:
        raise Fork(
            f"FORK: the log's checkpoint has size {new.size}, smaller than the size {old.size} "
            "already copied: the log was rolled back or serves an old checkpoint"
        )
    if new.size == old.size and new.root_hash != old.root_hash:
        raise Fork(
            f"FORK: the log signed two different trees of size {old.size} (the copied root "
            f"{old.root_hash.hex()}, now {new.root_hash.hex()})"
        )


def plan(size: int, previous: int) -> list[Tile]:
    """The tiles and entry bundles a copy at ``previous`` lacks for a tree of ``size``:
    the full ones that have filled since, and the partial ones of ``size``."""
    wanted: list[Tile] = []
    for level in [None, *tiles.levels_for_size(size)]:
        held = previous if level is None else tiles.hashes_at_level(previous, level)
        wanted += tiles.tiles_for_size(size, level=level, start=held // tiles.TILE_WIDTH)
    return wanted


class _Run:
    """One run's staged files and what they were checked against."""

    def __init__(self, folder: Path, fetch: Fetch, size: int, previous: int) -> None:
        self.folder = folder
        self.staging = folder / STAGING
        self.fetch = fetch
        self.size = size
        self.previous = previous
        # The tree hash of each newly copied full tile, by (level, index): the hash the level
        # above must hold for it.
        self.full_tile_hashes: dict[tuple[int, int], bytes] = {}

    def stage(self, tile: Tile, data: bytes) -> None:
        path = self.staging / tile.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def read_tile(self, tile: Tile) -> bytes:
        for root in (self.staging, self.folder):
            path = root / tile.path
            if path.is_file():
                return path.read_bytes()
        raise MirrorError(f"the copy lacks {tile.path}")

    def check_level0(self, tile: Tile, data: bytes, bundle: bytes) -> None:
        hashes = tiles.split_hashes(data, tile)
        try:
            entries = tiles.decode_bundle(bundle)
        except tiles.TileError as error:
            bundle_path = Tile(None, tile.index, tile.width).path
            raise MirrorError(f"the log's {bundle_path}: {error}") from None
        if len(entries) != tile.width:
            raise MirrorError(
                f"the log's entry bundle {tile.index} holds {len(entries)} entries, "
                f"not {tile.width}"
            )
        for offset, (entry, leaf_hash) in enumerate(zip(entries, hashes, strict=True)):
            if merkle.hash_leaf(entry) != leaf_hash:
                raise MirrorError(
                    f"the log's entry {tile.first + offset} does not hash to its leaf hash "
                    f"in {tile.path}"
                )
        self._remember(tile, hashes)

    def check_upper(self, tile: Tile, data: bytes) -> None:
        assert tile.level is not None
        hashes = tiles.split_hashes(data, tile)
        held = tiles.hashes_at_level(self.previous, tile.level)
        for offset, value in enumerate(hashes):
            position = tile.first + offset
            # Hashes the copy held already are checked by the consistency proof.
            if position >= held and value != self.full_tile_hashes.get((tile.level - 1, position)):
                raise MirrorError(
                    f"the log's {tile.path} does not hold the tree hash of "
                    f"{Tile(tile.level - 1, position).path}"
                )
        self._remember(tile, hashes)

    def _remember(self, tile: Tile, hashes: list[bytes]) -> None:
        if tile.full and tile.level is not None:
            self.full_tile_hashes[(tile.level, tile.index)] = merkle.root_of(hashes)


def _batches(items: list[Tile]) -> Iterator[list[Tile]]:
    for start in range(0, len(items), BATCH):
        yield items[start : start + BATCH]


def mirror(
    fetch: Fetch,
    folder: Path,
    verifiers: Iterable[str],
    *,
    progress: Progress | None = None,
    connections: int = 8,
) -> Copied:
    """Bring the copy in ``folder`` up to the log's current checkpoint, or raise."""
    verifiers = list(verifiers)
    signed = fetch(CHECKPOINT)
    current = _open(signed, verifiers)
    kept = kept_checkpoint(folder)
    previous = kept[0] if kept is not None else None
    if previous is not None:
        _check_extends(current, previous)
        if previous.size == current.size:
            return Copied(current, previous.size, 0, 0)
    old_size = previous.size if previous is not None else 0
    wanted = plan(current.size, old_size)
    run = _Run(folder, fetch, current.size, old_size)
    shutil.rmtree(run.staging, ignore_errors=True)
    try:
        try:
            counts = _copy(run, wanted, progress, connections)
        except tiles.TileError as error:
            raise MirrorError(f"the log's tiles are malformed: {error}") from None
        _check_tree(run, current, previous)
        _publish(run, wanted, signed)
    finally:
        shutil.rmtree(run.staging, ignore_errors=True)
    return Copied(current, None if previous is None else previous.size, *counts)


def _copy(
    run: _Run, wanted: list[Tile], progress: Progress | None, connections: int
) -> tuple[int, int]:
    """Fetch, check and stage the tiles, level 0 (with its bundles) first, then upwards."""
    hash_tiles = [tile for tile in wanted if tile.level is not None]
    bundles = {tile.index: tile for tile in wanted if tile.level is None}
    done = 0
    with ThreadPoolExecutor(max_workers=connections) as pool:
        for batch in _batches(sorted(hash_tiles, key=lambda t: (t.level, t.index))):
            paths = [tile.path for tile in batch]
            paths += [bundles[t.index].path for t in batch if t.level == 0]
            fetched = dict(zip(paths, pool.map(run.fetch, paths), strict=True))
            for tile in batch:
                data = fetched[tile.path]
                if tile.level == 0:
                    bundle = bundles[tile.index]
                    run.check_level0(tile, data, fetched[bundle.path])
                    run.stage(bundle, fetched[bundle.path])
                else:
                    run.check_upper(tile, data)
                run.stage(tile, data)
            done += len(batch)
            if progress is not None:
                progress(done, len(hash_tiles))
    return len(hash_tiles), len(bundles)


def _check_tree(run: _Run, current: note.Checkpoint, previous: note.Checkpoint | None) -> None:
    """The tiles hash to the checkpoint's root, and the tree extends the copied one."""
    reader = tiles.TileHashes(current.size, run.read_tile).read_hashes
    try:
        root = merkle.tree_hash(current.size, reader)
    except (merkle.ProofError, tiles.TileError) as error:
        raise MirrorError(
            f"the log's tiles do not make a tree of size {current.size}: {error}"
        ) from None
    if root != current.root_hash:
        raise MirrorError(
            f"the log's tiles do not hash to the root of its checkpoint of size {current.size}"
        )
    if previous is None or previous.size == 0:
        return
    try:
        proof = merkle.consistency_proof(previous.size, current.size, reader)
        merkle.verify_consistency(
            previous.size, current.size, proof, previous.root_hash, current.root_hash
        )
    except (merkle.ProofError, tiles.TileError) as error:
        raise Fork(
            f"FORK: the log's checkpoint of size {current.size} is not consistent with the "
            f"size {previous.size} already copied ({error}): the log has rewritten its history"
        ) from None


def _publish(run: _Run, wanted: list[Tile], signed: bytes) -> None:
    """Move the staged files into place, then the checkpoint; drop superseded partials."""
    for tile in wanted:
        target = run.folder / tile.path
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(run.staging / tile.path, target)
    incoming = run.folder / (CHECKPOINT + ".new")
    incoming.write_bytes(signed)
    os.replace(incoming, run.folder / CHECKPOINT)
    for tile in wanted:
        if tile.full:
            shutil.rmtree(run.folder / (tile.path + ".p"), ignore_errors=True)
