"""The audit of a large log block by block, in worker processes.

A block is an aligned run of 2**k entries (the last one shorter). A worker process checks each
entry of it (``audit_entries``), recomputes the block's part of the tree level by level (each
level's pairs hashed in one loop), compares the stored tree hashes inside the block with it in
one list comparison, and hands back what the walking process (``audit.py``) needs to go on
(``Block``): the block's subtree roots, the root of the block's leaves up to each checkpoint
size within it, the few stored hashes above the block (they need the tree left of it) and the
entries the record checkers asked for.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import importlib
import pickle
import subprocess
import sys
from collections.abc import Collection, Iterator, Sequence
from itertools import islice
from operator import itemgetter
from typing import Any, Final, NamedTuple

from digital_village.ledger import merkle
from digital_village.ledger.audit_entries import MAX_PROBLEMS, Report, Rows, check_entries

_HASHES_SQL: Final = "SELECT idx, hash FROM ledger_hash WHERE idx >= ? AND idx < ? ORDER BY idx"
_HASH_VALUES_SQL: Final = "SELECT hash FROM ledger_hash WHERE idx >= ? AND idx < ? ORDER BY idx"


class Block(NamedTuple):
    """What a worker found in the block of leaves from ``start``, and the tree's part in it."""

    stop: int  # where the block's entries end: its end, or the first missing entry
    gap: bool  # an entry is missing at ``stop``
    next_seq: Any  # then the next stored entry's index
    problems: list[tuple[int, str]]
    # Roots of the perfect subtrees the block's leaves split into, big first.
    border: list[bytes]
    # Checkpoint size within the block (and ``stop``) → the root of the block's leaves up to it.
    at_sizes: dict[int, bytes]
    stored: int  # stored tree hashes found within the block
    # The stored hashes above a full block, from index ``above_from``, as (index, hash) rows.
    above_from: int
    above: list[Any]
    # (index, kind, bytes) of the entries whose kinds the record checkers asked for.
    entries: list[tuple[int, str, bytes]]


class Database(NamedTuple):
    """How a worker opens the log's database: a DB-API module's ``connect`` and its arguments,
    as SQLAlchemy's dialect makes them from the URL (so that a worker imports no SQLAlchemy)."""

    module: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    qmark: bool


class _Cursor:
    """A DB-API cursor that reads rows as ``log.DriverCursor`` does."""

    def __init__(self, cursor: Any, qmark: bool) -> None:
        self.cursor, self.qmark = cursor, qmark

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        self.cursor.execute(sql if self.qmark else sql.replace("?", "%s"), tuple(params))
        return list(self.cursor.fetchall())


def check_block(
    database: Database,
    start: int,
    stop: int,
    block: int,
    sizes: Sequence[int],
    kinds: Collection[str],
) -> Block:
    """A worker's task: the entries of ``[start, stop)`` (``start`` a multiple of ``block``, a
    power of two) checked, their part of the tree recomputed and compared with the stored one,
    and the roots up to each checkpoint size of ``sizes`` within them."""
    problems: list[tuple[int, str]] = []

    def found(index: int, what: str) -> None:
        if index >= start and len(problems) < MAX_PROBLEMS:
            problems.append((index, what))

    connection = importlib.import_module(database.module).connect(*database.args, **database.kwargs)
    # The task makes no garbage cycles, but a million short-lived parsed entries would have
    # the cycle collector go through the task's rows again and again (an eighth of its time).
    gc.disable()
    try:
        driver = _Cursor(connection.cursor(), database.qmark)
        leaves, entries, gap = check_entries(driver, start, stop, kinds, found)
        end = start + len(leaves)
        levels = _levels(leaves)
        first = merkle.stored_hash_count(start)
        rows = 2 * len(leaves) - len(leaves).bit_count()
        expected = _storage_order(levels, block, rows)
        stored = compare_hashes(driver, start, end, expected, found, last=first + rows)
        above: list[Any] = []
        if len(leaves) == block:
            above = driver.rows(_HASHES_SQL, (first + rows, merkle.stored_hash_count(end)))
    finally:
        connection.close()
        gc.enable()
    at_sizes = {
        size: fold_root(_border(levels, size - start))
        for size in (*sizes, end)
        if start < size <= end
    }
    return Block(
        stop=end,
        gap=gap is not None,
        next_seq=gap[0] if gap is not None else None,
        problems=problems,
        border=_border(levels, len(leaves)),
        at_sizes=at_sizes,
        stored=stored,
        above_from=first + rows,
        above=above,
        entries=entries,
    )


