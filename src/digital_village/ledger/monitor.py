"""Watching a log from outside: behind ``dv ledger monitor``.

A monitor keeps the newest checkpoint it has seen (its *state*) and, at each look, fetches the
checkpoint the server serves as current. The server is trusted for nothing; an alert is raised
when the served checkpoint

1. is not signed by the log's verifier key (or is not a checkpoint);
2. is older than the one kept: a smaller tree (a signed but stale checkpoint replayed as
   current, or a log rolled back);
3. has the kept size but another root: two different trees of one size (a split view);
4. is larger but the server cannot prove it extends the kept one (a rewritten history);
5. is stale against the server's own log: the server serves entry ``size`` (the checkpoint
   claims there are only ``size`` entries), and no newer checkpoint appears within
   ``PUBLISH_GRACE_S``. An honest server's publisher signs a checkpoint covering an entry within
   a second of its append (ledger/publisher.py), so an entry its current checkpoint still does
   not cover after that is a checkpoint held back. This catches a replayed checkpoint even on a
   monitor's very first look.

Standard library plus the ledger's note, merkle and proof modules (``cryptography`` only).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from digital_village.ledger import cosignature, merkle, note
from digital_village.ledger.proof import ConsistencyProof, ProofFormatError

CHECKPOINT_PATH = "/api/v1/ledger/checkpoint"
# How many times a look re-reads the checkpoint while the log grows under it.
FRESH_LOOKS = 5
# How long a look waits for the witnesses to cosign a new checkpoint, in steps.
WITNESS_WAITS = (0.25, 0.5, 1.0, 1.0, 2.0)
# How long a server may take to publish a checkpoint over an entry it serves (its publisher
# promises one second), and how often the monitor looks meanwhile.
PUBLISH_GRACE_S = 2.0
GRACE_STEP_S = 0.25

# Fetch a path of the server: its body, or None when the server answers 404.
Fetch = Callable[[str], bytes | None]


class MonitorAlert(Exception):
    """The server's log misbehaved; the message says how."""


@dataclass(frozen=True)
class Look:
    """One look at the server that raised no alert."""

    checkpoint: note.Checkpoint
    signed: bytes
    previous_size: int | None
    cosigned_by: tuple[str, ...] = field(default=())

    @property
    def summary(self) -> str:
        size = self.checkpoint.size
        witnessed = f"; witnessed by {', '.join(self.cosigned_by)}" if self.cosigned_by else ""
        if self.previous_size is None:
            return f"first checkpoint: size {size}{witnessed}"
        if self.previous_size == size:
            return f"unchanged at size {size}{witnessed}"
        return f"consistent: size {self.previous_size} -> {size}{witnessed}"


@dataclass(frozen=True)
class WitnessPolicy:
    """The witnesses a monitor trusts and how many of them must cosign."""

    keys: Sequence[str] = ()
    quorum: int = 0
    wait: Callable[[float], None] = time.sleep

    def check(self, signed: bytes) -> cosignature.WitnessCheck | None:
        if not self.keys or self.quorum <= 0:
            return None
        return cosignature.check_cosignatures(signed, self.keys, self.quorum)


def _open(signed: bytes, verifier: str, what: str) -> note.Checkpoint:
    try:
        return note.Checkpoint.parse(note.open_note(signed, verifier).text)
    except (note.NoteError, ValueError) as error:
        raise MonitorAlert(f"{what} does not verify: {error}") from None


def _required(fetch: Fetch, path: str) -> bytes:
    body = fetch(path)
    if body is None:
        raise MonitorAlert(f"the server has no {path} (404)")
    return body


def _served(
    fetch: Fetch, verifier: str, policy: WitnessPolicy = WitnessPolicy()
) -> tuple[note.Checkpoint, bytes]:
    signed = _required(fetch, CHECKPOINT_PATH)
    checkpoint = _open(signed, verifier, "the server's checkpoint")
    check = policy.check(signed)
    for pause in WITNESS_WAITS if check is not None else ():
        if check is None or check.met:
            break
        # A new checkpoint is cosigned a round trip after it is published.
        policy.wait(pause)
        signed = _required(fetch, CHECKPOINT_PATH)
        checkpoint = _open(signed, verifier, "the server's checkpoint")
        check = policy.check(signed)
    if check is not None and not check.met:
        invalid = f"; invalid cosignature from {', '.join(check.invalid)}" if check.invalid else ""
        raise MonitorAlert(
            f"the checkpoint of size {checkpoint.size} is not witnessed: "
            f"{len(check.cosigned)} of the {check.quorum} required witnesses cosigned it "
            f"(missing: {', '.join(check.missing)}{invalid})"
        )
    return checkpoint, signed


