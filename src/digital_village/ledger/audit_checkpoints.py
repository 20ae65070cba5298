"""The audit's checks of the log's signed checkpoints."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from digital_village.ledger import note
from digital_village.ledger.audit_entries import Report


def verifiers(vkeys: Iterable[str], found: Report) -> dict[str, note.Verifier]:
    """The verifier keys ``vkeys`` by key ID; a malformed one is a finding."""
    parsed_keys = {}
    for vkey in vkeys:
        try:
            parsed = note.Verifier.parse(vkey)
            parsed_keys[parsed.key_id.hex()] = parsed
        except note.NoteError as error:
            found(-1, f"a stored verifier key is malformed: {error}")
    return parsed_keys


def check_checkpoint(
    row: Any,
    root: bytes,
    origin: str,
    verifiers: dict[str, note.Verifier],
    found: Report,
) -> None:
    """A checkpoint row (size, root_hash, note) against the root the entries give at its size:
    its root, its signature by one of ``verifiers``, its origin, its text against its row."""
    where = row.size - 1
    if row.root_hash != root:
        found(where, f"the checkpoint at size {row.size} has a root the entries do not produce")
    try:
        opened = note.open_note(row.note, list(verifiers.values()))
        checkpoint = note.Checkpoint.parse(opened.text)
    except note.NoteError as error:
        found(where, f"the checkpoint at size {row.size} fails signature checks: {error}")
        return
    except ValueError as error:
        found(where, f"the checkpoint at size {row.size} is malformed: {error}")
        return
    if checkpoint.origin != origin:
        found(where, f"the checkpoint at size {row.size} names origin {checkpoint.origin!r}")
    if checkpoint.size != row.size or checkpoint.root_hash != row.root_hash:
        found(where, f"the signed checkpoint text at size {row.size} differs from its stored row")
