"""What a capture's rules read, loaded in bulk before any event is checked.

:func:`load` asks the database, once per kind and in as few queries as the backends allow,
for everything the rules of :mod:`digital_village.trace.rules` may consult about a document:
the products, lots and serialised items it names (lots locked for the transaction); the stored
events it repeats or declares erroneous, with what those events did to lots and items; the
declarations already waiting for the events it brings; the parcels it names with their holders
on the days of its events; and the cooperatives of those holders. The rules then run over this
:class:`Snapshot` without a session.

Under the ledger's lock nothing it reads changes before the capture commits (on PostgreSQL the
lots are locked for the transaction too). A capture may also load and check first in a read
session beside the writer, unlocked, and keep the result only if the log has not grown before
it takes the lock (:func:`digital_village.trace.capture.capture`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from digital_village.auth.actor import Actor
from digital_village.auth.models import Role
from digital_village.parcels import service as parcels
from digital_village.parcels.service import Holding, ParcelFacts
from digital_village.regions import service as regions
from digital_village.trace import lineage, products, store
from digital_village.trace.models import Event, Lot, LotFlow, Product, Unit
from digital_village.trace.pending import LotKey, Pending, Ref, UnitKey, local_date


@dataclass(frozen=True)
class Declared:
    """What a stored event did, for a declaration that takes it back."""

    flows: list[LotFlow]  # its live quantities into and out of lots, in the order recorded
    made: list[Unit]  # serialised items it commissioned
    changed: list[Unit]  # serialised items whose status it set


@dataclass
class Snapshot:
    """The stored facts a document's events are checked against."""

    products: dict[str, Product] = field(default_factory=dict)  # by GTIN, the ones named
    products_by_id: dict[int, Product] = field(default_factory=dict)  # of every loaded lot
    lots: dict[int, Lot] = field(default_factory=dict)  # by id, locked for the transaction
    units: dict[UnitKey, Unit] = field(default_factory=dict)
    stored: dict[str, Event] = field(default_factory=dict)  # by eventID, not declarations
    # declarations stored before the events they declare, by the eventID they declare
    waiting: dict[str, Event] = field(default_factory=dict)
    declared: dict[int, Declared] = field(default_factory=dict)  # by the stored event's pk
    parcels: dict[str, ParcelFacts] = field(default_factory=dict)  # by DKBM
    successors: dict[str, list[str]] = field(default_factory=dict)  # of retired parcels
    holdings: dict[tuple[str, dt.date], Holding] = field(default_factory=dict)
    household_coops: dict[int, int | None] = field(default_factory=dict)
    # cooperatives of the products named, as people name them (name and 统一社会信用代码)
    cooperative_names: dict[int, str] = field(default_factory=dict)


def load(
    *,
    session: Session,
    actor: Actor,
    prepared: Sequence[tuple[str, list[Ref]]],
    pendings: Sequence[Pending],
    lock_lots: bool = True,
) -> Snapshot:
    """Everything the rules may read about these events (``prepared``: eventID and refs);
    ``lock_lots``: lock the lots' rows for the transaction (PostgreSQL), as the writer does."""
    snapshot = Snapshot()
    _load_items(session, snapshot, prepared, lock_lots)
    event_ids = [event_id for event_id, _ in prepared]
    snapshot.stored = store.events_by_event_id(session=session, event_ids=event_ids)
    snapshot.waiting = store.waiting_declarations(session=session, event_ids=event_ids)
    _load_declared(session, snapshot, pendings, lock_lots)
    _load_parcels(session, snapshot, pendings)
    members = {
        holding.contractor_household_id
        for holding in snapshot.holdings.values()
        if holding.contractor_household_id is not None
    }
    if actor.role is Role.FARMER and actor.household_id is not None:
        members.add(actor.household_id)
    snapshot.household_coops = regions.household_cooperatives(
        session=session, household_ids=sorted(members)
    )
    owners = {product.cooperative_id for product in snapshot.products.values()}
    snapshot.cooperative_names = {
        cooperative_id: regions.named(cooperative)
        for cooperative_id, cooperative in regions.cooperatives_by_id(
            session=session, ids=sorted(owners)
        ).items()
    }
    return snapshot


