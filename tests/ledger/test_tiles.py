"""The log as C2SP tlog-tiles: paths, bundles, hashes read back from tiles, and the routes."""

from __future__ import annotations

import gzip

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from digital_village.config import Settings
from digital_village.db import Database
from digital_village.ledger import log, merkle, tiles
from digital_village.ledger.log import EntryIn, Ledger
from digital_village.ledger.models import LedgerEntry, LedgerHash

IMMUTABLE = "public, max-age=31536000, immutable"


@pytest.mark.parametrize(
    ("index", "encoded"),
    [(0, "000"), (7, "007"), (999, "999"), (1000, "x001/000"), (1234067, "x001/x234/067")],
)
def test_tile_index_path_elements(index: int, encoded: str) -> None:
    assert tiles.encode_index(index) == encoded
    assert tiles.parse_path(f"tile/3/{encoded}") == tiles.Tile(3, index)
    assert tiles.parse_path(f"tile/entries/{encoded}.p/9") == tiles.Tile(None, index, 9)


def test_paths_round_trip_and_name_the_level() -> None:
    assert tiles.Tile(4, 1234067, 1).path == "tile/4/x001/x234/067.p/1"
    assert tiles.Tile(0, 5).path == "tile/0/005"
    assert tiles.Tile(None, 0, 255).path == "tile/entries/000.p/255"
    for tile in (tiles.Tile(0, 0), tiles.Tile(63, 10**9, 17), tiles.Tile(None, 12345, 1)):
        assert tiles.parse_path(tile.path) == tile


@pytest.mark.parametrize(
    "path",
    [
        "tile/0/0",  # not three digits
        "tile/0/x000/001",  # a second spelling of 001
        "tile/00/000",  # a level with a leading zero
        "tile/64/000",  # past level 63
        "tile/0/000.p/0",
        "tile/0/000.p/256",
        "tile/0/000.p/07",
        "tile/0/001/",
        "tile/data/000",
        "tile/0/x001",
    ],
)
def test_malformed_paths_are_refused(path: str) -> None:
    with pytest.raises(tiles.TileError):
        tiles.parse_path(path)


def test_the_specs_example_tree_of_70000() -> None:
    """tlog-tiles: 273 full level-0 tiles and one of width 112, one full level-1 tile and one
    of width 17, one level-2 tile of width 1."""
    size = 70_000
    assert list(tiles.levels_for_size(size)) == [0, 1, 2]
    level0 = list(tiles.tiles_for_size(size, level=0))
    assert len(level0) == 274 and all(t.full for t in level0[:273])
    assert level0[-1] == tiles.Tile(0, 273, 112)
    assert list(tiles.tiles_for_size(size, level=1)) == [tiles.Tile(1, 0), tiles.Tile(1, 1, 17)]
    assert list(tiles.tiles_for_size(size, level=2)) == [tiles.Tile(2, 0, 1)]
    assert list(tiles.tiles_for_size(256, level=1)) == [tiles.Tile(1, 0, 1)]
    assert list(tiles.tiles_for_size(size, level=None))[-1] == tiles.Tile(None, 273, 112)
    assert list(tiles.levels_for_size(0)) == []


def test_bundles_round_trip_and_refuse_what_a_uint16_cannot_say() -> None:
    entries = [b"", b"{}", "数字乡村".encode(), b"x" * 65535]
    bundle = tiles.encode_bundle(entries)
    assert bundle[:4] == b"\x00\x00\x00\x02"
    assert tiles.decode_bundle(bundle) == entries
    with pytest.raises(tiles.TileError, match="longer than an entry bundle"):
        tiles.encode_bundle([b"x" * 65536])
    with pytest.raises(tiles.TileError, match="ends inside entry 1"):
        tiles.decode_bundle(tiles.encode_bundle([b"a", b"bc"])[:-1])


def test_split_stored_index_inverts_the_layout() -> None:
    for level in range(12):
        for index in range(300):
            storage = merkle.stored_hash_index(level, index)
            assert tiles.split_stored_index(storage) == (level, index)


