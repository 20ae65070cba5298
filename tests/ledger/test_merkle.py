"""Merkle tree: RFC 6962 known answers, stored-hash proofs and their read cost."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digital_village.ledger.merkle import (
    EMPTY_ROOT,
    MemoryHashStore,
    ProofError,
    hash_children,
    hash_leaf,
    root_of,
    stored_hash_count,
    stored_hash_index,
    verify_consistency,
    verify_inclusion,
)

# The eight-leaf RFC 6962 test tree of transparency-dev/merkle (testonly/constants.go,
# proof/verify_test.go), itself taken from the Certificate Transparency test suite.
LEAVES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
ROOTS = [
    EMPTY_ROOT.hex(),
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# Complete subtree hashes by level, then index within the level.
NODES = [
    [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    ],
    [
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    ],
    [
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    ["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
]
# (leaf index, tree size, path); the source lists 1-based leaf numbers.
INCLUSION = [
    (0, 1, []),
    (0, 8, ["96a296d2", "5f083f0a", "6b47aaf2"]),
    (5, 8, ["bc1a0643", "ca854ea1", "d37ee418"]),
    (2, 3, ["fac54203"]),
    (1, 5, ["6e340b9c", "5f083f0a", "bc1a0643"]),
]
CONSISTENCY = [
    (1, 1, []),
    (1, 8, ["96a296d2", "5f083f0a", "6b47aaf2"]),
    (6, 8, ["0ebc5d34", "ca854ea1", "d37ee418"]),
    (2, 5, ["5f083f0a", "bc1a0643"]),
    (6, 7, ["0ebc5d34", "b08693ec", "d37ee418"]),
]
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


def _full(prefix: str) -> bytes:
    """Expand an 8-hex-digit prefix to the known node hash it starts."""
    matches = {h for level in NODES for h in level if h.startswith(prefix)}
    assert len(matches) == 1, prefix
    return bytes.fromhex(matches.pop())


def _store(entries: list[bytes]) -> MemoryHashStore:
    store = MemoryHashStore()
    for entry in entries:
        store.append(entry)
    return store


def _flip(proof: list[bytes], position: int, bit: int) -> list[bytes]:
    changed = bytearray(proof[position])
    changed[bit // 8] ^= 1 << (bit % 8)
    return [*proof[:position], bytes(changed), *proof[position + 1 :]]


def test_hashes_have_rfc_domain_separation() -> None:
    assert hash_leaf(b"").hex() == NODES[0][0]
    assert hash_children(_full("6e340b9c"), _full("96a296d2")).hex() == NODES[1][0]
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@pytest.mark.parametrize("size", range(9))
def test_roots_of_every_size(size: int) -> None:
    store = _store(LEAVES)
    assert store.root(size).hex() == ROOTS[size]
    assert root_of([hash_leaf(leaf) for leaf in LEAVES[:size]]).hex() == ROOTS[size]


def test_stored_hashes_are_the_known_subtree_hashes() -> None:
    store = _store(LEAVES)
    for level, hashes in enumerate(NODES):
        for index, expected in enumerate(hashes):
            (stored,) = store.read_hashes([stored_hash_index(level, index)])
            assert stored.hex() == expected


def test_storage_indexes_are_dense_and_in_creation_order() -> None:
    expected_order = [(0, 0), (0, 1), (1, 0), (0, 2), (0, 3), (1, 1), (2, 0), (0, 4)]
    assert [stored_hash_index(level, n) for level, n in expected_order] == list(range(8))
    for size in range(1, 300):
        nodes = [(level, n) for level in range(size.bit_length()) for n in range(size >> level)]
        indexes = sorted(stored_hash_index(level, n) for level, n in nodes)
        assert indexes == list(range(stored_hash_count(size)))


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION)
def test_inclusion_known_answers(index: int, size: int, path: list[str]) -> None:
    store = _store(LEAVES)
    proof = store.inclusion_proof(index, size)
    assert proof == [_full(p) for p in path]
    root = bytes.fromhex(ROOTS[size])
    leaf_hash = hash_leaf(LEAVES[index])
    verify_inclusion(leaf_hash, index, size, proof, root)

    # The corruptions transparency-dev probes each known proof with.
    probes = [
        (leaf_hash, index - 1, size, proof, root),
        (leaf_hash, index + 1, size, proof, root),
        (leaf_hash, index ^ 2, size, proof, root),
        (leaf_hash, index, size * 2, proof, root),
        (leaf_hash, index, size // 2, proof, root),
        (hash_leaf(b"WrongLeaf"), index, size, proof, root),
        (leaf_hash, index, size, proof, EMPTY_ROOT),
        (leaf_hash, index, size, proof, SOME_HASH),
        (leaf_hash, index, size, [*proof, root], root),
        (leaf_hash, index, size, [root, *proof], root),
    ]
    probes += [(leaf_hash, index, size, _flip(proof, i, 3), root) for i in range(len(proof))]
    if proof:
        probes.append((leaf_hash, index, size, proof[:-1], root))
    if len(proof) > 1:
        probes.append((leaf_hash, index, size, [proof[0], SOME_HASH, *proof[1:]], root))
    for probe in probes:
        with pytest.raises(ProofError):
            verify_inclusion(*probe)


@pytest.mark.parametrize(("size1", "size2", "path"), CONSISTENCY)
def test_consistency_known_answers(size1: int, size2: int, path: list[str]) -> None:
    store = _store(LEAVES)
    proof = store.consistency_proof(size1, size2)
    assert proof == [_full(p) for p in path]
    root1, root2 = bytes.fromhex(ROOTS[size1]), bytes.fromhex(ROOTS[size2])
    verify_consistency(size1, size2, proof, root1, root2)
    if not proof:
        return
    probes = [
        (size1 - 1, size2, proof, root1, root2),
        (size1 + 1, size2, proof, root1, root2),
        (size1 ^ 2, size2, proof, root1, root2),
        (size1, size2 * 2, proof, root1, root2),
        (size1, size2 // 2, proof, root1, root2),
        (size1, size2, proof, SOME_HASH, root2),
        (size1, size2, proof, root1, SOME_HASH),
        (size1, size2, proof, root2, root1),
        (size1, size2, [], root1, root2),
        (size1, size2, [*proof, root1], root1, root2),
        (size1, size2, [*proof, root2], root1, root2),
        (size1, size2, [root1, *proof], root1, root2),
        (size1, size2, [root2, *proof], root1, root2),
        (size1, size2, [proof[0], *proof], root1, root2),
        (size1, size2, proof[:-1], root1, root2),
    ]
    probes += [(size1, size2, _flip(proof, i, 4), root1, root2) for i in range(len(proof))]
    for probe in probes:
        with pytest.raises(ProofError):
            verify_consistency(*probe)


def test_consistency_edge_cases() -> None:
    root = bytes.fromhex(ROOTS[3])
    verify_consistency(0, 0, [], EMPTY_ROOT, EMPTY_ROOT)
    verify_consistency(0, 3, [], EMPTY_ROOT, root)
    verify_consistency(3, 3, [], root, root)
    with pytest.raises(ProofError, match="same tree size"):
        verify_consistency(3, 3, [], root, SOME_HASH)
    with pytest.raises(ProofError, match="must be empty"):
        verify_consistency(3, 3, [root], root, root)
    with pytest.raises(ProofError, match="only grows"):
        verify_consistency(4, 3, [], root, root)
    with pytest.raises(ProofError, match="empty tree"):
        verify_consistency(0, 3, [], SOME_HASH, root)
    with pytest.raises(ProofError, match="is empty"):
        verify_consistency(2, 3, [], bytes.fromhex(ROOTS[2]), root)


def test_malformed_hashes_are_rejected() -> None:
    root = bytes.fromhex(ROOTS[1])
    with pytest.raises(ProofError, match="leaf hash has 3 bytes"):
        verify_inclusion(b"abc", 0, 1, [], root)
    with pytest.raises(ProofError, match="inclusion proof hash 0 has 0 bytes"):
        verify_inclusion(root, 0, 2, [b""], root)
    with pytest.raises(ProofError, match="outside a tree"):
        verify_inclusion(root, 0, 0, [], EMPTY_ROOT)
    with pytest.raises(ValueError, match="outside a tree"):
        _store(LEAVES).inclusion_proof(8, 8)


@st.composite
def tree_and_index(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(st.integers(min_value=1, max_value=700))
    return size, draw(st.integers(min_value=0, max_value=size - 1))


# One shared log keeps the property tests fast: any prefix of it is a tree.
_BIG = _store([f"entry {i}".encode() for i in range(700)])
_BIG_ROOTS = [root_of([hash_leaf(f"entry {i}".encode()) for i in range(n)]) for n in range(701)]


@settings(max_examples=150, deadline=None)
@given(tree_and_index(), st.data())
def test_inclusion_proofs_verify_and_resist_tampering(
    case: tuple[int, int], data: st.DataObject
) -> None:
    size, index = case
    leaf_hash = hash_leaf(f"entry {index}".encode())
    proof = _BIG.inclusion_proof(index, size)
    root = _BIG_ROOTS[size]
    verify_inclusion(leaf_hash, index, size, proof, root)

    if proof:
        position = data.draw(st.integers(0, len(proof) - 1))
        bit = data.draw(st.integers(0, 255))
        with pytest.raises(ProofError):
            verify_inclusion(leaf_hash, index, size, _flip(proof, position, bit), root)
    other_index = data.draw(st.integers(0, 700).filter(lambda i: i != index))
    with pytest.raises(ProofError):
        verify_inclusion(leaf_hash, other_index, size, proof, root)
    # A proof for one size never verifies against the real root of another size.
    other_size = data.draw(st.integers(1, 700).filter(lambda n: n != size))
    with pytest.raises(ProofError):
        verify_inclusion(leaf_hash, index, other_size, proof, _BIG_ROOTS[other_size])


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 700), st.integers(0, 700), st.data())
def test_consistency_proofs_verify_and_resist_tampering(
    a: int, b: int, data: st.DataObject
) -> None:
    size1, size2 = min(a, b), max(a, b)
    proof = _BIG.consistency_proof(size1, size2)
    root1, root2 = _BIG_ROOTS[size1], _BIG_ROOTS[size2]
    verify_consistency(size1, size2, proof, root1, root2)

    if proof:
        position = data.draw(st.integers(0, len(proof) - 1))
        bit = data.draw(st.integers(0, 255))
        with pytest.raises(ProofError):
            verify_consistency(size1, size2, _flip(proof, position, bit), root1, root2)
    other = data.draw(st.integers(0, 700).filter(lambda n: n not in (size1, size2)))
    if 0 < other < size2:
        with pytest.raises(ProofError):
            verify_consistency(other, size2, proof, _BIG_ROOTS[other], root2)
    if other > size1 > 0:  # the empty tree is consistent with every tree
        with pytest.raises(ProofError):
            verify_consistency(size1, other, proof, root1, _BIG_ROOTS[other])


def test_proofs_read_only_logarithmically_many_hashes() -> None:
    size = 5000
    store = _store([i.to_bytes(4, "big") for i in range(size)])
    log_n = math.ceil(math.log2(size))
    for index in [0, 1, 2047, 2048, 3333, 4095, 4096, 4999]:
        before = (store.hashes_read, store.read_calls)
        store.inclusion_proof(index, size)
        assert store.hashes_read - before[0] <= 2 * log_n
        assert store.read_calls - before[1] == 1
    for size1 in [1, 2, 1000, 2048, 4097, 4998]:
        before_read = store.hashes_read
        store.consistency_proof(size1, size)
        assert store.hashes_read - before_read <= 2 * log_n
    before_read = store.hashes_read
    store.root(size)
    assert store.hashes_read - before_read == size.bit_count()


def test_appending_writes_about_two_rows_per_leaf() -> None:
    store = MemoryHashStore()
    for i in range(4096):
        before = store.hashes_read
        store.append(i.to_bytes(4, "big"))
        # Only the left siblings of the subtrees this leaf completes are read.
        assert store.hashes_read - before == (i ^ (i + 1)).bit_length() - 1
    assert stored_hash_count(store.size) == 2 * 4096 - 1
    assert store.root() == root_of([hash_leaf(i.to_bytes(4, "big")) for i in range(4096)])
