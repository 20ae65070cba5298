"""Trace queries: backward (a lot or item → its inputs, parcels, households and events) and
forward (a parcel, lot or item → every lot, item and container made from it: the recall).

The answer is a JSON graph: ``nodes`` carry ``type`` and ``id`` (a DKBM for parcels, the
Digital Link path ``01/<GTIN>/10/<lot>`` for lots, ``01/<GTIN>/21/<serial>`` for items, the
eventID for events, the 承包方编码 for households); ``edges`` run in the direction material
moved (parcel → lot → lot → item → container), events point at what they recorded.

It is public: households appear by code with a masked name, nothing else personal. Lineage
rows made by events declared erroneous are left out; the events themselves are listed, marked,
with the declarations that corrected them.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from typing import Any, Final
from urllib.parse import quote

from sqlalchemy.orm import Session

from digital_village.errors import DomainError, Invalid
from digital_village.parcels import service as parcels
from digital_village.parcels.codes import CodeError, parse_dkbm
from digital_village.regions import service as regions
from digital_village.trace import lineage, products, store
from digital_village.trace.epcis import default_context
from digital_village.trace.graph import Direction, Graph, lot_node_id, time_text, unit_node_id
from digital_village.trace.identifiers import parcel_uri, serial_uri
from digital_village.trace.models import Event, Lot, LotParcel, Product, Unit
from digital_village.trace.trace_flags import PlausibilityChecks

# A field's season: from the previous harvest on it, at most this long before the harvest.
SEASON_LIMIT: Final = dt.timedelta(days=400)
# Serialised items listed in one graph; lots, parcels and events are never cut.
MAX_UNITS: Final = 5000


class _Tracer(PlausibilityChecks):
    """One trace: loads rows in a few indexed queries and turns them into a graph."""

    def __init__(self, session: Session, base_url: str) -> None:
        self.session = session
        self.graph = Graph(base_url)
        self.base_url = base_url
        self.lots: dict[int, Lot] = {}
        self.products: dict[int, Product] = {}
        self.events: dict[int, Event] = {}
        self.lot_ids: dict[int, str] = {}  # lot row id → node id

    # --- nodes ------------------------------------------------------------------------------

    def load_lots(self, ids: Iterable[int], *, known: Iterable[Lot] = ()) -> None:
        """Lots by id (and their products), reusing rows the caller already holds."""
        self.lots.update({lot.id: lot for lot in known})
        missing = set(ids) - set(self.lots)
        if missing:
            self.lots.update(products.lots_by_id(session=self.session, ids=missing))
        wanted = {lot.product_id for lot in self.lots.values()} - set(self.products)
        if wanted:
            self.products.update(products.products_by_id(session=self.session, ids=wanted))

    def lot_node(self, lot_id: int) -> str:
        node_id = self.lot_ids.get(lot_id)
        if node_id is not None:
            return node_id
        lot = self.lots[lot_id]
        product = self.products[lot.product_id]
        node_id = self.lot_ids[lot_id] = self.graph.node(
            "lot",
            lot_node_id(lot.gtin, lot.lot),
            gtin=lot.gtin,
            lot=lot.lot,
            uri=f"{self.base_url}/01/{lot.gtin}/10/{quote(lot.lot, safe='')}",
            product=product.name,
            category=product.category,
            origin=lot.origin,
            quantity=lot.produced,
            remaining=products.remaining(lot),
            uom=product.unit,
            produced_at=time_text(lot.produced_at),
        )
        return node_id

    def unit_node(self, unit: Unit) -> str:
        lot = self.lots[unit.lot_id]
        node = self.graph.node(
            "unit",
            unit_node_id(unit.gtin, unit.serial),
            gtin=unit.gtin,
            serial=unit.serial,
            uri=serial_uri(self.base_url, unit.gtin, unit.serial, lot.lot),
            status=unit.status,
        )
        self.graph.edge(self.lot_node(unit.lot_id), node, "contains")
        return node

    def event_node(self, event: Event) -> str:
        attributes: dict[str, Any] = {
            "event_type": event.event_type,
            "biz_step": event.biz_step,
            "action": event.action,
            "event_time": time_text(event.event_time),
            "ledger_seq": event.ledger_seq,
            "proof": f"/api/v1/ledger/entries/{event.ledger_seq}/proof",
        }
        if event.declares_pk is not None:
            node_id = f"{event.event_id}#errorDeclaration"
            attributes["error_declaration"] = True
        else:
            node_id = event.event_id
            attributes["declared_erroneous"] = event.erroneous_since is not None
            if event.erroneous_since is not None:
                attributes["declared_at"] = time_text(event.erroneous_since)
        return self.graph.node("event", node_id, **attributes)

    def load_events(self, pks: Iterable[int]) -> None:
        missing = set(pks) - set(self.events)
        if missing:
            self.events.update(store.events_by_pk(session=self.session, pks=missing))

    def link_events(self, links: Iterable[tuple[int, str, str]]) -> None:
        """Event nodes and an edge from each to the node it recorded (events loaded at once)."""
        links = list(links)
        self.load_events(pk for pk, _, _ in links)
        targets = [self.events[pk].declares_pk for pk, _, _ in links]
        self.load_events(pk for pk in targets if pk is not None)
        for pk, target, role in links:
            event = self.events[pk]
            source = self.event_node(event)
            self.graph.edge(source, target, role)
            if event.declares_pk is not None:
                declared = self.events[event.declares_pk]
                self.graph.edge(source, self.event_node(declared), "declares_erroneous")

    # --- backward ---------------------------------------------------------------------------

    def backward_from_lots(self, root_ids: list[int]) -> None:
        closure = lineage.lot_closure(session=self.session, lot_ids=root_ids, upstream=True)
        lot_ids = set(root_ids) | {a for a, _, _ in closure} | {b for _, b, _ in closure}
        self.load_lots(lot_ids)
        for lot_id in lot_ids:
            self.lot_node(lot_id)
        harvests = lineage.lot_parcels_of(session=self.session, lot_ids=list(lot_ids))
        lot_events = lineage.events_of_lots(session=self.session, lot_ids=list(lot_ids))
        field_events = self._field_events(harvests)
        self.load_events(
            [pk for _, _, pk in closure]
            + [pk for pk, _, role in lot_events if role != "consumed"]
            + [row.event_pk for row in harvests]
            + [pk for pk, _, _ in field_events]
        )
        links: list[tuple[int, str, str]] = []
        for source, target, pk in closure:
            self.graph.edge(
                self.lot_node(source),
                self.lot_node(target),
                "transformed_into",
                event=self.events[pk].event_id,
            )
            links.append((pk, self.lot_node(target), "produced"))
            links.append((pk, self.lot_node(source), "consumed"))
        links += [
            (pk, self.lot_node(lot_id), role)
            for pk, lot_id, role in lot_events
            if role != "consumed"
        ]
        self._parcels(harvests)
        self.link_events(links + field_events)
        self._flags(lot_ids, harvests)

    def _parcels(self, harvests: Iterable[LotParcel]) -> None:
        households: dict[int, str] = {}
        cooperatives: dict[int, str] = {}
        for row in harvests:
            parcel = self.graph.node(
                "parcel", row.dkbm, uri=parcel_uri(self.base_url, row.dkbm), area_mu=row.area_mu
            )
            self.load_events([row.event_pk])  # loaded already on the backward path
            self.graph.edge(
                parcel,
                self.lot_node(row.lot_id),
                "harvested_into",
                event=self.events[row.event_pk].event_id,
            )
            if row.household_id is not None:
                if row.household_id not in households:
                    household = regions.get_household(
                        session=self.session, household_id=row.household_id
                    )
                    households[row.household_id] = self.graph.node(
                        "household", household.cbfbm, name=regions.mask_name(household.name)
                    )
                self.graph.edge(households[row.household_id], parcel, "holds")
            if row.operator_cooperative_id is not None:
                if row.operator_cooperative_id not in cooperatives:
                    coop = regions.get_cooperative(
                        session=self.session, cooperative_id=row.operator_cooperative_id
                    )
                    cooperatives[row.operator_cooperative_id] = self.graph.node(
                        "cooperative", coop.uscc, name=coop.name
                    )
                self.graph.edge(cooperatives[row.operator_cooperative_id], parcel, "operates")

    def _field_events(self, harvests: Iterable[LotParcel]) -> list[tuple[int, str, str]]:
        """Events on each harvested parcel during the season that ended with the harvest."""
        harvests = list(harvests)
        if not harvests:
            return []
        earliest = min(row.harvested_at for row in harvests) - SEASON_LIMIT
        latest = max(row.harvested_at for row in harvests)
        earlier: dict[str, list[dt.datetime]] = defaultdict(list)
        for dkbm, moment in lineage.harvest_times(
            session=self.session,
            dkbms=sorted({row.dkbm for row in harvests}),
            after=earliest,
            until=latest,
        ):
            earlier[dkbm].append(moment)
        windows: dict[str, list[tuple[dt.datetime, dt.datetime]]] = defaultdict(list)
        for row in harvests:
            before = [t for t in earlier[row.dkbm] if t < row.harvested_at]
            start = max([*before, row.harvested_at - SEASON_LIMIT])
            windows[row.dkbm].append((start, row.harvested_at))
        found = lineage.parcel_events(session=self.session, windows=windows)
        return [(pk, dkbm, "on") for pk, dkbm in found]

    # --- forward ----------------------------------------------------------------------------

    def forward_from_lots(self, root_ids: list[int]) -> None:
        closure = lineage.lot_closure(session=self.session, lot_ids=root_ids, upstream=False)
        lot_ids = set(root_ids) | {a for a, _, _ in closure} | {b for _, b, _ in closure}
        self.load_lots(lot_ids)
        for lot_id in lot_ids:
            self.lot_node(lot_id)
        self.load_events(pk for _, _, pk in closure)
        links: list[tuple[int, str, str]] = []
        for source, target, pk in closure:
            self.graph.edge(
                self.lot_node(source),
                self.lot_node(target),
                "transformed_into",
                event=self.events[pk].event_id,
            )
            links.append((pk, self.lot_node(target), "produced"))
        self.link_events(links)
        self._units_and_containers(lot_ids)
        self._flags(lot_ids, lineage.lot_parcels_of(session=self.session, lot_ids=list(lot_ids)))

    def _units_and_containers(self, lot_ids: Iterable[int]) -> None:
        ids = sorted(set(lot_ids))
        units = lineage.units_of_lots(session=self.session, lot_ids=ids, limit=MAX_UNITS + 1)
        if len(units) > MAX_UNITS:
            units = units[:MAX_UNITS]
            self.graph.truncated = {
                "units_shown": MAX_UNITS,
                "units": lineage.count_units(session=self.session, lot_ids=ids),
            }
        by_id = {unit.id: self.unit_node(unit) for unit in units}
        for parent, unit_id in lineage.containers_of(session=self.session, unit_ids=list(by_id)):
            self.graph.edge(by_id[unit_id], self.graph.node("container", parent), "packed_into")


def trace_lot(
    *, session: Session, gtin: str, lot: str, direction: Direction, base_url: str
) -> dict[str, Any]:
    """The trace graph of a lot, backward to its fields or forward to everything made of it."""
    row = products.get_lot(session=session, gtin=gtin, lot=lot)
    tracer = _Tracer(session, base_url)
    tracer.load_lots([row.id], known=[row])
    root = tracer.lot_node(row.id)
    if direction == "backward":
        tracer.backward_from_lots([row.id])
    else:
        tracer.forward_from_lots([row.id])
    return tracer.graph.to_json(root=root, direction=direction)


def trace_unit(
    *,
    session: Session,
    gtin: str,
    serial: str,
    lot: str | None,
    direction: Direction,
    base_url: str,
) -> dict[str, Any]:
    """The trace graph of one serialised item (its lot's history, or where it went)."""
    unit = products.get_unit(session=session, gtin=gtin, serial=serial)
    tracer = _Tracer(session, base_url)
    tracer.load_lots([unit.lot_id])
    if lot is not None and tracer.lots[unit.lot_id].lot != lot:
        raise Invalid(
            f"item {serial!r} of {unit.gtin} belongs to lot {tracer.lots[unit.lot_id].lot!r}, "
            f"not {lot!r}"
        )
    root = tracer.unit_node(unit)
    if direction == "backward":
        tracer.backward_from_lots([unit.lot_id])
    else:
        for parent, _ in lineage.containers_of(session=session, unit_ids=[unit.id]):
            tracer.graph.edge(root, tracer.graph.node("container", parent), "packed_into")
        if unit.status == "consumed" and unit.status_event_pk is not None:
            made = lineage.outputs_of(
                session=session, event_pk=unit.status_event_pk, input_lot_id=unit.lot_id
            )
            if made:
                tracer.forward_from_lots(made)
                tracer.load_events([unit.status_event_pk])
                for target in made:
                    tracer.graph.edge(root, tracer.lot_node(target), "transformed_into")
    return tracer.graph.to_json(root=root, direction=direction)


def trace_parcel(*, session: Session, dkbm: str, base_url: str) -> dict[str, Any]:
    """Forward from a parcel: every lot harvested on it and everything made from them.

    Invalid for a malformed DKBM, NotFound for one never registered (a retired parcel's
    harvests are still traced).
    """
    try:
        dkbm = parse_dkbm(dkbm).code
    except CodeError as error:
        raise Invalid(f"not a parcel code: {error}", field="dkbm") from None
    parcel = parcels.get_parcel(session=session, dkbm=dkbm)
    tracer = _Tracer(session, base_url)
    root = tracer.graph.node("parcel", dkbm, uri=parcel_uri(base_url, dkbm), area_mu=parcel.area_mu)
    harvests = lineage.harvests_from_parcel(session=session, dkbm=dkbm)
    lot_ids = sorted({row.lot_id for row in harvests})
    tracer.load_lots(lot_ids)
    tracer._parcels(harvests)
    if lot_ids:
        tracer.forward_from_lots(lot_ids)
    return tracer.graph.to_json(root=root, direction="forward")


def lot_document(*, session: Session, gtin: str, lot: str, base_url: str) -> dict[str, Any]:
    """Every event of a lot's backward trace, oldest first, as an EPCIS 2.0 EPCISDocument."""
    row = products.get_lot(session=session, gtin=gtin, lot=lot)
    tracer = _Tracer(session, base_url)
    tracer.load_lots([row.id])
    tracer.lot_node(row.id)
    tracer.backward_from_lots([row.id])
    ordered = sorted(tracer.events.values(), key=lambda event: (event.event_time, event.id))
    return {
        "@context": default_context(),
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": time_text(dt.datetime.now(dt.UTC)),
        "epcisBody": {"eventList": store.event_json(session=session, events=ordered)},
    }


def china_today() -> dt.date:
    """Today in China, the date printed on certificates."""
    return parcels.today()


def _place(session: Session, codes: Iterable[str]) -> str:
    names = []
    for code in codes:
        try:
            names.append(regions.get_region(session=session, code=code).name)
        except DomainError:
            continue
    return "".join(names)


def origin_of_lot(*, session: Session, lot: Lot) -> str:
    """产地 of a lot: the villages of the parcels it came from (else its cooperative's place)."""
    closure = lineage.lot_closure(session=session, lot_ids=[lot.id], upstream=True)
    lot_ids = {lot.id} | {a for a, _, _ in closure}
    places: list[str] = []
    for dkbm in sorted(
        {row.dkbm for row in lineage.lot_parcels_of(session=session, lot_ids=list(lot_ids))}
    ):
        parcel = parcels.get_parcel(session=session, dkbm=dkbm)
        place = _place(session, [parcel.fbfbm[:6], parcel.township_code, parcel.village_code])
        if place and place not in places:
            places.append(place)
    if places:
        return "、".join(places)
    cooperative = regions.get_cooperative(session=session, cooperative_id=lot.cooperative_id)
    code = cooperative.region_code
    return _place(session, [code[:6], code[:9], code[:12]][: 1 + (len(code) > 6) + (len(code) > 9)])
