"""Proofs of many entries against one checkpoint, in one answer (``GET /api/v1/ledger/proofs``).

A page shows facts from dozens or hundreds of entries; fetching a tlog-proof for each would
cost as many requests and repeat the same upper path hashes in every file. A batch proof is
one JSON document (``digital-village/batch-proof@v1``)::

    {"format": "digital-village/batch-proof@v1",
     "checkpoint": "<the signed checkpoint note, verbatim>",
     "size": <its tree size>,
     "hashes": ["<base64 hash>", ...],          every distinct proof hash once
     "entries": [{"index": 7, "entry": "<the entry's exact bytes as text>",
                  "path": [3, 0, 5]}, ...],      its RFC 9162 inclusion path, as positions
                                                 in "hashes", leaf's sibling first
     "pending": [12, ...],                       at or beyond the checkpoint: not covered yet
     "missing": [4, ...],                        below it, yet no entry is stored there
     "log_size": <entries stored>}

An entry whose bytes are not UTF-8 (only an edited one can be) comes as ``"entry_base64"``
instead of ``"entry"``. ``log_size`` beyond ``size`` for more than the moment a new checkpoint
takes to be published means the checkpoint served as current is an old one (as the monitor
concludes, ledger/monitor.py). Each entry is checked exactly as a tlog-proof is: SHA-256(0x00 ‖
bytes) must lead, by its path, to the signed root (:func:`check_batch` does it here, and
``web/static/verify.js`` ``verifyEntries`` in the reader's browser).

Every path is computed from stored hashes read in one query for the whole batch.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy.orm import Session

from digital_village.errors import Invalid, NotFound
from digital_village.ledger import log, merkle, note, reads, witnesses

FORMAT: Final = "digital-village/batch-proof@v1"
MAX_INDEXES: Final = 2000
_TERM = re.compile(r"(0|[1-9][0-9]{0,18})(?:-(0|[1-9][0-9]{0,18}))?")


def parse_indexes(text: str) -> list[int]:
    """``"3,7,10-20"`` → sorted distinct indexes; Invalid naming the bad term or the excess."""
    found: set[int] = set()
    for term in text.split(","):
        match = _TERM.fullmatch(term.strip())
        if match is None:
            raise Invalid(
                f"indexes: {term.strip()[:30]!r} is not an index or a range a-b "
                "(decimal, no leading zeros)",
                field="indexes",
            )
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        if last < first:
            raise Invalid(f"indexes: the range {term.strip()} runs backwards", field="indexes")
        if last - first + len(found) >= MAX_INDEXES:
            raise Invalid(
                f"indexes: ask for at most {MAX_INDEXES} entries at a time", field="indexes"
            )
        found.update(range(first, last + 1))
    return sorted(found)


def _stored_hashes(session: Session) -> merkle.ReadHashes:
    """Stored tree hashes by storage index, read in chunks within every backend's limits."""
    read = log.read_hashes_from(session)

    def read_chunked(indexes: Sequence[int]) -> list[bytes]:
        found: list[bytes] = []
        for start in range(0, len(indexes), reads.CHUNK):
            found += read(indexes[start : start + reads.CHUNK])
        return found

    return read_chunked


def inclusion_paths(
    indexes: Sequence[int], size: int, read_hashes: merkle.ReadHashes
) -> list[list[bytes]]:
    """The inclusion path of each leaf in the tree of ``size``, reading stored hashes once."""
    plans = [merkle.inclusion_ranges(index, size) for index in indexes]
    # Paths of nearby leaves share their upper ranges: each distinct range is hashed once.
    distinct = sorted({span for plan in plans for span in plan})
    hashed = dict(zip(distinct, merkle._hash_ranges(distinct, read_hashes), strict=True))
    return [[hashed[span] for span in plan] for plan in plans]


def batch_proof(
    session: Session, indexes: Sequence[int], size: int | None = None
) -> dict[str, Any]:
    """The batch proof of ``indexes`` against the newest checkpoint, or the one at ``size``."""
    checkpoint = (
        log.latest_checkpoint(session) if size is None else log.checkpoint_at(session, size)
    )
    if checkpoint is None:
        raise NotFound("the log is empty: no checkpoint has been signed yet")
    tree_size = int(checkpoint.size)
    covered = [index for index in indexes if index < tree_size]
    bodies = {seq: body for seq, (_, body) in reads.entries_by_seq(session, covered).items()}
    present = [index for index in covered if index in bodies]
    paths = inclusion_paths(present, tree_size, _stored_hashes(session))
    position: dict[bytes, int] = {}
    entries: list[dict[str, Any]] = []
    for index, path in zip(present, paths, strict=True):
        item: dict[str, Any] = {"index": index}
        try:
            item["entry"] = bodies[index].decode("utf-8")
        except UnicodeDecodeError:
            item["entry_base64"] = base64.b64encode(bodies[index]).decode()
        item["path"] = [position.setdefault(node, len(position)) for node in path]
        entries.append(item)
    return {
        "format": FORMAT,
        "checkpoint": witnesses.served_note(session, checkpoint).decode("utf-8"),
        "size": tree_size,
        "hashes": [base64.b64encode(node).decode() for node in position],
        "entries": entries,
        "pending": [index for index in indexes if index >= tree_size],
        "missing": [index for index in covered if index not in bodies],
        "log_size": log.entry_count(session),
    }


# --- checking a batch (what a reader's browser does; used by tests and tools) ----------------


class BatchError(ValueError):
    """A batch proof does not verify; the message names the check and the entry."""


@dataclass(frozen=True)
class CheckedBatch:
    """What a verified batch proves: each entry's bytes by index, in a checkpoint."""

    checkpoint: note.Checkpoint
    entries: dict[int, bytes]  # the proven ones
    failures: dict[int, str]  # the others, with the check that failed
    pending: tuple[int, ...]
    missing: tuple[int, ...]


def check_batch(document: dict[str, Any], verifiers: Sequence[note.Verifier]) -> CheckedBatch:
    """Verify a batch proof's signature and each entry's inclusion (an entry that fails is
    named in ``failures``; the others stand); BatchError when the document itself fails."""
    try:
        opened = note.open_note(str(document["checkpoint"]).encode(), list(verifiers))
        checkpoint = note.Checkpoint.parse(opened.text)
        hashes = [base64.b64decode(h, validate=True) for h in document["hashes"]]
        if checkpoint.size != document["size"]:
            raise BatchError(f"the document says size {document['size']}, its checkpoint another")
        entries: dict[int, bytes] = {}
        failures: dict[int, str] = {}
        for item in document["entries"]:
            index = int(item["index"])
            if "entry" in item:
                body = str(item["entry"]).encode()
            else:
                body = base64.b64decode(item["entry_base64"], validate=True)
            path = [hashes[position] for position in item["path"]]
            try:
                merkle.verify_inclusion(
                    merkle.hash_leaf(body), index, checkpoint.size, path, checkpoint.root_hash
                )
            except merkle.ProofError as error:
                failures[index] = f"entry {index}: {error}"
                continue
            entries[index] = body
    except (KeyError, TypeError, ValueError, IndexError, note.NoteError) as error:
        if isinstance(error, BatchError):
            raise
        raise BatchError(f"malformed batch proof: {error}") from error
    return CheckedBatch(
        checkpoint,
        entries,
        failures,
        tuple(int(i) for i in document.get("pending", [])),
        tuple(int(i) for i in document.get("missing", [])),
    )
