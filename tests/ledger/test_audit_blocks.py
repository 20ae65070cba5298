"""The audit's block-wise parts decide as the entry-by-entry reference does: a block's tree, its
roots at each size, and a batch of entries found clean at once."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from digital_village.ledger import audit_blocks, audit_entries, canonical, merkle
from tests.ledger.test_canonical import values


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=6), st.integers(min_value=1, max_value=64))
def test_a_blocks_tree_is_the_logs_tree(power: int, count: int) -> None:
    block = 1 << power
    count = min(count, block)
    leaves = [merkle.hash_leaf(str(n).encode()) for n in range(count)]
    levels = audit_blocks._levels(leaves)
    # Every prefix's root, as the checkpoints within the block need it.
    for size in range(1, count + 1):
        root = audit_blocks.fold_root(audit_blocks._border(levels, size))
        assert root == merkle.root_of(leaves[:size])
    # The rows in the order the log stores them: each complete subtree at its storage index.
    rows = 2 * count - count.bit_count()
    expected = audit_blocks._storage_order(levels, block, rows)
    stored: dict[int, bytes] = {}
    for level in range(count.bit_length()):
        for index in range(count >> level):
            span = leaves[index << level : (index + 1) << level]
            stored[merkle.stored_hash_index(level, index)] = merkle.root_of(span)
    assert expected == [stored[idx] for idx in range(rows)]


@settings(max_examples=300, deadline=None)
@given(st.lists(values, min_size=1, max_size=6))
def test_a_batch_is_canonical_at_once_only_where_each_entry_is(data: list[Any]) -> None:
    bodies = []
    for value in data:
        with contextlib.suppress(canonical.CanonicalizationError):
            bodies.append(canonical.dumps(value))
        with contextlib.suppress(orjson.JSONEncodeError, TypeError):
            bodies.append(orjson.dumps(value, option=orjson.OPT_SORT_KEYS))
    parsed = []
    for body in bodies:
        try:
            parsed.append(orjson.loads(body))
        except orjson.JSONDecodeError:
            return
    if canonical.all_canonical(bodies, parsed):
        for body in bodies:
            result = canonical.parse_canonical(body)
            assert result is not None and result[1], body


def _bytes(envelope: dict[str, Any]) -> bytes:
    """The envelope's canonical bytes, else (data RFC 8785 refuses) bytes orjson or the
    standard library write."""
    try:
        return canonical.dumps(envelope)
    except canonical.CanonicalizationError:
        pass
    try:
        return orjson.dumps(envelope)
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(envelope).encode()


def _entries(data: list[Any], chained: list[bool]) -> list[tuple[Any, ...]]:
    """Rows as the walk reads them (``audit_entries.ENTRY_COLUMNS``) of a log of ``data``."""
    rows: list[tuple[Any, ...]] = []
    prev: bytes | None = None
    heads: dict[str, tuple[int, bytes]] = {}
    for seq, (value, chain) in enumerate(zip(data, chained, strict=True)):
        key = f"lot:{seq % 2}" if chain else None
        head = heads.get(key) if key else None
        envelope: dict[str, Any] = {
            "v": 1,
            "kind": "test",
            "time": "2026-05-12T00:30:00.000000Z",
            "prev": prev.hex() if prev else None,
            "data": {"value": value},
        }
        if key is not None:
            envelope["chain"] = {"key": key, "prev": head[1].hex() if head else None}
        body = _bytes(envelope)
        leaf = merkle.hash_leaf(body)
        rows.append(
            (
                seq,
                "test",
                body,
                leaf,
                prev,
                key,
                head[0] if head else None,
                head[1] if head else None,
                key if head else None,
            )
        )
        if key is not None:
            heads[key] = (seq, leaf)
        prev = leaf
    return rows


_CHANGES = [
    (2, b'{"edited":1}'),
    (2, b" " * 3),
    (3, b"\x01" * 32),
    (3, b"\x01" * 31),
    (3, "text"),
    (4, None),
    (4, b"\x02" * 32),
    (1, "other"),
    (1, b"test"),
    (5, "lot:9"),
    (5, None),
    (6, 999),
    (6, None),
    (7, b"\x03" * 32),
    (7, None),
    (8, "lot:9"),
    (0, 77),
    (2, "text body"),
]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.dictionaries(st.text(max_size=3), values, max_size=3), min_size=1, max_size=5),
    st.data(),
)
def test_a_batch_is_clean_at_once_only_where_each_entry_is(data: list[Any], draw: Any) -> None:
    chained = draw.draw(st.lists(st.booleans(), min_size=len(data), max_size=len(data)))
    rows = [list(row) for row in _entries(data, chained)]
    for _ in range(draw.draw(st.integers(min_value=0, max_value=2))):
        row = draw.draw(st.integers(min_value=0, max_value=len(rows) - 1))
        column, value = draw.draw(st.sampled_from(_CHANGES))
        rows[row][column] = value
    batch = [tuple(row) for row in rows]
    problems: list[tuple[int, str]] = []
    leaves: list[bytes] = []
    gap = audit_entries._check_batch(
        batch, 0, None, (), lambda index, what: problems.append((index, what)), leaves, []
    )
    clean = audit_entries._clean_batch(batch, 0, None)
    if clean is not None:
        assert gap is None and problems == [] and clean == leaves


def test_an_honest_batch_is_clean_at_once() -> None:
    batch = _entries([{"n": n, "x": [1.5, "é"]} for n in range(40)], [n % 3 > 0 for n in range(40)])
    assert audit_entries._clean_batch(batch, 0, None) == [row[3] for row in batch]
    # From a later index, after the entry before it.
    assert audit_entries._clean_batch(batch[10:], 10, batch[9][3]) is not None
    assert audit_entries._clean_batch(batch[10:], 10, batch[8][3]) is None
