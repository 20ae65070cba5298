"""Capture: check EPCIS events by the chain's rules, then record them, all or nothing.

In the caller's transaction: what the document's events name is loaded in bulk
(:mod:`digital_village.trace.snapshot`), every event is checked in order against the state the
earlier ones left (a harvest may create a lot that the next event presses; see
:mod:`digital_village.trace.rules`), then all are appended to the ledger with one checkpoint,
stored, and linked into the lineage. Any problem raises one domain error whose ``errors``
name the event by a JSON pointer, and nothing is written.

The capture interface's bookkeeping (reading a received document, recording the capture job
whatever its outcome) is :mod:`digital_village.trace.jobs`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, NoReturn

from sqlalchemy.orm import Session

from digital_village.auth.actor import Actor
from digital_village.auth.models import Role
from digital_village.db import utcnow
from digital_village.errors import Conflict, Forbidden, Invalid, PayloadTooLarge
from digital_village.ledger.log import EntryIn, Ledger
from digital_village.regions import service as regions
from digital_village.trace import event_hash, lineage, products, recorded, snapshot, store
from digital_village.trace.epcis import (
    EventModel,
    default_context,
    dump_epcis,
)
from digital_village.trace.identifiers import lot_uri
from digital_village.trace.pending import (
    LotKey,
    Pending,
    Ref,
    UnitKey,
    collect_refs,
    fail,
    parcel_refs,
    rfc3339,
)
from digital_village.trace.rules import DEFAULT_MAX_QUANTITY, CaptureState
from digital_village.trace.stock import Stock, UsedUpBefore, used_up
from digital_village.trace.vocab import DV_PREFIX, PLANTING

_DEFAULT_CONTEXT: Final = default_context()
# Clocks of phones in the field drift; an event a few minutes ahead is not "in the future".
FUTURE_TOLERANCE: Final = dt.timedelta(minutes=5)
CAPTURE_EVENT_LIMIT: Final = 10_000


@dataclass(frozen=True)
class CapturedEvent:
    """What the caller learns about one stored event."""

    event_id: str
    event_type: str
    biz_step: str | None
    ledger_seq: int
    lots: tuple[str, ...]  # Digital Link URIs of the lots it produced
    # Our CBV 2.0 hash, when the event came with a different hash-style eventID (kept as sent).
    computed_event_id: str | None = None


@dataclass(frozen=True)
class CaptureResult:
    capture_id: str | None
    events: tuple[CapturedEvent, ...]


def check_limit(count: int) -> None:
    """Refuse a capture of more events than the advertised GS1-CAPTURE-limit (413)."""
    if count > CAPTURE_EVENT_LIMIT:
        raise PayloadTooLarge(
            f"a capture holds at most {CAPTURE_EVENT_LIMIT} events; this one has {count}",
            limit=CAPTURE_EVENT_LIMIT,
        )


def capture(
    *,
    session: Session,
    ledger: Ledger,
    actor: Actor,
    events: Sequence[EventModel],
    base_url: str,
    context: object = None,
    capture_id: str | None = None,
    pointer: str | None = "/epcisBody/eventList",
    strict_hash: bool = False,
    max_quantity: float = DEFAULT_MAX_QUANTITY,
) -> CaptureResult:
    """Check and record events, all or nothing, in the session's transaction.

    Errors point into the document at ``pointer``/<index>; ``pointer=None`` is for a single
    event sent on its own, whose fields are pointed at from its root. A declared hash-style
    eventID that differs from the event's CBV 2.0 hash is kept as sent and the difference
    recorded with the event (its ledger entry holds our hash too); ``strict_hash`` refuses
    such an event instead.
    """
    if actor.role is Role.DEVICE:
        raise Forbidden("a device token may not record events; devices send readings")
    if not events:
        raise Invalid(f"{pointer or '/'}: there are no events to capture", errors=[])
    check_limit(len(events))
    now = utcnow()
    record_time = rfc3339(now)
    context = context if context is not None else default_context()
    seen_ids: dict[str, int] = {}  # eventIDs of this capture's events (not declarations)
    prepared: list[tuple[str, list[Ref]]] = []
    pendings: list[Pending] = []
    computed: dict[int, str] = {}  # index -> our hash, where the declared eventID differs
    lot_totals: list[dict[str, dict[str, Any]]] = []
    for index, event in enumerate(events):
        where = "" if pointer is None else f"{pointer}/{index}"
        pending = _prepare(event, where, index, context, now, record_time, strict_hash, computed)
        if event.error_declaration is None:
            if pending.event_id in seen_ids:
                fail(
                    Invalid,
                    where,
                    f"the same event appears twice in this capture (first at index "
                    f"{seen_ids[pending.event_id]})",
                )
            seen_ids[pending.event_id] = index
        prepared.append((pending.event_id, collect_refs(event, where)))
        pendings.append(pending)
    for pending in pendings:
        pending.parcel_refs = parcel_refs(pending.event, pending.pointer, base_url=base_url)
    # From here to the commit no other capture runs: what the checks read stays true.
    ledger.lock(session)
    loaded = snapshot.load(session=session, actor=actor, prepared=prepared, pendings=pendings)
    work = CaptureState(
        snapshot=loaded,
        actor=actor,
        base_url=base_url,
        seen_ids=seen_ids,
        max_quantity=max_quantity,
    )
    for pending, (_, refs) in zip(pendings, prepared, strict=True):
        if pending.event.error_declaration is None and pending.event_id in loaded.stored:
            stored = loaded.stored[pending.event_id]
            fail(
                Conflict,
                pending.pointer,
                f"event {pending.event_id} was already captured (ledger entry {stored.ledger_seq})",
            )
        try:
            work.apply(pending, refs)
        except UsedUpBefore as used:
            _refuse_used_up(session, used)
        work.declared_on_arrival(pending)
        lot_totals.append(_lot_totals(work.stock, pending))
    work.stock.check_declared_lots(pendings)
    effects = _effects(session, pendings, lot_totals)
    return _write(
        session,
        work,
        pendings,
        effects,
        ledger=ledger,
        now=now,
        capture_id=capture_id,
        computed=computed,
    )


def _refuse_used_up(session: Session, used: UsedUpBefore) -> NoReturn:
    """Name the stored event that took the last of a lot, and refuse the document."""
    pk = lineage.last_consumer(session=session, lot_id=used.lot_id)
    by = store.events_by_pk(session=session, pks=[pk])[pk].event_id if pk is not None else None
    used_up(used.label, used.pointer, by)


def _lot_totals(stock: Stock, pending: Pending) -> dict[str, dict[str, Any]]:
    """The totals of every lot the event changed, as they stand after it (what the lot rows
    will say unless a later event changes them); when it made the lot, how and when."""
    roles: dict[LotKey, set[str]] = {}
    for key, role in pending.lot_roles:
        if role != "observed":
            roles.setdefault(key, set()).add(role)
    totals: dict[str, dict[str, Any]] = {}
    for key, kinds in roles.items():
        state = stock.lots[key]
        record: dict[str, Any] = {
            "produced": max(0.0, state.produced),
            "consumed": max(0.0, state.consumed),
        }
        if "produced" in kinds and state.produced_at is not None:
            record["origin"] = state.origin
            record["producedAt"] = recorded.utc_text(state.produced_at)
        totals[recorded.lot_key(*key)] = record
    return totals


def _effects(
    session: Session, pendings: Sequence[Pending], lot_totals: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """What each event's entry records of the rows it makes: lot totals, harvested parcels
    with their holders by code (see trace/recorded.py)."""
    holders = [holding for p in pendings for _, _, holding, _ in p.lot_parcels]
    households = {
        household_id: regions.get_household(session=session, household_id=household_id).cbfbm
        for household_id in {h.contractor_household_id for h in holders}
        if household_id is not None
    }
    cooperatives = {
        cooperative_id: regions.get_cooperative(session=session, cooperative_id=cooperative_id).uscc
        for cooperative_id in {h.operator_cooperative_id for h in holders}
        if cooperative_id is not None
    }
    found: list[dict[str, Any]] = []
    for pending, lots in zip(pendings, lot_totals, strict=True):
        effects: dict[str, Any] = {}
        if lots:
            effects["lots"] = lots
        harvested = {
            dkbm: {
                "lot": recorded.lot_key(*key),
                "contractor": households.get(holding.contractor_household_id or 0),
                "operator": cooperatives.get(holding.operator_cooperative_id or 0),
                "area_mu": area,
            }
            for key, dkbm, holding, area in pending.lot_parcels
        }
        if harvested:
            effects["parcels"] = harvested
        found.append(effects)
    return found


def _prepare(
    event: EventModel,
    where: str,
    index: int,
    context: object,
    now: dt.datetime,
    record_time: str,
    strict_hash: bool,
    computed_ids: dict[int, str],
) -> Pending:
    if event.event_time > now + FUTURE_TOLERANCE:
        fail(Invalid, f"{where}/eventTime", f"{rfc3339(event.event_time)} is in the future")
    declaration = event.error_declaration
    if declaration is not None and declaration.declaration_time > now + FUTURE_TOLERANCE:
        fail(
            Invalid,
            f"{where}/errorDeclaration/declarationTime",
            f"{rfc3339(declaration.declaration_time)} is in the future",
        )
    biz_step = event.biz_step
    if biz_step is not None and biz_step.startswith(f"{DV_PREFIX}:"):
        fail(
            Invalid,
            f"{where}/bizStep",
            f"write project steps as full URIs ({PLANTING.uri[: -len(PLANTING.key)]}…), "
            f"not as {biz_step!r}",
        )
    own_context = event.context or context
    body = dump_epcis(event, standalone=False)
    # The hash leaves out eventID and @context, so the dump that is stored is the one hashed.
    computed = event_hash.event_hash_id(body, context=own_context)
    given = event.event_id
    if given is not None and given.startswith("ni:///") and given != computed:
        # Partners' tools compute the hash with other revisions of the algorithm (GS1's own
        # examples carry such IDs): the ID is theirs, kept as sent; the difference is shown.
        if strict_hash:
            fail(
                Invalid,
                f"{where}/eventID",
                f"does not match the event's CBV 2.0 hash; expected {computed} "
                "(this server refuses such events: DV_EPCIS_STRICT_HASH)",
            )
        computed_ids[index] = computed
    event_id = given or computed
    body["eventID"] = event_id
    body["recordTime"] = record_time
    if own_context != _DEFAULT_CONTEXT and "@context" not in body:
        body = {"@context": own_context, **body}
    return Pending(
        index=index,
        pointer=where,
        event=event,
        event_id=event_id,
        json=body,
        event_time=event.event_time,
        biz_step=biz_step,
    )


def _write(
    session: Session,
    work: CaptureState,
    pendings: list[Pending],
    effects: list[dict[str, Any]],
    *,
    ledger: Ledger,
    now: dt.datetime,
    capture_id: str | None,
    computed: dict[int, str],
) -> CaptureResult:
    if capture_id is not None:
        store.add_capture(
            session=session,
            capture_id=capture_id,
            success=True,
            event_count=len(pendings),
            actor=work.actor,
            started_at=now,
        )
    entries = [
        EntryIn(
            store.EVENT_KIND,
            {"captureID": capture_id, "event": pending.json, "effects": effect}
            | ({"computedEventID": computed[pending.index]} if pending.index in computed else {}),
            pending.chain_key,
        )
        for pending, effect in zip(pendings, effects, strict=True)
    ]
    appended = ledger.append_many(session, entries)
    rows = []
    for pending, entry in zip(pendings, appended, strict=True):
        event = pending.event
        rows.append(
            {
                "event_id": pending.event_id,
                "event_type": event.type,
                "action": vars(event).get("action"),
                # Stored as EQ_bizStep compares: a CBV step as its bare word, however written.
                "biz_step": store.normalise_biz_step(pending.biz_step)
                if pending.biz_step is not None
                else None,
                "disposition": event.disposition,
                "read_point": event.read_point.id if event.read_point else None,
                "biz_location": event.biz_location.id if event.biz_location else None,
                "event_time": pending.event_time,
                "record_time": now,
                "ledger_seq": entry.seq,
                "capture_id": capture_id,
                "cooperative_id": pending.cooperative_id,
                "household_id": pending.household_id,
                "declaration": event.error_declaration is not None,
                "declares_pk": pending.declares.id if pending.declares else None,
            }
        )
    pks = store.insert_events(session=session, rows=rows)
    lot_ids = _write_lots(session, work.stock, now)
    unit_ids = _write_units(session, work.stock, pks, lot_ids)
    _write_lineage(session, pendings, pks, lot_ids, unit_ids)
    for pending, pk in zip(pendings, pks, strict=True):
        if pending.declares is not None:
            lineage.void_event(session=session, event_pk=pending.declares.id)
            store.mark_declared(
                session=session, target_pk=pending.declares.id, declaration_pk=pk, when=now
            )
        if pending.declared_by is not None:
            declaration = pending.declared_by.id
            lineage.void_event(session=session, event_pk=pk)
            store.mark_declared(session=session, target_pk=pk, declaration_pk=declaration, when=now)
            store.resolve_declaration(session=session, declaration_pk=declaration, target_pk=pk)
    session.flush()
    return CaptureResult(
        capture_id=capture_id,
        events=tuple(
            CapturedEvent(
                event_id=pending.event_id,
                event_type=pending.event.type,
                biz_step=pending.biz_step,
                ledger_seq=entry.seq,
                lots=tuple(lot_uri(work.base_url, key[0], key[1]) for key in pending.produced),
                computed_event_id=computed.get(pending.index),
            )
            for pending, entry in zip(pendings, appended, strict=True)
        ),
    )


def _write_lots(session: Session, stock: Stock, now: dt.datetime) -> dict[LotKey, int]:
    """New lots get their rows, changed lots their totals; returns every lot's id."""
    fresh: list[dict[str, Any]] = []
    for state in stock.lots.values():
        if not state.changed:
            continue
        if state.row is None:
            assert state.produced_at is not None
            product = state.product
            fresh.append(
                {
                    "product_id": product.id,
                    "gtin": product.gtin,
                    "lot": state.key[1],
                    "origin": state.origin,
                    "produced": max(0.0, state.produced),
                    "consumed": max(0.0, state.consumed),
                    "produced_at": state.produced_at,
                    "cooperative_id": product.cooperative_id,
                    "created_at": now,
                }
            )
            continue
        if state.made_by is not None and state.produced_at is not None:
            state.row.origin = state.origin
            state.row.produced_at = state.produced_at
        state.row.produced = max(0.0, state.produced)
        state.row.consumed = max(0.0, state.consumed)
    session.flush()
    ids = {key: state.row.id for key, state in stock.lots.items() if state.row is not None}
    ids.update(products.insert_lots(session=session, rows=fresh))
    return ids


