"""The event store: EPCIS events, the identifiers they name, and capture jobs (the EPCIS query
runs in ``trace/epcis_query_run.py``).

An event's JSON is read back from its ledger entry, the exact bytes that were hashed; the
``trace_event`` columns hold only what queries filter and sort on.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from digital_village.auth.actor import Actor
from digital_village.bulk import insert_rows
from digital_village.errors import Forbidden, NotFound
from digital_village.ledger.models import LedgerEntry
from digital_village.trace import vocab
from digital_village.trace.models import Capture, Event, EventEpc, EventLot, EventParcel, Lot

EVENT_KIND: Final = "trace.epcis_event"
_BIZ_STEP_PREFIXES: Final = (
    "urn:epcglobal:cbv:bizstep:",
    "https://ref.gs1.org/cbv/BizStep-",
    "https://gs1.org/voc/BizStep-",
    "http://ns.gs1.org/cbv/BizStep-",
)


def insert_events(*, session: Session, rows: Sequence[Mapping[str, Any]]) -> list[int]:
    """Insert event rows in order and return their surrogate ids in the same order.

    One driver executemany, then one query for the ids by ledger index (each event has its own
    entry): RETURNING in parameter order would make SQLite insert row by row.
    """
    if not rows:
        return []
    insert_rows(session.connection(), Event, rows)
    seqs = [row["ledger_seq"] for row in rows]
    query = select(Event.ledger_seq, Event.id).where(
        Event.ledger_seq >= min(seqs), Event.ledger_seq <= max(seqs)
    )
    found = {seq: pk for seq, pk in session.execute(query)}
    return [found[seq] for seq in seqs]


def insert_epcs(*, session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
    insert_rows(session.connection(), EventEpc, rows)


def events_by_event_id(*, session: Session, event_ids: Iterable[str]) -> dict[str, Event]:
    """Stored events (not declarations) by eventID."""
    wanted = sorted(set(event_ids))
    found: dict[str, Event] = {}
    for start in range(0, len(wanted), 500):
        # Declarations are left out here, not in SQL: "declares_pk IS NULL" holds for nearly
        # every row, yet SQLite without statistics would walk its index instead of the
        # eventID one, a scan of the whole table per capture (capture slowed as the log grew).
        query = select(Event).where(Event.event_id.in_(wanted[start : start + 500]))
        found.update({row.event_id: row for row in session.scalars(query) if not row.declaration})
    return found


def waiting_declarations(*, session: Session, event_ids: Iterable[str]) -> dict[str, Event]:
    """Stored errorDeclarations of events not yet received, by the eventID they declare."""
    wanted = sorted(set(event_ids))
    found: dict[str, Event] = {}
    for start in range(0, len(wanted), 500):
        query = select(Event).where(Event.event_id.in_(wanted[start : start + 500]))
        found.update(
            {
                row.event_id: row
                for row in session.scalars(query)
                if row.declaration and row.declares_pk is None
            }
        )
    return found


def resolve_declaration(*, session: Session, declaration_pk: int, target_pk: int) -> None:
    """A declaration stored before its event: the event has arrived, point at it."""
    session.execute(update(Event).where(Event.id == declaration_pk).values(declares_pk=target_pk))


def events_by_pk(*, session: Session, pks: Iterable[int]) -> dict[int, Event]:
    wanted = sorted(set(pks))
    found: dict[int, Event] = {}
    for start in range(0, len(wanted), 900):
        query = select(Event).where(Event.id.in_(wanted[start : start + 900]))
        found.update({row.id: row for row in session.scalars(query)})
    return found


def mark_declared(
    *, session: Session, target_pk: int, declaration_pk: int, when: dt.datetime
) -> None:
    """Record that an event was declared erroneous, and by which declaration."""
    session.execute(
        update(Event)
        .where(Event.id == target_pk)
        .values(erroneous_since=when, declared_by_pk=declaration_pk)
    )


# The query interface's flag on an event whose declared hash-style eventID differs from ours.
COMPUTED_EVENT_ID: Final = f"{vocab.DV_PREFIX}:computedEventID"


def event_json(
    *, session: Session, events: Sequence[Event], flag_hash_mismatch: bool = False
) -> list[dict[str, Any]]:
    """The EPCIS JSON of events, as recorded in their ledger entries, in the given order.

    ``flag_hash_mismatch`` adds ``dv:computedEventID`` (our CBV 2.0 hash) to an event whose
    declared hash-style eventID differs from it; the event itself is as it was captured.
    """
    seqs = sorted({event.ledger_seq for event in events})
    bodies: dict[int, bytes] = {}
    for start in range(0, len(seqs), 900):
        query = select(LedgerEntry.seq, LedgerEntry.body).where(
            LedgerEntry.seq.in_(seqs[start : start + 900])
        )
        bodies.update({seq: body for seq, body in session.execute(query)})
    result = []
    for event in events:
        data = orjson.loads(bodies[event.ledger_seq])["data"]
        body = dict(data["event"])
        if flag_hash_mismatch and "computedEventID" in data:
            body[COMPUTED_EVENT_ID] = data["computedEventID"]
        result.append(body)
    return result


# --- capture jobs -----------------------------------------------------------------------------


def add_capture(
    *,
    session: Session,
    capture_id: str,
    success: bool,
    event_count: int,
    actor: Actor,
    started_at: dt.datetime,
    errors: Sequence[Mapping[str, str]] | None = None,
) -> Capture:
    capture = Capture(
        id=capture_id,
        success=success,
        event_count=event_count,
        errors=json.dumps(list(errors), ensure_ascii=False) if errors else None,
        token_public_id=actor.token_public_id,
        created_at=started_at,
    )
    session.add(capture)
    session.flush()
    return capture


def get_capture(*, session: Session, capture_id: str, actor: Actor) -> Capture:
    """A capture job; only the token that made it (or an admin) may read it."""
    capture = session.get(Capture, capture_id)
    if capture is None:
        raise NotFound(f"no capture job {capture_id}")
    if not actor.is_admin and capture.token_public_id != actor.token_public_id:
        raise Forbidden("a capture job is visible to the token that made it and to admins")
    return capture


def events_of_capture(*, session: Session, capture_id: str) -> Sequence[Event]:
    return session.scalars(
        select(Event).where(Event.capture_id == capture_id).order_by(Event.id)
    ).all()


# --- the EPCIS query --------------------------------------------------------------------------


def normalise_biz_step(value: str) -> str:
    """A bizStep as stored: CBV steps as bare words, project steps as full URIs."""
    for prefix in _BIZ_STEP_PREFIXES:
        if value.startswith(prefix):
            return value[len(prefix) :]
    if value.startswith(f"{vocab.DV_PREFIX}:"):
        return vocab.DV_VOCAB + value[len(vocab.DV_PREFIX) + 1 :]
    return value


@dataclass(frozen=True)
class Named:
    """What the events recorded in a stretch of the log name: (ledger index, GTIN, lot) of
    each lot and (ledger index, DKBM, event time) of each parcel. A correction also names what
    the event it declares erroneous named."""

    lots: list[tuple[int, str, str]]
    parcels: list[tuple[int, str, dt.datetime]]


def named_between(*, session: Session, start: int, stop: int) -> Named:
    """The lots and parcels named by the events whose ledger entries lie in [start, stop)."""
    rows = session.execute(
        select(Event.id, Event.ledger_seq, Event.declares_pk).where(
            Event.ledger_seq >= start, Event.ledger_seq < stop
        )
    ).all()
    seq_of: dict[int, int] = {}
    for pk, seq, declares in rows:
        seq_of[pk] = seq
        if declares is not None:
            seq_of.setdefault(declares, seq)
    named = Named([], [])
    pks = sorted(seq_of)
    for begin in range(0, len(pks), 500):
        chunk = pks[begin : begin + 500]
        lots = session.execute(
            select(EventLot.event_pk, Lot.gtin, Lot.lot)
            .join(Lot, Lot.id == EventLot.lot_id)
            .where(EventLot.event_pk.in_(chunk))
        )
        named.lots.extend((seq_of[pk], gtin, lot) for pk, gtin, lot in lots)
        parcels = session.execute(
            select(EventParcel.event_pk, EventParcel.dkbm, EventParcel.event_time).where(
                EventParcel.event_pk.in_(chunk)
            )
        )
        named.parcels.extend((seq_of[pk], dkbm, when) for pk, dkbm, when in parcels)
    return named
