"""Public HTTP routes of the ledger: checkpoints, entries, proofs and the verifier key.

Everything here is public by design: anyone may check the log. The private key is never served.
"""

from __future__ import annotations

import datetime as dt
import gzip
from typing import Annotated

import orjson
from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel
from sqlalchemy.orm import Session

from digital_village.api.deps import SessionDep, SettingsDep
from digital_village.config import Settings
from digital_village.errors import NotFound
from digital_village.ledger import batch, log, witnesses
from digital_village.ledger.dependencies import LedgerDep

router = APIRouter(prefix="/api/v1/ledger", tags=["ledger"])
TEXT = "text/plain; charset=utf-8"
MAX_INDEX = 2**63 - 1
Index = Annotated[int, Path(ge=0, le=MAX_INDEX, description="a leaf index of the log")]
Size = Annotated[int, Path(ge=1, le=MAX_INDEX, description="a tree size of the log")]


class WitnessInfo(BaseModel):
    quorum: int
    configured: int
    cosigned_by: list[str]
    witnessed: bool


class LedgerInfo(BaseModel):
    origin: str
    size: int
    root_hash: str | None
    verifier_key: str
    verifier_keys: list[str]
    checkpoint_url: str
    # The tile prefix of a mirror the pages take their proofs from (DV_LEDGER_MIRROR_URL).
    mirror_url: str | None = None
    witnesses: WitnessInfo


class WitnessRow(BaseModel):
    name: str
    vkey: str
    url: str
    known_size: int
    last_error: str | None
    last_contact: dt.datetime | None


def _witness_info(session: Session, settings: Settings, size: int) -> WitnessInfo:
    status = witnesses.status(session, size, settings.witness_quorum)
    return WitnessInfo(
        quorum=status.quorum,
        configured=status.configured,
        cosigned_by=list(status.cosigned_by),
        witnessed=status.witnessed,
    )


def _witness_headers(info: WitnessInfo) -> dict[str, str]:
    # What the log itself counts; a verifier checks the lines against its own witness keys.
    return {
        "DV-Witnessed": "yes" if info.witnessed else "no",
        "DV-Cosignatures": str(len(info.cosigned_by)),
    }


@router.get("", response_model=LedgerInfo)
def info(session: SessionDep, settings: SettingsDep, ledger: LedgerDep) -> LedgerInfo:
    """The log's origin, size, root, the verifier key that signs its checkpoints, and how far
    its newest checkpoint is witnessed."""
    latest = log.latest_checkpoint(session)
    return LedgerInfo(
        origin=ledger.origin,
        size=latest.size if latest else 0,
        root_hash=latest.root_hash.hex() if latest else None,
        verifier_key=ledger.vkey,
        verifier_keys=log.verifier_keys(session) or [ledger.vkey],
        checkpoint_url="/api/v1/ledger/checkpoint",
        mirror_url=settings.ledger_mirror_url,
        witnesses=_witness_info(session, settings, latest.size if latest else 0),
    )


@router.get("/checkpoint", response_class=Response, responses={200: {"content": {TEXT: {}}}})
def checkpoint(session: SessionDep, settings: SettingsDep) -> Response:
    """The newest signed checkpoint (C2SP tlog-checkpoint in a signed note), with the
    cosignature lines of the witnesses that have cosigned it so far (``DV-Witnessed`` says
    whether the log's quorum is met)."""
    latest = log.latest_checkpoint(session)
    if latest is None:
        raise NotFound("the log is empty: no checkpoint has been signed yet")
    headers = {"Cache-Control": "no-cache"}
    headers.update(_witness_headers(_witness_info(session, settings, latest.size)))
    return Response(witnesses.served_note(session, latest), media_type=TEXT, headers=headers)


@router.get(
    "/checkpoints/{size}", response_class=Response, responses={200: {"content": {TEXT: {}}}}
)
def checkpoint_at(size: Size, session: SessionDep, settings: SettingsDep) -> Response:
    """The checkpoint signed at exactly this tree size (every one is kept), with its
    cosignatures."""
    signed = log.checkpoint_at(session, size)
    info = _witness_info(session, settings, size)
    # Cosignatures may still come while some configured witness has not given one.
    complete = len(info.cosigned_by) >= info.configured
    headers = {"Cache-Control": "max-age=31536000" if complete else "max-age=10"}
    headers.update(_witness_headers(info))
    return Response(witnesses.served_note(session, signed), media_type=TEXT, headers=headers)


class PolicyWitness(BaseModel):
    name: str
    vkey: str