def _write_units(
    session: Session, stock: Stock, pks: list[int], lot_ids: dict[LotKey, int]
) -> dict[UnitKey, int]:
    """Insert new serialised items, update changed ones; returns every item's id."""
    fresh: list[dict[str, Any]] = []
    fresh_keys: list[UnitKey] = []
    for state in stock.units.values():
        if not state.touched:
            continue
        status_event = pks[state.status_by] if state.status_by is not None else None
        if state.row is None:
            assert state.made_by is not None
            fresh.append(
                {
                    "gtin": state.key[0],
                    "serial": state.key[1],
                    "lot_id": lot_ids[state.lot_key],
                    "status": state.status,
                    "event_pk": pks[state.made_by],
                    "status_event_pk": status_event,
                }
            )
            fresh_keys.append(state.key)
            continue
        if state.made_by is not None:
            state.row.lot_id = lot_ids[state.lot_key]
            state.row.event_pk = pks[state.made_by]
        state.row.status = state.status
        state.row.status_event_pk = status_event
    session.flush()
    ids = {key: state.row.id for key, state in stock.units.items() if state.row is not None}
    ids.update(zip(fresh_keys, lineage.insert_units(session=session, rows=fresh), strict=True))
    return ids


def _write_lineage(
    session: Session,
    pendings: list[Pending],
    pks: list[int],
    lot_ids: dict[LotKey, int],
    unit_ids: dict[UnitKey, int],
) -> None:
    flows: list[dict[str, Any]] = []
    edges: list[dict[str, Any]] = []
    lot_parcels: list[dict[str, Any]] = []
    event_lots: list[dict[str, Any]] = []
    event_parcels: list[dict[str, Any]] = []
    containments: list[dict[str, Any]] = []
    epcs: list[dict[str, Any]] = []
    for pending, pk in zip(pendings, pks, strict=True):
        flows += [
            {"lot_id": lot_ids[key], "event_pk": pk, "kind": kind, "quantity": amount}
            for key, kind, amount in pending.flows
        ]
        edges += [
            {"input_lot_id": lot_ids[a], "output_lot_id": lot_ids[b], "event_pk": pk}
            for a, b in pending.edges
        ]
        lot_parcels += [
            {
                "lot_id": lot_ids[key],
                "dkbm": dkbm,
                "harvested_at": pending.event_time,
                "household_id": holding.contractor_household_id,
                "operator_cooperative_id": holding.operator_cooperative_id,
                "area_mu": area,
                "event_pk": pk,
            }
            for key, dkbm, holding, area in pending.lot_parcels
        ]
        event_lots += [
            {"event_pk": pk, "lot_id": lot_ids[key], "role": role}
            for key, role in dict.fromkeys(pending.lot_roles)
        ]
        event_parcels += [
            {"event_pk": pk, "dkbm": dkbm, "event_time": pending.event_time}
            for dkbm in dict.fromkeys(pending.parcels)
        ]
        declaration = pending.declared_by
        if declaration is not None:
            # The waiting declaration now names what its event named, as one stored after it.
            event_lots += [
                {"event_pk": declaration.id, "lot_id": lot_ids[key], "role": "declared"}
                for key in dict.fromkeys(key for key, _ in pending.lot_roles)
            ]
            event_parcels += [
                {"event_pk": declaration.id, "dkbm": dkbm, "event_time": declaration.event_time}
                for dkbm in dict.fromkeys(pending.parcels)
            ]
        containments += [
            {"parent_epc": parent, "unit_id": unit_ids[key], "event_pk": pk}
            for parent, key in pending.containment
        ]
        epcs += [{"event_pk": pk, "epc": epc, "field": name} for epc, name in pending.epcs]
    lineage.record(
        session=session,
        flows=flows,
        edges=edges,
        lot_parcels=lot_parcels,
        event_lots=event_lots,
        event_parcels=event_parcels,
        containments=containments,
    )
    store.insert_epcs(session=session, rows=epcs)
