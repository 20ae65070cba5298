"""Offline verification of ledger proofs: standard library plus ``cryptography``.

Given a ``.tlog-proof`` file and the log's verifier key, ``verify_proof`` checks,
in this order, and stops at the first failure:

1. the file parses (c2sp.org/tlog-proof@v1, see ``proof.py``);
2. the checkpoint note is signed by the verifier key and parses as a
   c2sp.org/tlog-checkpoint (and has the expected origin, if one is given);
3. the entry is included at the proof's index in the checkpointed tree. The
   entry is, by priority: the ``entry`` argument, the ``leaf_hash`` argument,
   or the ``extra`` data of the proof file (which carries the entry bytes);
4. if an earlier checkpoint is given: it is signed by the same key, has the
   same origin, and is consistent with the proof's checkpoint. Equal sizes need
   equal roots; different sizes need a consistency proof (a
   ``digital-village/consistency-proof@v1`` file), since tlog-proof has no
   place for one;
5. if witness keys are given: at least ``quorum`` of those witnesses cosigned
   the checkpoint (c2sp.org/tlog-cosignature, see ``cosignature.py``). The
   verifier, not the log, chooses the witnesses and the quorum.

Every failure raises VerificationError with a message naming the failed step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from digital_village.ledger.cosignature import WitnessCheck, check_cosignatures
from digital_village.ledger.merkle import (
    ProofError,
    hash_leaf,
    verify_consistency,
    verify_inclusion,
)
from digital_village.ledger.note import Checkpoint, NoteError, Verifier, open_note
from digital_village.ledger.proof import ConsistencyProof, ProofFormatError, TlogProof


class VerificationError(Exception):
    """A proof did not verify; the message names the check that failed."""


@dataclass(frozen=True)
class VerifiedProof:
    """What a successful verification established."""

    checkpoint: Checkpoint
    signers: tuple[str, ...]
    index: int
    leaf_hash: bytes
    entry: bytes | None
    previous: Checkpoint | None = None
    witnesses: WitnessCheck | None = None

    @property
    def origin(self) -> str:
        """The log's origin line."""
        return self.checkpoint.origin

    @property
    def tree_size(self) -> int:
        """Size of the tree the entry was proven in."""
        return self.checkpoint.size


def verify_proof(
    proof_text: bytes,
    vkey: str | Sequence[str],
    *,
    entry: bytes | None = None,
    leaf_hash: bytes | None = None,
    previous_checkpoint: bytes | None = None,
    consistency_proof: bytes | ConsistencyProof | None = None,
    origin: str | None = None,
    witnesses: Sequence[str] = (),
    quorum: int | None = None,
) -> VerifiedProof:
    """Verify a tlog-proof file offline; return what it proves or raise VerificationError.

    ``vkey`` is the log's verifier key string (or several, e.g. across a key
    rotation). ``entry`` is the logged entry's exact bytes and ``leaf_hash`` its
    RFC 9162 leaf hash; pass at most one, or neither to use the entry carried in
    the file. ``previous_checkpoint`` is a signed checkpoint seen earlier (older
    or newer); ``consistency_proof`` is the consistency proof file between the
    two sizes, needed unless they are equal. ``origin`` pins the log's origin.
    ``witnesses`` are witness verifier keys (cosignature/v1) and ``quorum`` how many
    of them must have cosigned the checkpoint (default: all of them).
    """
    if entry is not None and leaf_hash is not None:
        raise ValueError("pass entry or leaf_hash, not both")
    if consistency_proof is not None and previous_checkpoint is None:
        raise ValueError("a consistency proof needs the previous checkpoint it starts from")
    verifiers = _parse_vkeys(vkey)
    try:
        proof = TlogProof.parse(proof_text)
    except ProofFormatError as error:
        raise VerificationError(f"malformed proof file: {error}") from None
    checkpoint, signers = _open_checkpoint(proof.checkpoint, verifiers, "checkpoint")
    if origin is not None and checkpoint.origin != origin:
        raise VerificationError(f"checkpoint is for log {checkpoint.origin!r}, expected {origin!r}")

    if entry is not None:
        leaf = hash_leaf(entry)
    elif leaf_hash is not None:
        leaf = leaf_hash
    elif proof.extra is not None:
        entry = proof.extra
        leaf = hash_leaf(entry)
    else:
        raise VerificationError(
            "proof file carries no entry (no extra line): pass the entry to check"
        )
    try:
        verify_inclusion(
            leaf, proof.index, checkpoint.size, proof.inclusion_proof, checkpoint.root_hash
        )
    except ProofError as error:
        raise VerificationError(
            f"entry is not proven at index {proof.index} of {checkpoint.origin!r} "
            f"size {checkpoint.size}: {error}"
        ) from None

    previous = None
    if previous_checkpoint is not None:
        previous = _check_previous(checkpoint, previous_checkpoint, consistency_proof, verifiers)
    witnessed = None
    if witnesses or quorum:
        witnessed = check_witnesses(proof.checkpoint, witnesses, quorum)
    return VerifiedProof(
        checkpoint=checkpoint,
        signers=signers,
        index=proof.index,
        leaf_hash=leaf,
        entry=entry,
        previous=previous,
        witnesses=witnessed,
    )


