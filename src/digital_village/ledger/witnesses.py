"""The witnesses the log asks to cosign its checkpoints, and the cosignatures they gave.

The log only collects cosignatures and serves them as extra signature lines of its checkpoint
notes (c2sp.org/tlog-cosignature). Whether a checkpoint is *witnessed* is for each verifier to
decide with its own keys and quorum; the log's ``quorum`` only marks what it serves.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from digital_village.db import utcnow
from digital_village.errors import Conflict, Invalid, NotFound
from digital_village.ledger import cosignature, note
from digital_village.ledger.models import LedgerCheckpoint, LedgerCosignature, LedgerWitness


def add(*, session: Session, name: str, vkey: str, url: str) -> LedgerWitness:
    """Configure a witness: ``name`` is the operator's label, ``vkey`` its cosigning key."""
    name = name.strip()
    if not name or len(name) > 100:
        raise Invalid("a witness needs a name of 1 to 100 characters", field="name")
    try:
        verifier = cosignature.CosignatureVerifier.parse(vkey)
    except note.NoteError as error:
        raise Invalid(f"not a witness (cosignature/v1) key: {error}", field="vkey") from None
    if not url.startswith(("http://", "https://")):
        raise Invalid("the witness URL must start with http:// or https://", field="url")
    if session.get(LedgerWitness, name) is not None:
        raise Conflict(f"a witness named {name!r} is already configured")
    witness = LedgerWitness(name=name, vkey=verifier.to_string(), url=url.rstrip("/"), known_size=0)
    session.add(witness)
    session.flush()
    return witness


def remove(*, session: Session, name: str) -> None:
    """Stop asking a witness (its cosignatures already given stay on their checkpoints)."""
    witness = session.get(LedgerWitness, name)
    if witness is None:
        raise NotFound(f"no witness named {name!r}")
    session.delete(witness)
    session.flush()


def configured(session: Session) -> list[LedgerWitness]:
    """Every configured witness, by name."""
    return list(session.scalars(select(LedgerWitness).order_by(LedgerWitness.name)))


def cosignature_lines(session: Session, size: int) -> list[str]:
    """The stored cosignature lines on the checkpoint of this size, by witness name."""
    query = (
        select(LedgerCosignature.line)
        .where(LedgerCosignature.size == size)
        .order_by(LedgerCosignature.witness)
    )
    return list(session.scalars(query))


def served_note(session: Session, checkpoint: LedgerCheckpoint) -> bytes:
    """The checkpoint's note with the log's signature and every cosignature stored for it."""
    lines = cosignature_lines(session, checkpoint.size)
    return cosignature.add_signature_lines(checkpoint.note, lines) if lines else checkpoint.note


@dataclass(frozen=True)
class WitnessStatus:
    """Which configured witnesses cosigned a checkpoint, against the log's quorum."""

    size: int
    quorum: int
    configured: int
    cosigned_by: tuple[str, ...]

    @property
    def witnessed(self) -> bool:
        return self.quorum > 0 and len(self.cosigned_by) >= self.quorum


def status(session: Session, size: int, quorum: int) -> WitnessStatus:
    """How far the checkpoint of this size is witnessed by the configured witnesses."""
    names = {witness.name for witness in configured(session)}
    query = select(LedgerCosignature.witness).where(LedgerCosignature.size == size)
    cosigned = tuple(sorted(name for name in session.scalars(query) if name in names))
    return WitnessStatus(size=size, quorum=quorum, configured=len(names), cosigned_by=cosigned)


def record_cosignature(
    session: Session, *, witness: str, size: int, line: str, key_id: bytes, signed_at: int
) -> bool:
    """Keep a verified cosignature line; False if that witness's line was already kept."""
    if session.get(LedgerCosignature, (size, witness)) is not None:
        return False
    session.add(
        LedgerCosignature(
            size=size,
            witness=witness,
            key_id=key_id.hex(),
            line=line.rstrip("\n"),
            signed_at=signed_at,
        )
    )
    return True


def record_contact(
    session: Session, *, name: str, known_size: int | None, error: str | None
) -> None:
    """Note what a witness last answered: the size it knows, or why it did not cosign."""
    witness = session.get(LedgerWitness, name)
    if witness is None:  # removed meanwhile
        return
    if known_size is not None:
        witness.known_size = known_size
    witness.last_error = error[:500] if error else None
    witness.last_contact = utcnow()


def since(moment: dt.datetime | None) -> str:
    """A short 'how long ago' for listings."""
    if moment is None:
        return "never"
    seconds = int((utcnow() - moment).total_seconds())
    return f"{seconds} s ago" if seconds < 120 else f"{seconds // 60} min ago"
