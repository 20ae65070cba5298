"""Lineage: the lot graph (flows, edges, harvest parcels, units, containers) and its writes.

The trace queries that walk it live in :mod:`digital_village.trace.tracing`; both use only the
functions here, so this module owns the lineage tables.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from digital_village.bulk import insert_rows
from digital_village.trace.models import (
    Containment,
    Event,
    EventLot,
    EventParcel,
    LotEdge,
    LotFlow,
    LotParcel,
    Unit,
)


def _insert(session: Session, table: Any, rows: Sequence[Mapping[str, Any]]) -> None:
    insert_rows(session.connection(), table, rows)


def record(
    *,
    session: Session,
    flows: Sequence[Mapping[str, Any]] = (),
    edges: Sequence[Mapping[str, Any]] = (),
    lot_parcels: Sequence[Mapping[str, Any]] = (),
    event_lots: Sequence[Mapping[str, Any]] = (),
    event_parcels: Sequence[Mapping[str, Any]] = (),
    containments: Sequence[Mapping[str, Any]] = (),
) -> None:
    """Insert lineage rows (driver executemany: a capture may write thousands)."""
    _insert(session, LotFlow, flows)
    _insert(session, LotEdge, edges)
    _insert(session, LotParcel, lot_parcels)
    _insert(session, EventLot, event_lots)
    _insert(session, EventParcel, event_parcels)
    _insert(session, Containment, containments)


def insert_units(*, session: Session, rows: Sequence[Mapping[str, Any]]) -> list[int]:
    """Insert serialised units in order and return their ids in the same order.

    Units are unique by (GTIN, serial) and made by events of this capture: one executemany,
    then one query by the range of those events.
    """
    if not rows:
        return []
    insert_rows(session.connection(), Unit, rows)
    events = [row["event_pk"] for row in rows]
    query = select(Unit.gtin, Unit.serial, Unit.id).where(
        Unit.event_pk >= min(events), Unit.event_pk <= max(events)
    )
    found = {(gtin, serial): unit_id for gtin, serial, unit_id in session.execute(query)}
    return [found[(row["gtin"], row["serial"])] for row in rows]


def last_consumer(*, session: Session, lot_id: int) -> int | None:
    """The event that last took from a lot (for messages about a used-up lot)."""
    query = (
        select(LotFlow.event_pk)
        .where(LotFlow.lot_id == lot_id, LotFlow.kind == "consume", LotFlow.voided.is_(False))
        .order_by(LotFlow.id.desc())
        .limit(1)
    )
    return session.scalar(query)


def flows_by_event(*, session: Session, event_pks: Sequence[int]) -> dict[int, list[LotFlow]]:
    """The live quantities each event added to or took from lots, in the order recorded."""
    found: dict[int, list[LotFlow]] = {}
    for flow in sorted(flows_of_events(session=session, event_pks=event_pks), key=_by_id):
        found.setdefault(flow.event_pk, []).append(flow)
    return found


def units_by_event(
    *, session: Session, event_pks: Sequence[int]
) -> dict[int, tuple[list[Unit], list[Unit]]]:
    """For each event, the units it made and the units whose status it set (by id)."""
    found: dict[int, tuple[list[Unit], list[Unit]]] = {pk: ([], []) for pk in event_pks}
    for chunk in _chunks(sorted(set(event_pks))):
        for unit in session.scalars(select(Unit).where(Unit.event_pk.in_(chunk))):
            found[unit.event_pk][0].append(unit)
        for unit in session.scalars(select(Unit).where(Unit.status_event_pk.in_(chunk))):
            assert unit.status_event_pk is not None
            found[unit.status_event_pk][1].append(unit)
    for made, changed in found.values():
        made.sort(key=_by_id)
        changed.sort(key=_by_id)
    return found


def _by_id(row: LotFlow | Unit) -> int:
    return row.id


def void_event(*, session: Session, event_pk: int) -> None:
    """Take an event declared erroneous out of the lineage (its rows are kept, marked voided).

    The capture sets the status of the units it made or used itself.
    """
    for table in (LotFlow, LotEdge, LotParcel, Containment):
        session.execute(update(table).where(table.event_pk == event_pk).values(voided=True))


# --- reads for the trace queries -------------------------------------------------------------


def _chunks(values: Sequence[int], size: int = 900) -> Iterable[Sequence[int]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def lot_closure(
    *, session: Session, lot_ids: Sequence[int], upstream: bool
) -> list[tuple[int, int, int]]:
    """Every live edge (input, output, event) reachable from the lots, in one recursive query.

    Upstream follows edges from outputs to their inputs (the backward trace); downstream from
    inputs to outputs (the recall). UNION, not UNION ALL, so a diamond is walked once.
    """
    if not lot_ids:
        return []
    near = LotEdge.output_lot_id if upstream else LotEdge.input_lot_id
    seed = (
        select(LotEdge.input_lot_id, LotEdge.output_lot_id, LotEdge.event_pk)
        .where(near.in_(sorted(set(lot_ids))), LotEdge.voided.is_(False))
        .cte("reach", recursive=True)
    )
    previous = seed.c.input_lot_id if upstream else seed.c.output_lot_id
    step = (
        select(LotEdge.input_lot_id, LotEdge.output_lot_id, LotEdge.event_pk)
        .join(seed, near == previous)
        .where(LotEdge.voided.is_(False))
    )
    reach = seed.union(step)
    rows = session.execute(select(reach.c.input_lot_id, reach.c.output_lot_id, reach.c.event_pk))
    return [(row[0], row[1], row[2]) for row in rows]


def outputs_of(*, session: Session, event_pk: int, input_lot_id: int) -> list[int]:
    """The lots one transformation made from one input lot."""
    query = select(LotEdge.output_lot_id).where(
        LotEdge.event_pk == event_pk,
        LotEdge.input_lot_id == input_lot_id,
        LotEdge.voided.is_(False),
    )
    return list(session.scalars(query))


def lot_parcels_of(*, session: Session, lot_ids: Sequence[int]) -> Sequence[LotParcel]:
    rows: list[LotParcel] = []
    for chunk in _chunks(sorted(set(lot_ids))):
        query = select(LotParcel).where(LotParcel.lot_id.in_(chunk), LotParcel.voided.is_(False))
        rows.extend(session.scalars(query))
    return rows


def harvests_on_parcels(
    *, session: Session, dkbms: Sequence[str], after: dt.datetime, until: dt.datetime
) -> Sequence[LotParcel]:
    """The live harvest rows on these parcels in [after, until], oldest first."""
    rows: list[LotParcel] = []
    wanted = sorted(set(dkbms))
    for start in range(0, len(wanted), 900):
        chunk = wanted[start : start + 900]
        query = select(LotParcel).where(
            LotParcel.dkbm.in_(chunk),
            LotParcel.harvested_at >= after,
            LotParcel.harvested_at <= until,
            LotParcel.voided.is_(False),
        )
        rows.extend(session.scalars(query))
    return sorted(rows, key=lambda row: (row.harvested_at, row.id))


def harvest_times(
    *, session: Session, dkbms: Sequence[str], after: Any, until: Any
) -> list[tuple[str, Any]]:
    """(DKBM, time) of the live harvests on these parcels in (after, until)."""
    if not dkbms:
        return []
    query = select(LotParcel.dkbm, LotParcel.harvested_at).where(
        LotParcel.dkbm.in_(sorted(set(dkbms))),
        LotParcel.harvested_at > after,
        LotParcel.harvested_at < until,
        LotParcel.voided.is_(False),
    )
    return [(dkbm, moment) for dkbm, moment in session.execute(query)]


def parcel_events(
    *, session: Session, windows: Mapping[str, Sequence[tuple[Any, Any]]]
) -> list[tuple[int, str]]:
    """(event, DKBM) of events on each parcel with a time in one of its (after, until] windows.

    One range scan of the (dkbm, event_time) index over every parcel, from the earliest
    window start to the latest end (the windows of one trace are one season or a few);
    the windows themselves are applied here.
    """
    spans = [span for parcel_spans in windows.values() for span in parcel_spans]
    if not spans:
        return []
    query = select(EventParcel.event_pk, EventParcel.dkbm, EventParcel.event_time).where(
        EventParcel.dkbm.in_(sorted(windows)),
        EventParcel.event_time > min(start for start, _ in spans),
        EventParcel.event_time <= max(end for _, end in spans),
    )
    return [
        (event_pk, dkbm)
        for event_pk, dkbm, moment in session.execute(query)
        if any(start < moment <= end for start, end in windows[dkbm])
    ]


def last_event_on_parcels(*, session: Session, dkbms: Sequence[str]) -> dt.datetime | None:
    """When the latest event still standing (not declared erroneous) was recorded on any of
    the parcels, or None when there is none."""
    query = (
        select(func.max(EventParcel.event_time))
        .join(Event, Event.id == EventParcel.event_pk)
        .where(
            EventParcel.dkbm.in_(sorted(set(dkbms))),
            Event.erroneous_since.is_(None),
            Event.declares_pk.is_(None),
        )
    )
    latest: dt.datetime | None = session.scalar(query)
    return latest


def events_of_lots(*, session: Session, lot_ids: Sequence[int]) -> list[tuple[int, int, str]]:
    """(event, lot, role) for every event that names one of the lots."""
    found: list[tuple[int, int, str]] = []
    for chunk in _chunks(sorted(set(lot_ids))):
        query = select(EventLot.event_pk, EventLot.lot_id, EventLot.role).where(
            EventLot.lot_id.in_(chunk)
        )
        found.extend((row[0], row[1], row[2]) for row in session.execute(query))
    return found


def harvests_from_parcel(*, session: Session, dkbm: str) -> Sequence[LotParcel]:
    query = select(LotParcel).where(LotParcel.dkbm == dkbm, LotParcel.voided.is_(False))
    return session.scalars(query.order_by(LotParcel.harvested_at)).all()


def units_of_lots(
    *, session: Session, lot_ids: Sequence[int], limit: int | None = None
) -> Sequence[Unit]:
    """Live serialised items of the lots, at most ``limit`` (by id)."""
    rows: list[Unit] = []
    for chunk in _chunks(sorted(set(lot_ids))):
        query = select(Unit).where(Unit.lot_id.in_(chunk), Unit.status != "voided")
        if limit is not None:
            query = query.limit(limit - len(rows))
        rows.extend(session.scalars(query.order_by(Unit.id)))
        if limit is not None and len(rows) >= limit:
            break
    return rows


def count_units(*, session: Session, lot_ids: Sequence[int]) -> int:
    total = 0
    for chunk in _chunks(sorted(set(lot_ids))):
        query = select(func.count()).where(Unit.lot_id.in_(chunk), Unit.status != "voided")
        total += int(session.scalar(query) or 0)
    return total


def containers_of(*, session: Session, unit_ids: Sequence[int]) -> list[tuple[str, int]]:
    """(container EPC, unit) for the live packing of these units."""
    found: list[tuple[str, int]] = []
    for chunk in _chunks(sorted(set(unit_ids))):
        query = select(Containment.parent_epc, Containment.unit_id).where(
            Containment.unit_id.in_(chunk), Containment.voided.is_(False)
        )
        found.extend((row[0], row[1]) for row in session.execute(query))
    return found


def flows_of_events(*, session: Session, event_pks: Sequence[int]) -> Sequence[LotFlow]:
    """The live quantities these events added to or took from any lot."""
    rows: list[LotFlow] = []
    for chunk in _chunks(sorted(set(event_pks))):
        query = select(LotFlow).where(LotFlow.event_pk.in_(chunk), LotFlow.voided.is_(False))
        rows.extend(session.scalars(query))
    return rows


def flows_of_lots(*, session: Session, lot_ids: Sequence[int]) -> Sequence[LotFlow]:
    rows: list[LotFlow] = []
    for chunk in _chunks(sorted(set(lot_ids))):
        query = select(LotFlow).where(LotFlow.lot_id.in_(chunk), LotFlow.voided.is_(False))
        rows.extend(session.scalars(query))
    return rows


def lot_entries(*, session: Session, lot_ids: Sequence[int]) -> dict[int, tuple[int, int | None]]:
    """Lot → (ledger index of the last event that changed its totals, of the last that made
    it): the entries that record what its row says (trace/recorded.py)."""
    found: dict[int, tuple[int, int | None]] = {}
    for chunk in _chunks(sorted(set(lot_ids))):
        query = (
            select(EventLot.lot_id, EventLot.role, func.max(Event.ledger_seq))
            .join(Event, Event.id == EventLot.event_pk)
            .where(EventLot.lot_id.in_(chunk), EventLot.role != "observed")
            .group_by(EventLot.lot_id, EventLot.role)
        )
        for lot_id, role, seq in session.execute(query):
            last, made = found.get(lot_id, (-1, None))
            found[lot_id] = (max(last, seq), seq if role == "produced" else made)
    return found