def check_witnesses(signed: bytes, witnesses: Sequence[str], quorum: int | None) -> WitnessCheck:
    """Check that ``quorum`` of the witnesses cosigned the (already opened) checkpoint note."""
    needed = len(witnesses) if quorum is None else quorum
    if needed > len(witnesses):
        raise VerificationError(
            f"a quorum of {needed} needs at least {needed} witness keys, {len(witnesses)} given"
        )
    try:
        result = check_cosignatures(signed, witnesses, needed)
    except (NoteError, ValueError) as error:
        raise VerificationError(f"witness keys or cosignatures: {error}") from None
    if not result.met:
        names = ", ".join(name for name, _ in result.cosigned) or "none"
        bad = f"; invalid cosignature from {', '.join(result.invalid)}" if result.invalid else ""
        raise VerificationError(
            f"checkpoint is not witnessed: {len(result.cosigned)} of the {needed} required "
            f"witnesses cosigned it (cosigned by: {names}{bad})"
        )
    return result


def _parse_vkeys(vkey: str | Sequence[str]) -> list[Verifier]:
    keys = [vkey] if isinstance(vkey, str) else list(vkey)
    if not keys:
        raise VerificationError("no verifier key given")
    try:
        return [Verifier.parse(key) for key in keys]
    except NoteError as error:
        raise VerificationError(f"bad verifier key: {error}") from None


def _open_checkpoint(
    note: bytes, verifiers: list[Verifier], what: str
) -> tuple[Checkpoint, tuple[str, ...]]:
    try:
        opened = open_note(note, verifiers)
    except NoteError as error:
        raise VerificationError(f"{what} signature: {error}") from None
    try:
        return Checkpoint.parse(opened.text), opened.signers
    except NoteError as error:
        raise VerificationError(f"{what}: {error}") from None


def _check_previous(
    current: Checkpoint,
    previous_note: bytes,
    consistency: bytes | ConsistencyProof | None,
    verifiers: list[Verifier],
) -> Checkpoint:
    previous, _ = _open_checkpoint(previous_note, verifiers, "previous checkpoint")
    if previous.origin != current.origin:
        raise VerificationError(
            f"previous checkpoint is for log {previous.origin!r}, not {current.origin!r}"
        )
    older, newer = sorted((previous, current), key=lambda checkpoint: checkpoint.size)
    hashes: tuple[bytes, ...] = ()
    if older.size != newer.size:
        if consistency is None:
            raise VerificationError(
                f"a consistency proof from size {older.size} to {newer.size} is needed "
                "to check the previous checkpoint"
            )
        if isinstance(consistency, bytes):
            try:
                consistency = ConsistencyProof.parse(consistency)
            except ProofFormatError as error:
                raise VerificationError(f"malformed consistency proof: {error}") from None
        if (consistency.first, consistency.second) != (older.size, newer.size):
            raise VerificationError(
                f"consistency proof is from size {consistency.first} to "
                f"{consistency.second}, but the checkpoints have sizes "
                f"{older.size} and {newer.size}"
            )
        hashes = consistency.hashes
    try:
        verify_consistency(older.size, newer.size, hashes, older.root_hash, newer.root_hash)
    except ProofError as error:
        raise VerificationError(
            f"checkpoints of size {older.size} and {newer.size} are not consistent "
            f"(the log may have forked): {error}"
        ) from None
    return previous
