"""The C2SP tlog-witness ``add-checkpoint`` call: check a log's new checkpoint, then cosign it.

Request body (c2sp.org/tlog-witness)::

    old <size the client believes the witness last cosigned>
    <base64 consistency proof hash>        zero to 63 lines
                                            (an empty line)
    <the signed checkpoint note>

Answers, in the order the checks run: 400 for a malformed request (or an old size beyond
the checkpoint's), 404 for a log the witness does not witness, 403 when no signature
verifies against the log's keys, 409 with the size it knows (``text/x.tlog.size``) when the
old size is not the one it last cosigned, or the sizes are equal but the roots differ, 422
when the consistency proof does not verify. 200 carries the cosignature line.

The witness never cosigns two views of a log that are not consistent: it cosigns only a tree
proven to extend the one it last cosigned, and records it with a compare-and-set
(``WitnessStore.advance``) before answering.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from digital_village.ledger import merkle, note
from digital_village.ledger.cosignature import Cosigner
from digital_village.witness.store import WitnessStore

MAX_PROOF_LINES = 63
MAX_REQUEST_BYTES = 64 * 1024
SIZE_CONTENT_TYPE = "text/x.tlog.size"
_OLD_LINE = re.compile(r"old (0|[1-9][0-9]{0,19})")


class WitnessRefusal(Exception):
    """The witness does not cosign; ``status`` is the HTTP answer, ``body`` what it says."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        body: str | None = None,
        content_type: str = "",
        stale: bool = False,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        # A 409 for an old size the client had wrong: routine, the client asks again.
        self.stale = stale
        self.body = body if body is not None else detail + "\n"
        self.content_type = content_type or "text/plain; charset=utf-8"


@dataclass(frozen=True)
class AddCheckpoint:
    """A parsed add-checkpoint request."""

    old_size: int
    proof: tuple[bytes, ...]
    signed: bytes


def parse_request(body: bytes) -> AddCheckpoint:
    """Split an add-checkpoint body; WitnessRefusal(400) says what is malformed."""
    if len(body) > MAX_REQUEST_BYTES:
        raise WitnessRefusal(400, f"request larger than {MAX_REQUEST_BYTES} bytes")
    head, blank, signed = body.partition(b"\n\n")
    if not blank:
        raise WitnessRefusal(400, "malformed request: no empty line before the checkpoint")
    try:
        lines = head.decode("ascii").split("\n")
    except UnicodeDecodeError:
        raise WitnessRefusal(400, "malformed request: old size and proof must be ASCII") from None
    match = _OLD_LINE.fullmatch(lines[0])
    if match is None:
        raise WitnessRefusal(400, f"malformed request: first line {lines[0][:30]!r} is not 'old N'")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise WitnessRefusal(400, f"malformed request: more than {MAX_PROOF_LINES} proof lines")
    proof = []
    for line in lines[1:]:
        try:
            decoded = base64.b64decode(line, validate=True)
        except (binascii.Error, ValueError):
            raise WitnessRefusal(400, f"malformed proof line {line[:30]!r}") from None
        if len(decoded) != 32 or base64.b64encode(decoded).decode() != line:
            raise WitnessRefusal(400, f"malformed proof line {line[:30]!r}: not a 32-byte hash")
        proof.append(decoded)
    return AddCheckpoint(old_size=int(match.group(1)), proof=tuple(proof), signed=signed)


def conflict(known_size: int, detail: str, *, stale: bool = True) -> WitnessRefusal:
    """409 with the size the witness last cosigned, as the protocol asks."""
    return WitnessRefusal(
        409, detail, body=f"{known_size}\n", content_type=SIZE_CONTENT_TYPE, stale=stale
    )


class Witness:
    """One witness key over one store: answers add-checkpoint requests."""

    def __init__(
        self,
        store: WitnessStore,
        cosigner: Cosigner,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.cosigner = cosigner
        self.clock = clock

    def add_checkpoint(self, body: bytes) -> str:
        """Check the request and return the cosignature line(s); raise WitnessRefusal."""
        request = parse_request(body)
        try:
            parsed = note.parse_note(request.signed)
            checkpoint = note.Checkpoint.parse(parsed.text)
        except note.NoteError as error:
            raise WitnessRefusal(400, f"malformed checkpoint: {error}") from None
        state = self.store.state(checkpoint.origin)
        if state is None or not state.vkeys:
            raise WitnessRefusal(404, f"unknown log {checkpoint.origin!r}")
        try:
            note.open_note(request.signed, state.vkeys)
        except note.NoteError as error:
            raise WitnessRefusal(403, f"checkpoint signature: {error}") from None
        if request.old_size > checkpoint.size:
            raise WitnessRefusal(
                400, f"old size {request.old_size} is beyond the checkpoint's {checkpoint.size}"
            )
        if request.old_size != state.size:
            raise conflict(
                state.size, f"old size {request.old_size}, but the last cosigned is {state.size}"
            )
        self._check_consistent(request, checkpoint, state.size, state.root_hash, body)
        moved_to = self.store.advance(
            checkpoint.origin,
            expected_size=state.size,
            expected_root=state.root_hash,
            size=checkpoint.size,
            root_hash=checkpoint.root_hash,
            checkpoint=request.signed,
        )
        if moved_to is not None:
            raise conflict(moved_to, f"the last cosigned size moved to {moved_to} meanwhile")
        return self.cosigner.cosign(parsed.text, int(self.clock()))

    def _check_consistent(
        self,
        request: AddCheckpoint,
        checkpoint: note.Checkpoint,
        known_size: int,
        known_root: bytes | None,
        body: bytes,
    ) -> None:
        if known_size == 0:
            if request.proof:
                raise WitnessRefusal(422, "a consistency proof from size 0 must be empty")
            return
        assert known_root is not None
        if checkpoint.size == known_size:
            if checkpoint.root_hash != known_root:
                self.store.record_refusal(
                    checkpoint.origin, request.old_size, "same size, other root", body
                )
                raise conflict(
                    known_size, f"another root hash for size {known_size}: a fork", stale=False
                )
            return
        try:
            merkle.verify_consistency(
                known_size, checkpoint.size, list(request.proof), known_root, checkpoint.root_hash
            )
        except merkle.ProofError as error:
            self.store.record_refusal(checkpoint.origin, request.old_size, str(error), body)
            raise WitnessRefusal(
                422, f"size {checkpoint.size} is not proven consistent with {known_size}: {error}"
            ) from None
