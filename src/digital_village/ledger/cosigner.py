"""Asking the configured witnesses to cosign the newest checkpoint, in the background.

Every API process runs one ``BackgroundCosigner`` (a daemon thread polling the newest checkpoint
every ``poll`` seconds, woken at once by :meth:`BackgroundCosigner.notify` when a checkpoint is
stored). For each witness that has not cosigned the newest checkpoint it sends a C2SP
tlog-witness ``add-checkpoint`` request with the consistency proof from the size that witness
last cosigned; a 409 names the size the witness knows, and the request is made again from it.
Each witness is asked on its own worker, with short timeouts and a growing pause after a
failure, so an unreachable witness delays nothing: appends go on, checkpoints are served with
the cosignatures they have, and a witness that comes back is asked for the newest one.

Cosignature lines are verified against the witness's configured key before they are stored.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import httpx
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError, IntegrityError

from digital_village.db import Database
from digital_village.errors import DomainError
from digital_village.ledger import cosignature, merkle, note, witnesses
from digital_village.ledger.log import read_hashes_from
from digital_village.ledger.models import LedgerCheckpoint, LedgerCosignature

log = logging.getLogger("digital_village.ledger.cosigner")
POLL_SECONDS = 0.05
IDLE_POLL_SECONDS = 2.0  # when no witness is configured
TIMEOUT_SECONDS = 2.0
MAX_PAUSE_SECONDS = 30.0
MAX_CONFLICTS = 3


@dataclass(frozen=True)
class WitnessConfig:
    """What the cosigner needs of one configured witness, read once per round."""

    name: str
    vkey: str
    url: str
    known_size: int


@dataclass(frozen=True)
class Answer:
    """How one witness answered for one checkpoint."""

    witness: str
    size: int
    cosigned: bool
    detail: str
    # Not cosigned, yet no failure: the witness already cosigned a newer checkpoint of this log.
    superseded: bool = False


class WitnessUnavailable(Exception):
    """The witness did not answer (connection refused, timeout): try again later."""


def request_body(old_size: int, proof: list[bytes], signed: bytes) -> bytes:
    """A tlog-witness add-checkpoint body: old size, proof lines, a blank line, the note."""
    lines = [f"old {old_size}\n"] + [base64.b64encode(h).decode() + "\n" for h in proof]
    return "".join(lines).encode() + b"\n" + signed


def _proof_and_note(database: Database, old_size: int, size: int) -> tuple[list[bytes], bytes]:
    with database.session() as session:
        checkpoint = session.get(LedgerCheckpoint, size)
        if checkpoint is None:
            raise LookupError(f"no checkpoint of size {size}")
        proof = (
            merkle.consistency_proof(old_size, size, read_hashes_from(session))
            if 0 < old_size < size
            else []
        )
        return proof, checkpoint.note


def _valid_lines(
    verifier: cosignature.CosignatureVerifier, signed: bytes, answer: str
) -> list[tuple[str, int]]:
    """The answer's lines that are this witness's valid cosignatures on the note."""
    try:
        body = note.parse_note(signed).text
        lines = note.parse_note((body + "\n" + answer).encode()).signatures
    except note.NoteError:
        return []
    found = []
    for text, signature in zip(answer.splitlines(), lines, strict=False):
        timestamp = verifier.verify(body, signature)
        if timestamp is not None:
            found.append((text, timestamp))
    return found


def ask_witness(
    database: Database, client: httpx.Client, witness: WitnessConfig, size: int
) -> Answer:
    """Ask one witness to cosign the checkpoint of ``size``; store what it gives.

    Raises WitnessUnavailable when the witness cannot be reached; every other outcome
    (cosigned, refused, a witness ahead of this log) is recorded on the witness's row.
    """
    verifier = cosignature.CosignatureVerifier.parse(witness.vkey)
    old_size = witness.known_size
    detail = ""
    for _ in range(MAX_CONFLICTS):
        if old_size > size:
            if _has_checkpoint(database, old_size):
                # Another process of this log had a newer checkpoint cosigned meanwhile.
                detail = f"it has cosigned the newer size {old_size} already"
                return Answer(witness.name, size, False, detail, superseded=True)
            detail = (
                f"the witness has cosigned size {old_size}, beyond this log's checkpoints "
                f"(newest {size}): was the log rolled back?"
            )
            break
        proof, signed = _proof_and_note(database, old_size, size)
        try:
            response = client.post(
                witness.url + "/add-checkpoint", content=request_body(old_size, proof, signed)
            )
        except httpx.HTTPError as error:
            _record(database, witness.name, None, f"unreachable: {error}")
            raise WitnessUnavailable(f"{witness.name}: {error}") from error
        if response.status_code == 200:
            lines = _valid_lines(verifier, signed, response.text)
            if not lines:
                detail = "answered 200 without a valid cosignature from its key"
                break
            _store(database, witness.name, verifier.key_id, size, lines)
            return Answer(witness.name, size, True, "cosigned")
        if response.status_code == 409:
            known = response.text.strip()
            if not known.isdigit():
                detail = f"answered 409 without a size: {known[:100]!r}"
                break
            if int(known) == old_size:
                detail = (
                    f"refused: it cosigned another tree of size {old_size} than this log's "
                    "(this log's history differs from what it saw)"
                )
                break
            old_size = int(known)
            _record(database, witness.name, old_size, None)
            continue
        detail = f"refused with {response.status_code}: {response.text.strip()[:300]}"
        break
    else:
        detail = f"still in conflict after {MAX_CONFLICTS} tries"
    _record(database, witness.name, None, detail)
    return Answer(witness.name, size, False, detail)


def _has_checkpoint(database: Database, size: int) -> bool:
    with database.session() as session:
        return session.get(LedgerCheckpoint, size) is not None


def _record(database: Database, name: str, known_size: int | None, error: str | None) -> None:
    with database.transaction(write=True) as session:
        witnesses.record_contact(session, name=name, known_size=known_size, error=error)


def _store(
    database: Database, name: str, key_id: bytes, size: int, lines: list[tuple[str, int]]
) -> None:
    line, signed_at = lines[0]
    try:
        with database.transaction(write=True) as session:
            witnesses.record_cosignature(
                session, witness=name, size=size, line=line, key_id=key_id, signed_at=signed_at
            )
            witnesses.record_contact(session, name=name, known_size=size, error=None)
    except IntegrityError:  # another process stored this witness's line first
        log.debug("cosignature of %s at size %d already stored", name, size)


def pending(database: Database) -> tuple[int | None, list[WitnessConfig], int]:
    """The newest checkpoint's size, the witnesses that have not cosigned it, and how many
    witnesses are configured."""
    with database.session() as session:
        configured = witnesses.configured(session)
        size = session.scalar(select(func.max(LedgerCheckpoint.size)))
        if size is None or not configured:
            return size, [], len(configured)
        done = set(
            session.scalars(select(LedgerCosignature.witness).where(LedgerCosignature.size == size))
        )
        behind = [
            WitnessConfig(w.name, w.vkey, w.url, int(w.known_size))
            for w in configured
            if w.name not in done
        ]
    return int(size), behind, len(configured)


def make_client(timeout: float = TIMEOUT_SECONDS) -> httpx.Client:
    """An HTTP client with short timeouts and kept-alive connections to each witness."""
    return httpx.Client(
        timeout=httpx.Timeout(timeout, connect=min(timeout, 1.0)),
        headers={"Content-Type": "text/plain; charset=utf-8"},
    )


def cosign_newest(database: Database, client: httpx.Client) -> list[Answer]:
    """Ask every witness behind the newest checkpoint, one after another (``dv`` and tests)."""
    size, behind, _ = pending(database)
    answers = []
    for witness in behind:
        assert size is not None
        try:
            answers.append(ask_witness(database, client, witness, size))
        except WitnessUnavailable as error:
            answers.append(Answer(witness.name, size, False, f"unreachable: {error}"))
    return answers


class BackgroundCosigner:
    """A daemon thread that keeps the newest checkpoint cosigned by every reachable witness."""

    def __init__(
        self,
        database: Database,
        *,
        poll: float = POLL_SECONDS,
        timeout: float = TIMEOUT_SECONDS,
        max_pause: float = MAX_PAUSE_SECONDS,
    ) -> None:
        self.database = database
        self.poll = poll
        self.max_pause = max_pause
        self.client = make_client(timeout)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._busy: set[str] = set()
        self._pause: dict[str, float] = {}
        self._next_try: dict[str, float] = {}
        # The size each witness last cosigned for this process: newer than a row read while
        # that answer was being stored, which would cost a 409 and a second round trip.
        self._cosigned: dict[str, int] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="dv-cosigner")
        self._thread = threading.Thread(target=self._run, name="dv-cosigner", daemon=True)

    def start(self) -> BackgroundCosigner:
        self._thread.start()
        return self

    def notify(self) -> None:
        """A checkpoint was stored: look now rather than at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.client.close()

    def _run(self) -> None:
        delay = self.poll
        while not self._stop.is_set():
            self._wake.wait(delay)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                delay = self.poll if self.round() else IDLE_POLL_SECONDS
            except (DBAPIError, DomainError) as error:
                # The database is away (a restart): look again later, without a traceback.
                log.warning("cannot read the newest checkpoint to cosign: %s", error)
                delay = IDLE_POLL_SECONDS
            except Exception:
                log.exception("asking witnesses to cosign failed")
                delay = IDLE_POLL_SECONDS

    def round(self) -> bool:
        """Hand each witness behind the newest checkpoint to a worker; False if none is set."""
        size, behind, configured = pending(self.database)
        now = time.monotonic()
        with self._lock:
            for witness in behind:
                if witness.name in self._busy or now < self._next_try.get(witness.name, 0.0):
                    continue
                assert size is not None
                known = max(witness.known_size, self._cosigned.get(witness.name, 0))
                if known >= size:
                    continue
                self._busy.add(witness.name)
                self._pool.submit(self._ask, replace(witness, known_size=known), size)
        return configured > 0

    def _ask(self, witness: WitnessConfig, size: int) -> None:
        pause = 0.0
        try:
            answer = ask_witness(self.database, self.client, witness, size)
            if answer.cosigned:
                with self._lock:
                    self._cosigned[witness.name] = max(size, self._cosigned.get(witness.name, 0))
            if not answer.cosigned and not answer.superseded:
                log.warning(
                    "witness %s did not cosign size %d: %s", answer.witness, size, answer.detail
                )
                pause = self._longer_pause(witness.name)
        except WitnessUnavailable as error:
            log.info("witness unreachable: %s", error)
            pause = self._longer_pause(witness.name)
        except Exception:
            log.exception("asking witness %s failed", witness.name)
            pause = self._longer_pause(witness.name)
        with self._lock:
            if pause:
                self._next_try[witness.name] = time.monotonic() + pause
            else:
                self._pause.pop(witness.name, None)
                self._next_try.pop(witness.name, None)
            self._busy.discard(witness.name)
        if not pause:
            self._wake.set()  # the log may have moved on while this witness was asked

    def _longer_pause(self, name: str) -> float:
        with self._lock:
            pause = min(self.max_pause, max(0.25, self._pause.get(name, 0.0) * 2))
            self._pause[name] = pause
            return pause
