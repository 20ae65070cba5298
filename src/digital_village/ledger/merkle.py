"""RFC 9162 (RFC 6962) Merkle tree hashing, proofs and a stored-hash layout.

The log never keeps the whole tree in memory. Every complete subtree hash
(level L, index n: the subtree over leaves n*2**L .. (n+1)*2**L - 1) gets a
stable integer *storage index*, assigned in the order the hashes come into
existence while leaves are appended. Appending leaf n therefore produces a short
run of consecutive rows (about two per leaf on average), and any tree hash,
inclusion proof or consistency proof can be computed later by reading only
O(log n) stored hashes through a ``read_hashes(indexes)`` callback.

Verification follows the algorithms of RFC 9162 §2.1.3.2 and §2.1.4.2 verbatim,
so proofs interoperate with other RFC 6962 implementations.

Only the standard library is used: the offline verifier imports this module.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

ReadHashes = Callable[[Sequence[int]], list[bytes]]
"""Returns the stored hashes at the given storage indexes, in the same order."""


class ProofError(ValueError):
    """A Merkle proof does not verify; the message names the failed check."""


def hash_leaf(entry: bytes) -> bytes:
    """Return the RFC 9162 leaf hash SHA-256(0x00 ‖ entry)."""
    return hashlib.sha256(b"\x00" + entry).digest()


def hash_children(left: bytes, right: bytes) -> bytes:
    """Return the RFC 9162 interior node hash SHA-256(0x01 ‖ left ‖ right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """Return the Merkle tree hash of a list of leaf hashes, computed in full.

    O(n) time and O(log n) memory; meant for small batches (one day's sensor
    readings) and as the reference the stored-hash code is tested against.
    """
    # A stack of (level, hash) for the complete subtrees seen so far; merging
    # equal levels as they appear mirrors how the log itself grows.
    stack: list[tuple[int, bytes]] = []
    for leaf_hash in leaf_hashes:
        level, node = 0, leaf_hash
        while stack and stack[-1][0] == level:
            node = hash_children(stack.pop()[1], node)
            level += 1
        stack.append((level, node))
    if not stack:
        return EMPTY_ROOT
    root = stack[-1][1]
    for _, left in reversed(stack[:-1]):
        root = hash_children(left, root)
    return root


def stored_hash_index(level: int, index: int) -> int:
    """Return the storage index of the complete subtree hash at (level, index).

    Hashes are numbered in creation order: leaf m's own hash, then the parents
    it completes. Before leaf m, 2m - popcount(m) hashes exist; a subtree hash
    is created right after its last leaf, one row per level above it.
    """
    if level < 0 or index < 0:
        raise ValueError(f"no subtree at level {level}, index {index}")
    last_leaf = ((index + 1) << level) - 1
    return 2 * last_leaf - last_leaf.bit_count() + level


def stored_hash_count(size: int) -> int:
    """Return how many hashes a tree of ``size`` leaves has stored."""
    if size < 0:
        raise ValueError(f"tree size {size} is negative")
    return 2 * size - size.bit_count()


def stored_hashes_for_leaf(
    index: int, leaf_hash: bytes, read_hashes: ReadHashes
) -> list[tuple[int, bytes]]:
    """Return the (storage index, hash) rows to persist when appending leaf ``index``.

    The first row is the leaf hash itself; one more row follows for every
    subtree the leaf completes, which needs the left siblings read back
    (trailing one bits of ``index``, so O(log n) reads, usually none or one).
    The rows' storage indexes are consecutive and start at
    ``stored_hash_count(index)``.
    """
    if len(leaf_hash) != HASH_SIZE:
        raise ValueError(f"leaf hash has {len(leaf_hash)} bytes, expected {HASH_SIZE}")
    if index < 0:
        raise ValueError(f"leaf index {index} is negative")
    completed = 0
    while (index >> completed) & 1:
        completed += 1
    siblings = _read(
        read_hashes,
        [stored_hash_index(level, (index >> level) - 1) for level in range(completed)],
    )
    rows = [(stored_hash_index(0, index), leaf_hash)]
    node = leaf_hash
    for level, left in enumerate(siblings):
        node = hash_children(left, node)
        rows.append((stored_hash_index(level + 1, index >> (level + 1)), node))
    return rows


def tree_hash(size: int, read_hashes: ReadHashes) -> bytes:
    """Return the root hash of the first ``size`` leaves from stored hashes."""
    if size < 0:
        raise ValueError(f"tree size {size} is negative")
    if size == 0:
        return EMPTY_ROOT
    return _hash_ranges([(0, size)], read_hashes)[0]


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose tree hashes make the RFC 9162 inclusion path of leaf ``index`` in
    the tree of ``size`` leaves, the leaf's sibling first."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    # Walk down from the root; the sibling range at each split is one path element.
    ranges: list[tuple[int, int]] = []
    low, high = 0, size
    while high - low > 1:
        split = low + _largest_power_of_two_below(high - low)
        if index < split:
            ranges.append((split, high))
            high = split
        else:
            ranges.append((low, split))
            low = split
    ranges.reverse()  # the path is listed leaf first
    return ranges


def inclusion_proof(index: int, size: int, read_hashes: ReadHashes) -> list[bytes]:
    """Return the RFC 9162 inclusion path of leaf ``index`` in the tree of ``size`` leaves."""
    return _hash_ranges(inclusion_ranges(index, size), read_hashes)


def consistency_proof(size1: int, size2: int, read_hashes: ReadHashes) -> list[bytes]:
    """Return the RFC 9162 consistency proof from tree size ``size1`` to ``size2``."""
    if not 0 <= size1 <= size2:
        raise ValueError(f"no consistency proof from size {size1} to size {size2}")
    if size1 in (0, size2):
        return []
    # RFC 9162 SUBPROOF(m, D[0:n], true) unrolled; `whole` is its boolean b,
    # true while the old tree is still a prefix of the current range.
    ranges: list[tuple[int, int]] = []
    low, high, whole = 0, size2, True
    while size1 != high:
        split = low + _largest_power_of_two_below(high - low)
        if size1 <= split:
            ranges.append((split, high))
            high = split
        else:
            ranges.append((low, split))
            low, whole = split, False
    if not whole:
        ranges.append((low, high))
    ranges.reverse()
    return _hash_ranges(ranges, read_hashes)


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check an inclusion proof per RFC 9162 §2.1.3.2; raise ProofError if it fails."""
    _check_hash("leaf hash", leaf_hash)
    _check_hash("root hash", root)
    for position, element in enumerate(proof):
        _check_hash(f"inclusion proof hash {position}", element)
    if index < 0 or index >= tree_size:
        raise ProofError(f"leaf index {index} is outside a tree of size {tree_size}")
    fn, sn = index, tree_size - 1
    node = leaf_hash
    for element in proof:
        if sn == 0:
            raise ProofError(
                f"inclusion proof has {len(proof)} hashes, too many for leaf {index} "
                f"of a tree of size {tree_size}"
            )
        if fn & 1 or fn == sn:
            node = hash_children(element, node)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            node = hash_children(node, element)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError(
            f"inclusion proof has {len(proof)} hashes, too few for leaf {index} "
            f"of a tree of size {tree_size}"
        )
    if not hmac.compare_digest(node, root):
        raise ProofError(
            f"inclusion proof for leaf {index} does not lead to the root of size {tree_size}"
        )


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Check a consistency proof per RFC 9162 §2.1.4.2; raise ProofError if it fails.

    The trivial cases the RFC leaves to the caller are decided here: equal sizes
    need equal roots and an empty proof; an empty first tree needs an empty proof
    and the empty-tree root.
    """
    _check_hash("first root hash", root1)
    _check_hash("second root hash", root2)
    for position, element in enumerate(proof):
        _check_hash(f"consistency proof hash {position}", element)
    if size1 < 0 or size2 < size1:
        raise ProofError(f"tree size went from {size1} to {size2}: a log only grows")
    if size1 == size2:
        if proof:
            raise ProofError(f"consistency proof between equal sizes {size1} must be empty")
        if not hmac.compare_digest(root1, root2):
            raise ProofError(f"two different roots for the same tree size {size1}")
        return
    if size1 == 0:
        if proof:
            raise ProofError("consistency proof from the empty tree must be empty")
        if not hmac.compare_digest(root1, EMPTY_ROOT):
            raise ProofError("root of the empty tree is not SHA-256 of the empty string")
        return
    if not proof:
        raise ProofError(f"consistency proof from size {size1} to {size2} is empty")

    path = list(proof)
    if size1 & (size1 - 1) == 0:
        # The old tree is a complete subtree, so its root is the proof's start.
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    first = second = path[0]
    for element in path[1:]:
        if sn == 0:
            raise ProofError(
                f"consistency proof has {len(proof)} hashes, too many for sizes {size1} to {size2}"
            )
        if fn & 1 or fn == sn:
            first = hash_children(element, first)
            second = hash_children(element, second)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            second = hash_children(second, element)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError(
            f"consistency proof has {len(proof)} hashes, too few for sizes {size1} to {size2}"
        )
    if not hmac.compare_digest(first, root1):
        raise ProofError(f"consistency proof does not lead to the root of size {size1}")
    if not hmac.compare_digest(second, root2):
        raise ProofError(f"consistency proof does not lead to the root of size {size2}")


class MemoryHashStore:
    """An in-memory log of stored hashes, for tests, audits and small batches.

    It counts every hash read through ``read_hashes`` so tests can check that
    proofs touch only O(log n) rows.
    """

    def __init__(self) -> None:
        self._hashes: list[bytes] = []
        self._size = 0
        self.hashes_read = 0
        self.read_calls = 0

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    def append(self, entry: bytes) -> int:
        """Append an entry and return its leaf index."""
        return self.append_leaf_hash(hash_leaf(entry))

    def append_leaf_hash(self, leaf_hash: bytes) -> int:
        """Append a leaf by its hash and return its leaf index."""
        index = self._size
        for storage_index, node in stored_hashes_for_leaf(index, leaf_hash, self.read_hashes):
            # The layout promises dense, in-order rows; a gap would be a layout bug.
            if storage_index != len(self._hashes):
                raise AssertionError(f"stored hash row {storage_index} out of order")
            self._hashes.append(node)
        self._size += 1
        return index

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        """Return stored hashes by storage index (the ``ReadHashes`` callback)."""
        self.read_calls += 1
        self.hashes_read += len(indexes)
        return [self._hashes[i] for i in indexes]

    def root(self, size: int | None = None) -> bytes:
        """Return the root hash at ``size`` (default: the current size)."""
        return tree_hash(self._size if size is None else self._checked(size), self.read_hashes)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """Return the inclusion path of leaf ``index`` at ``size`` (default: current)."""
        tree_size = self._size if size is None else self._checked(size)
        return inclusion_proof(index, tree_size, self.read_hashes)

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        """Return the consistency proof from ``size1`` to ``size2`` (default: current)."""
        tree_size = self._size if size2 is None else self._checked(size2)
        return consistency_proof(size1, tree_size, self.read_hashes)

    def _checked(self, size: int) -> int:
        if not 0 <= size <= self._size:
            raise ValueError(f"tree size {size} is beyond the log's {self._size} leaves")
        return size


def _largest_power_of_two_below(n: int) -> int:
    """Return the largest power of two strictly less than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _complete_subtrees(low: int, high: int) -> list[tuple[int, int]]:
    """Split leaves [low, high) into maximal complete subtrees, left to right.

    Every range a proof asks for starts at a multiple of a power of two at least
    as large as the range, so this split is exactly RFC 9162's recursive one.
    """
    nodes: list[tuple[int, int]] = []
    while low < high:
        level = (high - low).bit_length() - 1
        if low:
            level = min(level, (low & -low).bit_length() - 1)
        nodes.append((level, low >> level))
        low += 1 << level
    return nodes


def _hash_ranges(ranges: Sequence[tuple[int, int]], read_hashes: ReadHashes) -> list[bytes]:
    """Return the Merkle tree hash of each leaf range, with a single read."""
    plans = [_complete_subtrees(low, high) for low, high in ranges]
    wanted = sorted({stored_hash_index(level, n) for plan in plans for level, n in plan})
    found = dict(zip(wanted, _read(read_hashes, wanted), strict=True))
    hashes: list[bytes] = []
    for plan in plans:
        subtree_hashes = [found[stored_hash_index(level, n)] for level, n in plan]
        node = subtree_hashes[-1]
        for left in reversed(subtree_hashes[:-1]):
            node = hash_children(left, node)
        hashes.append(node)
    return hashes


def _read(read_hashes: ReadHashes, indexes: list[int]) -> list[bytes]:
    if not indexes:
        return []
    hashes = read_hashes(indexes)
    if len(hashes) != len(indexes):
        raise ValueError(f"read_hashes returned {len(hashes)} hashes for {len(indexes)} indexes")
    for storage_index, node in zip(indexes, hashes, strict=True):
        if len(node) != HASH_SIZE:
            raise ValueError(f"stored hash {storage_index} has {len(node)} bytes")
    return hashes


def _check_hash(what: str, value: bytes) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(f"{what} has {len(value)} bytes, expected {HASH_SIZE}")