class WitnessPolicy(BaseModel):
    quorum: int
    witnesses: list[PolicyWitness]


@router.get("/witness-policy", response_model=WitnessPolicy)
def witness_policy(settings: SettingsDep) -> WitnessPolicy:
    """The witnesses the site's pages trust and how many must cosign (``DV_PAGE_WITNESSES``,
    ``DV_PAGE_WITNESS_QUORUM``): the operator's configuration, set from what each witness
    publishes, never read from the log's own witness table."""
    return WitnessPolicy(
        quorum=settings.page_witness_quorum,
        witnesses=[PolicyWitness(name=w.name, vkey=w.vkey) for w in settings.page_witnesses],
    )


@router.get("/witnesses", response_model=list[WitnessRow])
def witness_list(session: SessionDep) -> list[WitnessRow]:
    """The witnesses this log asks to cosign, and what each last answered. Verifiers take
    witness keys from the witnesses themselves, not from here."""
    return [
        WitnessRow(
            name=w.name,
            vkey=w.vkey,
            url=w.url,
            known_size=w.known_size,
            last_error=w.last_error,
            last_contact=w.last_contact,
        )
        for w in witnesses.configured(session)
    ]


@router.get("/key", response_class=Response, responses={200: {"content": {TEXT: {}}}})
def verifier_key(ledger: LedgerDep) -> Response:
    """The verifier key line (``<name>+<key id>+<base64>``) for `dv verify --vkey`."""
    return Response(ledger.vkey + "\n", media_type=TEXT)


@router.get(
    "/entries/{seq}",
    response_class=Response,
    responses={200: {"content": {"application/json": {}}}},
)
def entry(seq: Index, session: SessionDep) -> Response:
    """The entry's exact bytes: canonical JSON, as hashed into the tree."""
    stored = log.get_entry(session, seq)
    return Response(
        stored.body, media_type="application/json", headers={"Cache-Control": "max-age=31536000"}
    )


@router.get(
    "/entries/{seq}/proof", response_class=Response, responses={200: {"content": {TEXT: {}}}}
)
def inclusion_proof(
    seq: Index,
    session: SessionDep,
    size: Annotated[
        int | None,
        Query(ge=1, le=MAX_INDEX, description="prove against the checkpoint at this size"),
    ] = None,
) -> Response:
    """A C2SP tlog-proof of the entry (its bytes in ``extra``), for `dv verify` or a browser."""
    body = log.inclusion_proof_file(session, seq, size)
    return Response(
        body,
        media_type=TEXT,
        headers={"Content-Disposition": f'attachment; filename="entry-{seq}.tlog-proof"'},
    )


@router.get("/proofs", responses={200: {"content": {"application/json": {}}}})
def batch_proof(
    request: Request,
    session: SessionDep,
    indexes: Annotated[
        str,
        Query(
            max_length=20_000,
            description="entry indexes and ranges, e.g. 3,7,10-20 (at most 2000 entries)",
        ),
    ],
    size: Annotated[
        int | None,
        Query(ge=1, le=MAX_INDEX, description="prove against the checkpoint at this size"),
    ] = None,
) -> Response:
    """Inclusion proofs of many entries against one checkpoint, sharing their path hashes
    (``digital-village/batch-proof@v1``, docs/LEDGER.md): what a page's verifier asks for."""
    document = batch.batch_proof(session, batch.parse_indexes(indexes), size)
    # Against a named size the answer never changes; the newest checkpoint moves on.
    headers = {
        "Cache-Control": "max-age=31536000, immutable" if size is not None else "no-cache",
        "Vary": "Accept-Encoding",
    }
    body = orjson.dumps(document)
    # A page's proofs run to hundreds of kilobytes of entries (a season's daily seals), which
    # shrink about six times: level 1 does most of it in a few milliseconds.
    if len(body) > 1400 and "gzip" in request.headers.get("accept-encoding", "").lower():
        body = gzip.compress(body, compresslevel=1, mtime=0)
        headers["Content-Encoding"] = "gzip"
    return Response(body, media_type="application/json", headers=headers)


@router.get("/consistency", response_class=Response, responses={200: {"content": {TEXT: {}}}})
def consistency(
    session: SessionDep,
    first: Annotated[int, Query(ge=0, le=MAX_INDEX)],
    second: Annotated[int, Query(ge=0, le=MAX_INDEX)],
) -> Response:
    """An RFC 9162 consistency proof between two tree sizes."""
    return Response(log.consistency_proof_file(session, first, second), media_type=TEXT)