def _not_older(current: note.Checkpoint, kept: note.Checkpoint | None) -> None:
    if kept is None:
        return
    if kept.origin != current.origin:
        raise MonitorAlert(f"the server's log is {current.origin!r}, not {kept.origin!r}")
    if current.size < kept.size:
        raise MonitorAlert(
            f"the log went back from size {kept.size} to {current.size}: "
            "an old checkpoint is being served as current"
        )


def _fresh(
    fetch: Fetch,
    verifier: str,
    current: note.Checkpoint,
    signed: bytes,
    policy: WitnessPolicy,
    sleep: Callable[[float], None],
) -> tuple[note.Checkpoint, bytes]:
    """Re-read the checkpoint while the server shows entries it does not cover, giving its
    publisher PUBLISH_GRACE_S each time to sign a newer one."""
    for _ in range(FRESH_LOOKS):
        if fetch(f"/api/v1/ledger/entries/{current.size}") is None:
            return current, signed
        newer, again = _served(fetch, verifier, policy)
        waited = 0.0
        while newer.size <= current.size and waited < PUBLISH_GRACE_S:
            sleep(GRACE_STEP_S)
            waited += GRACE_STEP_S
            newer, again = _served(fetch, verifier, policy)
        if newer.size <= current.size:
            raise MonitorAlert(
                f"the server serves entry {current.size} but a checkpoint of size "
                f"{current.size} as current, and no newer one within {PUBLISH_GRACE_S:g} s: "
                "an old signed checkpoint is being replayed"
            )
        current, signed = newer, again
    # The log grew at every look: busy, not stale.
    return current, signed


def look(
    fetch: Fetch,
    verifier: str,
    seen: bytes | None,
    policy: WitnessPolicy = WitnessPolicy(),
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> Look:
    """Check the server's current checkpoint against the newest one seen (None: first look)."""
    kept = None if seen is None else _open(seen, verifier, "the kept checkpoint")
    current, signed = _served(fetch, verifier, policy)
    _not_older(current, kept)
    current, signed = _fresh(fetch, verifier, current, signed, policy, sleep)
    _not_older(current, kept)
    check = policy.check(signed)
    cosigned_by = tuple(name for name, _ in check.cosigned) if check else ()
    if kept is None:
        return Look(current, signed, None, cosigned_by)
    if current.size == kept.size:
        if current.root_hash != kept.root_hash:
            raise MonitorAlert(f"two different trees of size {current.size} (split view)")
        return Look(current, signed, kept.size, cosigned_by)
    proof_text = _required(
        fetch, f"/api/v1/ledger/consistency?first={kept.size}&second={current.size}"
    )
    try:
        proof = ConsistencyProof.parse(proof_text)
        if (proof.first, proof.second) != (kept.size, current.size):
            raise merkle.ProofError("the server answered for other sizes")
        merkle.verify_consistency(
            kept.size, current.size, list(proof.hashes), kept.root_hash, current.root_hash
        )
    except (ProofFormatError, merkle.ProofError) as error:
        raise MonitorAlert(
            f"size {current.size} is not consistent with size {kept.size}: {error}"
        ) from None
    return Look(current, signed, kept.size, cosigned_by)


class State:
    """The folder where a monitor keeps the verifier key and the newest checkpoint seen."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.key_file = folder / "vkey"
        self.seen_file = folder / "checkpoint"

    def seen(self) -> bytes | None:
        return self.seen_file.read_bytes() if self.seen_file.is_file() else None

    def keep(self, signed: bytes) -> None:
        """Replace the kept checkpoint atomically: a crash never leaves half a file."""
        self.folder.mkdir(parents=True, exist_ok=True)
        partial = self.seen_file.with_suffix(".partial")
        partial.write_bytes(signed)
        os.replace(partial, self.seen_file)
