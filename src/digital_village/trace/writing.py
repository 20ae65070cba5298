"""Recording a checked capture: its ledger entries, event rows, lots, items and lineage.

Called by :func:`digital_village.trace.capture.capture` once every event has passed its rules,
in the same transaction and under the ledger's lock: the entries are appended with one
checkpoint (each records its event and the effects pages show, see ``trace/recorded.py``),
then the rows are written in bulk.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from digital_village.gs1.short_code import short_code
from digital_village.ledger.log import AppendedEntry, EntryIn, Ledger
from digital_village.regions import service as regions
from digital_village.trace import lineage, products, recorded, store
from digital_village.trace.pending import LotKey, Pending, UnitKey
from digital_village.trace.rules import CaptureState
from digital_village.trace.stock import Stock


def lot_totals(stock: Stock, pending: Pending) -> dict[str, dict[str, Any]]:
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


def effects(
    session: Session, pendings: Sequence[Pending], lot_totals: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """What each event's entry records of the rows it makes: lot totals, harvested parcels
    with their holders by code, serialised items with their lot (see trace/recorded.py)."""
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
        made = {recorded.unit_key(*unit): recorded.lot_key(*lot) for unit, lot in pending.new_units}
        if made:
            effects["units"] = made
        found.append(effects)
    return found


def write(
    session: Session,
    work: CaptureState,
    pendings: list[Pending],
    effects: Sequence[dict[str, Any]],
    *,
    ledger: Ledger,
    now: dt.datetime,
    capture_id: str | None,
    computed: dict[int, str],
) -> list[AppendedEntry]:
    """Append the events to the ledger (one checkpoint), then store them and what they made
    (``effects``: what each event's entry records of them, from :func:`effects`)."""
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
    rows = _event_rows(pendings, appended, now=now, capture_id=capture_id)
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
    return appended


def _event_rows(
    pendings: Sequence[Pending],
    appended: Sequence[AppendedEntry],
    *,
    now: dt.datetime,
    capture_id: str | None,
) -> list[dict[str, Any]]:
    """The ``trace_event`` rows: what the EPCIS query filters and sorts on, and ownership."""
    rows: list[dict[str, Any]] = []
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
    return rows


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
                    "short_code": short_code(state.key[0], state.lot_key[1], state.key[1]),
                }
            )
            fresh_keys.append(state.key)
            continue
        if state.made_by is not None:
            state.row.lot_id = lot_ids[state.lot_key]
            state.row.short_code = short_code(state.key[0], state.lot_key[1], state.key[1])
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