def _tiles_of(store: merkle.MemoryHashStore) -> tiles.ReadTile:
    """Tiles cut from an in-memory tree, as a server would serve them."""

    def read(tile: tiles.Tile) -> bytes:
        level = tiles.TILE_HEIGHT * (tile.level or 0)
        indexes = [merkle.stored_hash_index(level, tile.first + i) for i in range(tile.width)]
        return b"".join(store.read_hashes(indexes))

    return read


@pytest.mark.parametrize("size", [1, 255, 256, 257, 513, 65535, 65536, 66_001])
def test_roots_and_proofs_from_tiles_equal_the_trees(size: int) -> None:
    store = merkle.MemoryHashStore()
    for n in range(size):
        store.append(n.to_bytes(4, "big"))
    from_tiles = tiles.TileHashes(size, _tiles_of(store))
    assert merkle.tree_hash(size, from_tiles.read_hashes) == store.root()
    for index in {0, size // 2, size - 1}:
        assert merkle.inclusion_proof(index, size, from_tiles.read_hashes) == (
            store.inclusion_proof(index)
        )
    for old in {1, size // 3, size - 1}:
        if 0 < old < size:
            proof = merkle.consistency_proof(old, size, from_tiles.read_hashes)
            merkle.verify_consistency(old, size, proof, store.root(old), store.root())


def test_a_forged_tile_hash_fails_the_proofs_through_it() -> None:
    store = merkle.MemoryHashStore()
    for n in range(300):
        store.append(n.to_bytes(4, "big"))
    honest = _tiles_of(store)

    def forged(tile: tiles.Tile) -> bytes:
        data = bytearray(honest(tile))
        if tile.level == 0 and tile.index == 0:
            data[5 * 32] ^= 1
        return bytes(data)

    reader = tiles.TileHashes(300, forged).read_hashes
    # The root rests on the level-1 tile; leaf 5's hash is its neighbour's proof.
    assert merkle.tree_hash(300, reader) == store.root()
    proof = merkle.inclusion_proof(4, 300, reader)
    with pytest.raises(merkle.ProofError, match="does not lead to the root"):
        merkle.verify_inclusion(
            merkle.hash_leaf((4).to_bytes(4, "big")), 4, 300, proof, store.root()
        )


# --- the routes ---------------------------------------------------------------------------


@pytest.fixture
def ledger(settings: Settings) -> Ledger:
    return Ledger.from_key_file(settings.effective_ledger_key_path, settings.ledger_origin)


def append(db: Database, ledger: Ledger, start: int, stop: int) -> None:
    with db.transaction() as session:
        ledger.append_many(session, [EntryIn("test.tile", {"n": n}) for n in range(start, stop)])


def test_the_checkpoint_is_the_latest_signed_note(
    client: TestClient, db: Database, ledger: Ledger, session: Session
) -> None:
    assert client.get("/ledger/checkpoint").status_code == 404
    append(db, ledger, 0, 3)
    answer = client.get("/ledger/checkpoint")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/plain; charset=utf-8"
    assert answer.headers["cache-control"] == "no-cache"
    assert answer.headers["access-control-allow-origin"] == "*"
    latest = log.latest_checkpoint(session)
    assert latest is not None and answer.content == latest.note
    assert answer.text.splitlines()[:2] == ["test.digital-village.example/ledger", "3"]


def test_tiles_hold_the_logs_stored_hashes_and_bundles_its_entries(
    client: TestClient, db: Database, ledger: Ledger, session: Session
) -> None:
    for start in range(0, 300, 60):
        append(db, ledger, start, start + 60)
    rows = session.execute(
        select(LedgerEntry.leaf_hash, LedgerEntry.body).order_by(LedgerEntry.seq)
    )
    leaf_hashes, bodies = zip(*((bytes(h), bytes(b)) for h, b in rows), strict=True)
    hash_rows = session.execute(select(LedgerHash.idx, LedgerHash.hash))
    stored = {int(i): bytes(h) for i, h in hash_rows}

    full = client.get("/ledger/tile/0/000")
    assert full.status_code == 200
    assert full.headers["content-type"] == "application/octet-stream"
    assert full.headers["cache-control"] == IMMUTABLE
    assert full.content == b"".join(leaf_hashes[:256])
    assert full.content == b"".join(stored[merkle.stored_hash_index(0, i)] for i in range(256))
    partial = client.get("/ledger/tile/0/001.p/44")
    assert partial.content == b"".join(leaf_hashes[256:300])
    assert partial.headers["cache-control"] == "public, max-age=60"
    assert client.get("/ledger/tile/0/001.p/10").content == b"".join(leaf_hashes[256:266])
    # Level 1 holds the tree hash of each full level-0 tile.
    level1 = client.get("/ledger/tile/1/000.p/1").content
    assert level1 == stored[merkle.stored_hash_index(8, 0)] == merkle.root_of(leaf_hashes[:256])

    bundle = client.get("/ledger/tile/entries/000")
    assert bundle.headers["cache-control"] == IMMUTABLE
    assert tiles.decode_bundle(bundle.content) == list(bodies[:256])
    assert all(merkle.hash_leaf(e) == h for e, h in zip(bodies, leaf_hashes, strict=True))
    tail = client.get("/ledger/tile/entries/001.p/44")
    assert tiles.decode_bundle(tail.content) == list(bodies[256:])

    # Nothing beyond the checkpoint, nothing malformed.
    for path in ("tile/0/001.p/45", "tile/0/001", "tile/1/000", "tile/entries/001", "tile/0/0"):
        answer = client.get(f"/ledger/{path}")
        assert answer.status_code == 404, path
        assert answer.headers["content-type"] == "application/problem+json"


def test_a_cached_full_tile_is_answered_the_same_without_the_database(
    client: TestClient, db: Database, ledger: Ledger, session: Session
) -> None:
    append(db, ledger, 0, 256)
    first = client.get("/ledger/tile/entries/000", headers={"Accept-Encoding": "gzip"})
    assert first.headers["content-encoding"] == "gzip"
    assert "x-request-id" in first.headers  # the route answered
    tile = client.get("/ledger/tile/0/000")
    # Rewrite a stored hash behind the log's back: a cached tile no longer reads it.
    session.execute(update(LedgerHash).where(LedgerHash.idx == 0).values(hash=b"\x00" * 32))
    session.flush()
    again = client.get("/ledger/tile/0/000")
    assert again.content == tile.content and tile.content[:32] != b"\x00" * 32
    cached_bundle = client.get("/ledger/tile/entries/000", headers={"Accept-Encoding": "gzip"})
    assert "x-request-id" not in cached_bundle.headers  # the fast path answered
    assert cached_bundle.content == first.content
    for name in ("content-type", "cache-control", "content-encoding", "vary",
                 "access-control-allow-origin", "x-content-type-options",
                 "content-security-policy", "content-length"):  # fmt: skip
        assert cached_bundle.headers.get(name) == first.headers.get(name), name
    plain = client.get("/ledger/tile/entries/000", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert gzip.decompress(gzip.compress(plain.content)) == first.content
    head = client.head("/ledger/tile/0/000")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(8192)
    preflight = client.options("/ledger/tile/0/000", headers={"Origin": "https://shop.example"})
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "*"


def test_an_entry_too_long_for_a_bundle_is_named(
    client: TestClient, db: Database, ledger: Ledger
) -> None:
    """tlog-tiles bundles say an entry's length in 16 bits: a longer entry is refused by name."""
    append(db, ledger, 0, 2)
    with db.transaction() as session:
        ledger.append(session, kind="test.tile", data={"epcList": ["x" * 70_000]})
    answer = client.get("/ledger/tile/entries/000.p/3")
    assert answer.status_code == 501
    assert "entry 2 has 70" in answer.json()["detail"]
    assert "/api/v1/ledger/entries/2" in answer.json()["detail"]
    assert len(client.get("/ledger/tile/0/000.p/3").content) == 3 * 32
    assert len(tiles.decode_bundle(client.get("/ledger/tile/entries/000.p/2").content)) == 2