class Workers:
    """Worker processes checking the blocks ``tasks`` ((start, stop, checkpoint sizes) each),
    task ``i`` by worker ``i % processes``; their ``Block``s come back in the tasks' order.

    Started as ``python -c``, not by ``multiprocessing``: a spawned child imports the parent's
    main module first, and ``dv``'s is the whole command line (3 CPU seconds per worker)."""

    def __init__(
        self,
        database: Database,
        block: int,
        kinds: Collection[str],
        tasks: Sequence[tuple[int, int, Sequence[int]]],
        processes: int,
    ) -> None:
        self.count = len(tasks)
        command = [sys.executable, "-c", f"from {__name__} import serve; serve()"]
        self.processes = [
            subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # noqa: S603 (this Python)
            for _ in range(min(processes, len(tasks)))
        ]
        for number, process in enumerate(self.processes):
            assert process.stdin is not None
            job = (database, block, tuple(kinds), tasks[number :: len(self.processes)])
            pickle.dump(job, process.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            process.stdin.close()

    def results(self) -> Iterator[Block]:
        for number in range(self.count):
            process = self.processes[number % len(self.processes)]
            assert process.stdout is not None
            try:
                result = pickle.load(process.stdout)  # noqa: S301 (from our own worker)
            except EOFError:
                raise RuntimeError(f"an audit worker stopped (exit {process.wait()})") from None
            if isinstance(result, BaseException):
                raise result
            yield result

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *_: object) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()  # the walk stopped early (a missing entry, an error)
            process.wait()
            if process.stdout is not None:
                process.stdout.close()


def serve() -> None:
    """A worker process: its job from stdin, each task's ``Block`` (or error) to stdout."""
    database, block, kinds, tasks = pickle.load(sys.stdin.buffer)  # noqa: S301 (from the walk)
    out = sys.stdout.buffer
    for start, stop, sizes in tasks:
        try:
            result: Any = check_block(database, start, stop, block, sizes, kinds)
        except Exception as error:  # the walk raises it (its type may not be picklable)
            result = RuntimeError(f"audit worker, block from {start}: {error!r}")
        pickle.dump(result, out, protocol=pickle.HIGHEST_PROTOCOL)
        out.flush()


def _levels(leaves: list[bytes]) -> list[list[bytes]]:
    """The block's tree level by level, from its leaves up to its top node (a node left without
    its pair waits on the border)."""
    levels = [leaves]
    level = leaves
    sha256 = hashlib.sha256
    while len(level) > 1:
        pairs = iter(level)
        level = [
            sha256(b"\x01" + left + right).digest()
            for left, right in zip(pairs, pairs, strict=False)
        ]
        levels.append(level)
    return levels


@functools.cache
def _row_positions(block: int) -> list[int]:
    """For a block of ``block`` leaves (a power of two), its rows in storage order (each leaf,
    then the parents it completes), as positions in its levels laid end to end."""
    offsets = []
    width, total = block, 0
    while width:
        offsets.append(total)
        total += width
        width >>= 1
    positions = []
    for leaf in range(block):
        positions.append(leaf)
        level, index = 1, leaf
        while index & 1:
            index >>= 1
            positions.append(offsets[level] + index)
            level += 1
    return positions


def _storage_order(levels: list[list[bytes]], block: int, rows: int) -> list[bytes]:
    """The first ``rows`` hashes of a block's tree in the order the log stores them."""
    flat: list[Any] = []
    for level, nodes in enumerate(levels):
        flat += nodes
        flat += [None] * ((block >> level) - len(nodes))
    return list(map(flat.__getitem__, islice(_row_positions(block), rows)))


def _border(levels: list[list[bytes]], count: int) -> list[bytes]:
    """Roots of the perfect subtrees the block's first ``count`` leaves split into, big first."""
    border = []
    covered = 0
    for level in range(count.bit_length() - 1, -1, -1):
        if count >> level & 1:
            border.append(levels[level][covered >> level])
            covered += 1 << level
    return border


def fold_root(border: Sequence[bytes]) -> bytes:
    """The root of the tree whose right border is ``border`` (big first)."""
    if not border:
        return merkle.EMPTY_ROOT
    node = border[-1]
    for left in reversed(border[:-1]):
        node = merkle.hash_children(left, node)
    return node


def compare_hashes(
    driver: Rows,
    start: int,
    stop: int,
    expected: list[bytes],
    found: Report,
    last: int | None = None,
) -> int:
    """The stored tree hashes of leaves [start, stop) (up to index ``last``) against those the
    leaves give; how many are stored."""
    first = merkle.stored_hash_count(start)
    last = merkle.stored_hash_count(stop) if last is None else last
    stored = driver.rows(_HASH_VALUES_SQL, (first, last))
    if len(stored) == last - first and list(map(itemgetter(0), stored)) == expected:
        return len(stored)  # as many rows as indexes in the range: each index is there
    by_index = dict(driver.rows(_HASHES_SQL, (first, last)))
    position = 0
    for leaf in range(start, stop):
        for _ in range((leaf ^ (leaf + 1)).bit_length()):
            idx = first + position
            if idx >= last:
                break
            if idx not in by_index:
                found(leaf, f"stored tree hash {idx} is missing")
            elif by_index[idx] != expected[position]:
                found(leaf, f"stored tree hash {idx} differs from the one the leaves give")
            position += 1
    return len(by_index)