def _add_lots(session: Session, snapshot: Snapshot, lot_ids: set[int], lock: bool) -> None:
    missing = lot_ids - set(snapshot.lots)
    if not missing:
        return
    snapshot.lots.update(products.lots_by_id(session=session, ids=missing, for_update=lock))
    product_ids = {row.product_id for row in snapshot.lots.values()}
    snapshot.products_by_id.update(
        products.products_by_id(session=session, ids=product_ids - set(snapshot.products_by_id))
    )


def _load_items(
    session: Session, snapshot: Snapshot, prepared: Sequence[tuple[str, list[Ref]]], lock: bool
) -> None:
    """The registered products, their lots and serialised items that the events name."""
    gtins = {ref.item.gtin for _, refs in prepared for ref in refs if ref.item}
    snapshot.products = products.products_by_gtin(session=session, gtins=gtins)
    snapshot.products_by_id = {product.id: product for product in snapshot.products.values()}
    lot_keys: set[LotKey] = set()
    unit_keys: set[UnitKey] = set()
    for _, refs in prepared:
        for ref in refs:
            item = ref.item
            if item is None or item.gtin not in snapshot.products:
                continue
            if item.serial is not None:
                unit_keys.add((item.gtin, item.serial))
            if item.lot is not None:
                lot_keys.add((item.gtin, item.lot))
    snapshot.units = products.units_by_key(session=session, keys=unit_keys)
    rows = products.lots_by_key(session=session, keys=lot_keys, for_update=lock)
    snapshot.lots = {row.id: row for row in rows.values()}
    _add_lots(session, snapshot, {unit.lot_id for unit in snapshot.units.values()}, lock)


def _load_declared(
    session: Session, snapshot: Snapshot, pendings: Sequence[Pending], lock: bool
) -> None:
    """For each stored event a declaration names: its flows, its items and their lots."""
    targets = [
        snapshot.stored[pending.event_id].id
        for pending in pendings
        if pending.event.error_declaration is not None and pending.event_id in snapshot.stored
    ]
    if not targets:
        return
    flows = lineage.flows_by_event(session=session, event_pks=targets)
    touched = lineage.units_by_event(session=session, event_pks=targets)
    for pk in targets:
        made, changed = touched.get(pk, ([], []))
        snapshot.declared[pk] = Declared(flows.get(pk, []), made, changed)
    _add_lots(
        session,
        snapshot,
        {flow.lot_id for effects in snapshot.declared.values() for flow in effects.flows}
        | {
            unit.lot_id
            for effects in snapshot.declared.values()
            for unit in effects.made + effects.changed
        },
        lock,
    )


def _load_parcels(session: Session, snapshot: Snapshot, pendings: Sequence[Pending]) -> None:
    """Every parcel the events name, its successors if retired, its holders on their days."""
    wanted: dict[dt.date, set[str]] = {}
    for pending in pendings:
        day = local_date(pending.event)
        wanted.setdefault(day, set()).update(dkbm for _, dkbm in pending.parcel_refs)
    snapshot.parcels = parcels.parcel_facts(session=session, dkbms=set().union(*wanted.values()))
    # Work recorded on a parcel after it was retired is refused naming what replaced it.
    for pending in pendings:
        for _, dkbm in pending.parcel_refs:
            facts = snapshot.parcels.get(dkbm)
            if facts is None or facts.retired_at is None or dkbm in snapshot.successors:
                continue
            if pending.event_time >= facts.retired_at:
                found = parcels.successors_of(session=session, parcel=facts)
                snapshot.successors[dkbm] = [p.dkbm for p in found]
    for day, dkbms in wanted.items():
        known = {snapshot.parcels[d].id: d for d in dkbms if d in snapshot.parcels}
        holdings = parcels.holdings_on(session=session, parcel_ids=list(known), on=day)
        for parcel_id, dkbm in known.items():
            snapshot.holdings[(dkbm, day)] = holdings.get(parcel_id, Holding(None, None))
