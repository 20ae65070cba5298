"""The rules a capture checks events by, against the chain's lots, serial items and parcels.

:class:`CaptureState` holds what a capture has seen so far (lots, items, parcels) and applies
one event at a time: a harvest may create a lot that the next event of the same capture
presses. Every refusal names the event's field by a JSON pointer.

Rules for identifiers the project owns (a GTIN registered as a product, a parcel URI on the
project's host or a ``dv:parcel`` value; everything else is stored as given):

* a lot is made by an ADD ObjectEvent (a harvest or a commissioning) or a TransformationEvent
  output, once; later events may only name it while it exists;
* inputs of a transformation (and DELETE quantities) consume from their lot: never more than
  is left, so a lot cannot be used twice over;
* serialised items (AI 21) are commissioned into a lot named in their URI (…/10/<lot>/21/…),
  consumed once, and packed (AggregationEvent) while active;
* field work (planting, fertilizing, spraying, irrigating, harvesting) names its parcels, which
  must exist, not be retired, and be held on that day by the farmer's household or the
  cooperative (``parcels.holder_at``);
* an errorDeclaration names a stored event by its eventID and takes that event's effects out
  of the lineage; a corrective event may then make the same lot again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Final, NoReturn

from sqlalchemy.orm import Session

from digital_village.auth.actor import Actor
from digital_village.auth.models import Role
from digital_village.errors import Conflict, DomainError, Forbidden, Invalid
from digital_village.parcels import service as parcels
from digital_village.parcels.service import Holding, ParcelFacts
from digital_village.regions import service as regions
from digital_village.trace import lineage, products, store
from digital_village.trace.epcis import (
    AggregationEvent,
    EventModel,
    ObjectEvent,
    QuantityElement,
    TransformationEvent,
)
from digital_village.trace.identifiers import (
    COUNT_UNITS,
    PARCEL_EXTENSIONS,
    GtinItem,
    IdentifierError,
    canonical_epc,
    convert,
    parcel_of_extension,
    parcel_of_uri,
    parse_gtin_identifier,
)
from digital_village.trace.models import Event, Lot, Product, Unit
from digital_village.trace.products import QUANTITY_EPSILON
from digital_village.trace.vocab import (
    DV_PREFIX,
    FERTILIZING,
    HARVESTING,
    IRRIGATING,
    PLANTING,
    SPRAYING,
)

FIELD_STEPS: Final = frozenset(
    s.uri for s in (PLANTING, FERTILIZING, SPRAYING, IRRIGATING, HARVESTING)
)
MASS_UNITS: Final = frozenset({"KGM", "TNE", "GRM"})

LotKey = tuple[str, str]
UnitKey = tuple[str, str]


def fail(error: type[DomainError], pointer: str, message: str) -> NoReturn:
    raise error(f"{pointer}: {message}", errors=[{"pointer": pointer, "message": message}])


@dataclass
class LotState:
    """A lot as the capture sees it: its row (if stored) and its totals so far."""

    key: LotKey
    product: Product
    row: Lot | None
    produced: float
    consumed: float
    origin: str = ""
    produced_at: dt.datetime | None = None
    made_by: str | None = None  # eventID that produced it (for messages)
    used_up_by: str | None = None  # eventID that took the last of it
    changed: bool = False

    @property
    def live(self) -> bool:
        return self.produced > QUANTITY_EPSILON

    @property
    def remaining(self) -> float:
        return max(0.0, self.produced - self.consumed)

    @property
    def label(self) -> str:
        return f"lot {self.key[1]!r} of {self.product.name} ({self.key[0]})"


@dataclass
class UnitState:
    """A serialised item as the capture sees it; ``status_by`` is the index of the event
    that last changed its status in this capture (None: restored or unchanged)."""

    key: UnitKey
    lot_key: LotKey
    row: Unit | None
    status: str
    touched: bool = False
    status_by: int | None = None
    made_by: int | None = None


@dataclass
class Pending:
    """One checked event and everything it will write."""

    index: int
    pointer: str
    event: EventModel
    event_id: str
    json: dict[str, Any]
    event_time: dt.datetime
    biz_step: str | None
    cooperative_id: int | None = None
    household_id: int | None = None
    epcs: list[tuple[str, str]] = field(default_factory=list)
    lot_roles: list[tuple[LotKey, str]] = field(default_factory=list)
    flows: list[tuple[LotKey, str, float]] = field(default_factory=list)
    edges: list[tuple[LotKey, LotKey]] = field(default_factory=list)
    parcels: list[str] = field(default_factory=list)
    lot_parcels: list[tuple[LotKey, str, Holding, float | None]] = field(default_factory=list)
    new_units: list[tuple[UnitKey, LotKey]] = field(default_factory=list)
    containment: list[tuple[str, UnitKey]] = field(default_factory=list)
    declares: Event | None = None
    # A declaration stored before this event arrived: the event is recorded as erroneous.
    declared_by: Event | None = None
    produced: list[LotKey] = field(default_factory=list)
    # (pointer, DKBM) of the parcels it names, found before the checks begin
    parcel_refs: list[tuple[str, str]] | None = None

    @property
    def chain_key(self) -> str | None:
        """The lot chain this event extends: the lot it made, else used, else named."""
        for role in ("produced", "consumed", "observed", "declared"):
            for key, lot_role in self.lot_roles:
                if lot_role == role:
                    return f"lot:{key[0]}/{key[1]}"
        return None


@dataclass
class Ref:
    """One identifier an event names, where, and what it is."""

    field: str
    pointer: str
    uri: str
    item: GtinItem | None
    quantity: QuantityElement | None = None


def _field(event: EventModel, name: str) -> Any:
    # vars(): a field the event type lacks is None here, without pydantic's slow __getattr__.
    return vars(event).get(name)


def _event_fields(event: EventModel) -> list[tuple[str, list[str] | None]]:
    return [
        ("epcList", _field(event, "epc_list")),
        ("childEPCs", _field(event, "child_epcs")),
        ("inputEPCList", _field(event, "input_epc_list")),
        ("outputEPCList", _field(event, "output_epc_list")),
    ]


def _quantity_fields(event: EventModel) -> list[tuple[str, list[QuantityElement] | None]]:
    return [
        ("quantityList", _field(event, "quantity_list")),
        ("childQuantityList", _field(event, "child_quantity_list")),
        ("inputQuantityList", _field(event, "input_quantity_list")),
        ("outputQuantityList", _field(event, "output_quantity_list")),
    ]


def _item(uri: str, pointer: str) -> GtinItem | None:
    try:
        return parse_gtin_identifier(uri)
    except IdentifierError as error:
        fail(Invalid, pointer, str(error))


def collect_refs(event: EventModel, pointer: str) -> list[Ref]:
    refs: list[Ref] = []
    for name, values in _event_fields(event):
        for i, uri in enumerate(values or []):
            where = f"{pointer}/{name}/{i}"
            refs.append(Ref(name, where, uri, _item(uri, where)))
    parent = _field(event, "parent_id")
    if parent is not None:
        where = f"{pointer}/parentID"
        refs.append(Ref("parentID", where, parent, _item(parent, where)))
    for name, elements in _quantity_fields(event):
        for i, element in enumerate(elements or []):
            where = f"{pointer}/{name}/{i}/epcClass"
            refs.append(
                Ref(name, where, element.epc_class, _item(element.epc_class, where), element)
            )
    return refs


@lru_cache(maxsize=64)
def _zone(offset: str) -> dt.timezone:
    sign = -1 if offset.startswith("-") else 1
    hours, minutes = offset[1:].split(":")
    return dt.timezone(sign * dt.timedelta(hours=int(hours), minutes=int(minutes)))


def _local_date(event: EventModel) -> dt.date:
    return event.event_time.astimezone(_zone(event.event_time_zone_offset)).date()


def rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class CaptureState:
    """The state of one capture while its events are checked."""

    def __init__(
        self, *, session: Session, actor: Actor, base_url: str, context: object, now: dt.datetime
    ) -> None:
        self.session = session
        self.actor = actor
        self.base_url = base_url
        self.context = context
        self.now = now
        self.products: dict[str, Product] = {}
        self.lots: dict[LotKey, LotState] = {}
        self.units: dict[UnitKey, UnitState] = {}
        self.stored: dict[str, Event] = {}
        # Declarations stored before the events they declare, by eventID.
        self.waiting: dict[str, Event] = {}
        self.seen_ids: dict[str, int] = {}  # eventIDs of this capture's events (not declarations)
        self.parcel_cache: dict[str, ParcelFacts] = {}
        self.holder_cache: dict[tuple[str, dt.date], Holding] = {}
        self.household_coops: dict[int, int | None] = {}
        self.declared_lots: set[LotKey] = set()

    # --- loading --------------------------------------------------------------------------

    def load(self, events: Sequence[tuple[str, EventModel, list[Ref]]]) -> None:
        gtins = {ref.item.gtin for _, _, refs in events for ref in refs if ref.item}
        self.products = products.products_by_gtin(session=self.session, gtins=gtins)
        lot_keys: set[LotKey] = set()
        unit_keys: set[UnitKey] = set()
        for _, _, refs in events:
            for ref in refs:
                item = ref.item
                if item is None or item.gtin not in self.products:
                    continue
                if item.serial is not None:
                    unit_keys.add((item.gtin, item.serial))
                    if item.lot is not None:
                        lot_keys.add((item.gtin, item.lot))
                elif item.lot is not None:
                    lot_keys.add((item.gtin, item.lot))
        units = products.units_by_key(session=self.session, keys=unit_keys)
        extra_lot_ids = {unit.lot_id for unit in units.values()}
        rows = products.lots_by_key(session=self.session, keys=lot_keys, for_update=True)
        by_id = {row.id: row for row in rows.values()}
        missing = extra_lot_ids - set(by_id)
        if missing:
            by_id.update(products.lots_by_id(session=self.session, ids=missing, for_update=True))
        product_ids = {row.product_id for row in by_id.values()}
        known = {p.id: p for p in self.products.values()}
        known.update(products.products_by_id(session=self.session, ids=product_ids - set(known)))
        for row in by_id.values():
            self._lot_state(row, known[row.product_id])
        for key, unit in units.items():
            lot_row = by_id[unit.lot_id]
            self.units[key] = UnitState(key, (lot_row.gtin, lot_row.lot), unit, unit.status)
        event_ids = [event_id for event_id, _, _ in events]
        self.stored = store.events_by_event_id(session=self.session, event_ids=event_ids)
        self.waiting = store.waiting_declarations(session=self.session, event_ids=event_ids)

    def _unit_state(self, unit: Unit) -> UnitState:
        key = (unit.gtin, unit.serial)
        state = self.units.get(key)
        if state is None:
            lot_row = products.lots_by_id(session=self.session, ids=[unit.lot_id], for_update=True)[
                unit.lot_id
            ]
            if (lot_row.gtin, lot_row.lot) not in self.lots:
                product = products.products_by_id(session=self.session, ids=[lot_row.product_id])
                self._lot_state(lot_row, product[lot_row.product_id])
            state = UnitState(key, (lot_row.gtin, lot_row.lot), unit, unit.status)
            self.units[key] = state
        return state

    def _lot_state(self, row: Lot, product: Product) -> LotState:
        state = LotState(
            (row.gtin, row.lot),
            product,
            row,
            row.produced,
            row.consumed,
            origin=row.origin,
            produced_at=row.produced_at,
        )
        self.lots[state.key] = state
        return state

    # --- parcels --------------------------------------------------------------------------

    def _parcel(self, dkbm: str, pointer: str, when: dt.datetime) -> ParcelFacts:
        parcel = self.parcel_cache.get(dkbm)
        if parcel is None:
            found = parcels.parcel_facts(session=self.session, dkbms=[dkbm]).get(dkbm)
            if found is None:
                fail(Invalid, pointer, f"no parcel with DKBM {dkbm} is registered")
            parcel = self.parcel_cache[dkbm] = found
        if parcel.retired_at is not None and when >= parcel.retired_at:
            successors = [
                p.dkbm for p in parcels.successors_of(session=self.session, parcel=parcel)
            ]
            after = f"; record work on {', '.join(successors)}" if successors else ""
            fail(
                Invalid,
                pointer,
                f"parcel {dkbm} was retired on {parcel.retired_at.date()}{after}",
            )
        return parcel

    def _holder(self, dkbm: str, on: dt.date) -> Holding:
        key = (dkbm, on)
        if key not in self.holder_cache:
            self.holder_cache[key] = parcels.holder_at(session=self.session, dkbm=dkbm, on=on)
        return self.holder_cache[key]

    def prefetch_parcels(self, pendings: Sequence[Pending]) -> None:
        """Look up every parcel of a capture once, and their holders per day in bulk.

        Nothing is refused here: unknown parcels stay unknown and ``apply`` names them at
        the event that uses them.
        """
        wanted: dict[dt.date, set[str]] = {}
        for pending in pendings:
            pending.parcel_refs = self._parcels_of(pending)
            day = _local_date(pending.event)
            wanted.setdefault(day, set()).update(dkbm for _, dkbm in pending.parcel_refs)
        needed = set().union(*wanted.values()) - set(self.parcel_cache)
        self.parcel_cache.update(parcels.parcel_facts(session=self.session, dkbms=needed))
        for day, dkbms in wanted.items():
            known = {self.parcel_cache[d].id: d for d in dkbms if d in self.parcel_cache}
            holdings = parcels.holdings_on(session=self.session, parcel_ids=list(known), on=day)
            for parcel_id, dkbm in known.items():
                self.holder_cache[(dkbm, day)] = holdings.get(parcel_id, Holding(None, None))
        members = {
            holding.contractor_household_id
            for holding in self.holder_cache.values()
            if holding.contractor_household_id is not None
        } - set(self.household_coops)
        self.household_coops.update(
            regions.household_cooperatives(session=self.session, household_ids=list(members))
        )

    def _household_coop(self, household_id: int) -> int | None:
        if household_id not in self.household_coops:
            household = regions.get_household(session=self.session, household_id=household_id)
            self.household_coops[household_id] = household.cooperative_id
        return self.household_coops[household_id]

    def _holder_coops(self, holding: Holding) -> set[int]:
        coops: set[int] = set()
        if holding.operator_cooperative_id is not None:
            coops.add(holding.operator_cooperative_id)
        if holding.contractor_household_id is not None:
            coop = self._household_coop(holding.contractor_household_id)
            if coop is not None:
                coops.add(coop)
        return coops

    def _parcels_of(self, pending: Pending) -> list[tuple[str, str]]:
        """(pointer, DKBM) of every parcel the event names."""
        event = pending.event
        found: list[tuple[str, str]] = []

        def by_uri(uri: str | None, where: str) -> None:
            if uri is None:
                return
            try:
                dkbm = parcel_of_uri(uri, base_url=self.base_url)
            except IdentifierError as error:
                fail(Invalid, where, str(error))
            if dkbm is not None:
                found.append((where, dkbm))

        def by_extension(container: dict[str, Any], where: str) -> None:
            for key in PARCEL_EXTENSIONS:
                value = container.get(key)
                if value is None:
                    continue
                values = value if isinstance(value, list) else [value]
                for i, item in enumerate(values):
                    at = f"{where}/{key}" + (f"/{i}" if isinstance(value, list) else "")
                    try:
                        found.append((at, parcel_of_extension(item)))
                    except IdentifierError as error:
                        fail(Invalid, at, str(error))

        by_uri(event.read_point.id if event.read_point else None, f"{pending.pointer}/readPoint/id")
        by_uri(
            event.biz_location.id if event.biz_location else None,
            f"{pending.pointer}/bizLocation/id",
        )
        by_uri(_field(event, "parent_id"), f"{pending.pointer}/parentID")
        by_extension(event.extensions, pending.pointer)
        ilmd = _field(event, "ilmd")
        if ilmd:
            by_extension(ilmd, f"{pending.pointer}/ilmd")
        unique: dict[str, str] = {}
        for where, dkbm in found:
            unique.setdefault(dkbm, where)
        return [(where, dkbm) for dkbm, where in unique.items()]

    def _check_parcels(self, pending: Pending) -> list[tuple[str, Holding, float | None]]:
        on = _local_date(pending.event)
        checked: list[tuple[str, Holding, float | None]] = []
        refs = pending.parcel_refs if pending.parcel_refs is not None else self._parcels_of(pending)
        for where, dkbm in refs:
            parcel = self._parcel(dkbm, where, pending.event_time)
            holding = self._holder(dkbm, on)
            self._authorize_parcel(dkbm, holding, where, on)
            checked.append((dkbm, holding, parcel.area_mu))
            pending.parcels.append(dkbm)
        return checked

    def _authorize_parcel(self, dkbm: str, holding: Holding, pointer: str, on: dt.date) -> None:
        actor = self.actor
        if actor.is_admin:
            return
        if actor.role is Role.FARMER:
            if holding.contractor_household_id != actor.household_id:
                fail(Forbidden, pointer, f"parcel {dkbm} is not held by your household on {on}")
            return
        if actor.role is Role.MANAGER and actor.cooperative_id in self._holder_coops(holding):
            return
        fail(
            Forbidden,
            pointer,
            f"parcel {dkbm} is held on {on} by neither your cooperative nor one of its members",
        )

    # --- identifiers ----------------------------------------------------------------------

    def _authorize_product(self, product: Product, pointer: str, *, harvest: bool) -> None:
        actor = self.actor
        if actor.is_admin:
            return
        if actor.role is Role.MANAGER and actor.cooperative_id == product.cooperative_id:
            return
        if actor.role is Role.FARMER and harvest:
            return  # the parcels' holder rule ties the harvest to the product's cooperative
        fail(
            Forbidden,
            pointer,
            f"{product.name} ({product.gtin}) belongs to cooperative {product.cooperative_id}; "
            f"a {actor.role.value} token may not record events about it",
        )

    def _quantity(self, ref: Ref, product: Product, *, required: bool) -> float | None:
        element = ref.quantity
        where = ref.pointer.removesuffix("/epcClass")
        if element is None or element.quantity is None:
            if required:
                fail(
                    Invalid,
                    f"{where}/quantity",
                    f"a quantity is needed for {product.name}: how much was made or used",
                )
            return None
        if element.quantity <= 0:
            fail(Invalid, f"{where}/quantity", "must be greater than 0")
        unit = element.uom or (product.unit if product.unit in COUNT_UNITS else None)
        if unit is None:
            fail(Invalid, f"{where}/uom", f"needed: {product.name} is counted in {product.unit}")
        amount = convert(float(element.quantity), unit, product.unit)
        if amount is None:
            fail(
                Invalid,
                f"{where}/uom",
                f"{unit} cannot be converted to {product.unit}, the unit of {product.name}",
            )
        return amount

    def _lot(self, key: LotKey, product: Product) -> LotState:
        state = self.lots.get(key)
        if state is None:
            state = LotState(key, product, None, 0.0, 0.0)
            self.lots[key] = state
        return state

    def _need_live(self, state: LotState, pointer: str) -> None:
        if state.live:
            return
        if state.row is not None or state.made_by is not None:
            fail(
                Invalid,
                pointer,
                f"{state.label} was declared erroneous and has not been recorded again",
            )
        fail(
            Invalid,
            pointer,
            f"{state.label} is not known; a lot is made by a harvest, a commissioning (ADD) "
            "or as the output of a transformation",
        )

    def _produce(
        self,
        pending: Pending,
        key: LotKey,
        product: Product,
        amount: float,
        origin: str,
        pointer: str,
    ) -> LotState:
        state = self._lot(key, product)
        if state.live and key not in pending.produced:
            made = f" by event {state.made_by}" if state.made_by else ""
            fail(
                Conflict,
                pointer,
                f"{state.label} already exists{made}; give new output a new lot number",
            )
        if key not in pending.produced:
            state.origin = origin
            state.produced_at = pending.event_time
            state.made_by = pending.event_id
            pending.produced.append(key)
            pending.lot_roles.append((key, "produced"))
        state.produced += amount
        state.changed = True
        pending.flows.append((key, "produce", amount))
        return state

    def _consume(self, pending: Pending, state: LotState, amount: float, pointer: str) -> None:
        self._need_live(state, pointer)
        unit = state.product.unit
        if amount > state.remaining * (1 + QUANTITY_EPSILON) + QUANTITY_EPSILON:
            if state.remaining <= QUANTITY_EPSILON:
                used_up_by = state.used_up_by or self._last_consumer(state)
                by = f" by event {used_up_by}" if used_up_by else ""
                fail(
                    Conflict,
                    pointer,
                    f"{state.label} was already used up{by}; a lot cannot be consumed twice",
                )
            fail(
                Conflict,
                pointer,
                f"{state.label} holds {state.remaining:g} {unit}; "
                f"this event consumes {amount:g} {unit}",
            )
        state.consumed += min(amount, state.remaining)
        state.changed = True
        if state.remaining <= QUANTITY_EPSILON:
            state.used_up_by = pending.event_id
        pending.flows.append((state.key, "consume", amount))
        if (state.key, "consumed") not in pending.lot_roles:
            pending.lot_roles.append((state.key, "consumed"))

    def _last_consumer(self, state: LotState) -> str | None:
        if state.row is None:
            return None
        pk = lineage.last_consumer(session=self.session, lot_id=state.row.id)
        if pk is None:
            return None
        return store.events_by_pk(session=self.session, pks=[pk])[pk].event_id

    def _observe(self, pending: Pending, state: LotState, pointer: str) -> None:
        self._need_live(state, pointer)
        if not any(key == state.key for key, _ in pending.lot_roles):
            pending.lot_roles.append((state.key, "observed"))

    def _unit(self, ref: Ref, pointer: str) -> UnitState:
        assert ref.item is not None and ref.item.serial is not None
        key = (ref.item.gtin, ref.item.serial)
        state = self.units.get(key)
        if state is None or state.status == "voided":
            fail(
                Invalid,
                pointer,
                f"serialised item {ref.item.serial!r} of {ref.item.gtin} is not known; "
                "commission it first (an ADD event or a transformation output)",
            )
        return state

    def _new_unit(self, pending: Pending, ref: Ref, product: Product) -> LotKey:
        item = ref.item
        assert item is not None and item.serial is not None
        if product.unit not in COUNT_UNITS:
            fail(
                Invalid,
                ref.pointer,
                f"{product.name} is counted in {product.unit}; serialised items need a product "
                "counted in pieces (H87)",
            )
        if item.lot is None:
            fail(
                Invalid,
                ref.pointer,
                "a new serialised item names its lot: …/01/<GTIN>/10/<lot>/21/<serial>",
            )
        key = (item.gtin, item.serial)
        existing = self.units.get(key)
        if existing is not None and existing.status != "voided":
            fail(Conflict, ref.pointer, f"serialised item {item.serial!r} of {item.gtin} exists")
        lot_key = (item.gtin, item.lot)
        origin = (
            "transformation" if isinstance(pending.event, TransformationEvent) else "commissioning"
        )
        self._produce(pending, lot_key, product, 1.0, origin, ref.pointer)
        # A serial whose commissioning was declared erroneous keeps its row and is reused.
        row = existing.row if existing is not None else None
        self.units[key] = UnitState(
            key, lot_key, row, "active", touched=True, made_by=pending.index
        )
        pending.new_units.append((key, lot_key))
        return lot_key

    def _retire_unit(self, pending: Pending, state: UnitState, status: str, pointer: str) -> None:
        if state.status != "active":
            fail(
                Conflict,
                pointer,
                f"serialised item {state.key[1]!r} of {state.key[0]} is {state.status}; "
                "it cannot be used again",
            )
        state.status = status
        state.touched = True
        state.status_by = pending.index
        lot_state = self.lots[state.lot_key]
        lot_state.consumed += 1.0
        lot_state.changed = True
        pending.flows.append((state.lot_key, "consume", 1.0))
        if (state.lot_key, "consumed") not in pending.lot_roles:
            pending.lot_roles.append((state.lot_key, "consumed"))

    # --- one event ------------------------------------------------------------------------

    def apply(self, pending: Pending, refs: list[Ref]) -> None:
        event = pending.event
        actor = self.actor
        is_field = pending.biz_step in FIELD_STEPS
        if actor.role is Role.FARMER and not is_field:
            fail(
                Forbidden,
                f"{pending.pointer}/bizStep",
                "a farmer token records field work (planting, fertilizing, spraying, "
                "irrigating, harvesting) on its household's parcels",
            )
        pending.epcs = sorted(
            {(canonical_epc(ref.uri), ref.field) for ref in refs if ref.field != "parentID"}
            | {(canonical_epc(ref.uri), "parentID") for ref in refs if ref.field == "parentID"}
        )
        if event.error_declaration is not None:
            self._declare(pending, refs)
            return
        checked = self._check_parcels(pending)
        if is_field and not checked:
            fail(
                Invalid,
                pending.pointer,
                "field work names its parcel: a readPoint or bizLocation "
                f"{self.base_url}/p/<DKBM>, or {DV_PREFIX}:parcel",
            )
        harvest = pending.biz_step == HARVESTING.uri
        own = [ref for ref in refs if ref.item is not None and ref.item.gtin in self.products]
        for ref in own:
            assert ref.item is not None
            self._authorize_product(self.products[ref.item.gtin], ref.pointer, harvest=harvest)
        if isinstance(event, ObjectEvent):
            self._object_event(pending, own, checked, harvest)
        elif isinstance(event, TransformationEvent):
            self._transformation(pending, own)
        elif isinstance(event, AggregationEvent):
            self._aggregation(pending, own)
        else:
            for ref in own:
                self._observe_ref(pending, ref)
        if actor.role is Role.FARMER and any(role != "produced" for _, role in pending.lot_roles):
            fail(
                Forbidden,
                pending.pointer,
                "a farmer token records field work; lots other than its own harvest are "
                "recorded by the cooperative",
            )
        self._owners(pending, checked)

    def _observe_ref(self, pending: Pending, ref: Ref) -> None:
        item = ref.item
        assert item is not None
        product = self.products[item.gtin]
        if item.serial is not None:
            unit = self._unit(ref, ref.pointer)
            self._observe(pending, self.lots[unit.lot_key], ref.pointer)
        elif item.lot is not None:
            self._observe(pending, self._lot((item.gtin, item.lot), product), ref.pointer)

    def _object_event(
        self,
        pending: Pending,
        own: list[Ref],
        checked: list[tuple[str, Holding, float | None]],
        harvest: bool,
    ) -> None:
        event = pending.event
        assert isinstance(event, ObjectEvent)
        for ref in own:
            item = ref.item
            assert item is not None
            product = self.products[item.gtin]
            if event.action == "ADD" and ref.field == "quantityList":
                if item.lot is None:
                    fail(
                        Invalid,
                        ref.pointer,
                        f"a quantity of {product.name} names its lot: …/01/{item.gtin}/10/<lot>",
                    )
                if harvest:
                    self._harvest(pending, ref, product, checked)
                else:
                    amount = self._quantity(ref, product, required=True)
                    assert amount is not None
                    key = (item.gtin, item.lot)
                    self._produce(pending, key, product, amount, "commissioning", ref.pointer)
            elif event.action == "ADD" and item.serial is not None:
                self._new_unit(pending, ref, product)
            elif event.action == "DELETE" and item.serial is not None:
                self._retire_unit(
                    pending, self._unit(ref, ref.pointer), "decommissioned", ref.pointer
                )
            elif event.action == "DELETE" and item.lot is not None and ref.quantity is not None:
                state = self._lot((item.gtin, item.lot), product)
                self._need_live(state, ref.pointer)
                amount = self._quantity(ref, product, required=False)
                self._consume(
                    pending, state, state.remaining if amount is None else amount, ref.pointer
                )
            else:
                self._observe_ref(pending, ref)

    def _harvest(
        self,
        pending: Pending,
        ref: Ref,
        product: Product,
        checked: list[tuple[str, Holding, float | None]],
    ) -> None:
        element = ref.quantity
        where = ref.pointer.removesuffix("/epcClass")
        if element is None or element.uom not in MASS_UNITS or product.unit != "KGM":
            fail(
                Invalid,
                f"{where}/uom",
                f"a harvest is weighed: give the quantity of {product.name} in KGM",
            )
        on = _local_date(pending.event)
        for dkbm, holding, _area in checked:
            if holding.contractor_household_id is None and holding.operator_cooperative_id is None:
                fail(Invalid, pending.pointer, f"parcel {dkbm} had no holder on {on}")
            if product.cooperative_id not in self._holder_coops(holding):
                fail(
                    Invalid,
                    pending.pointer,
                    f"parcel {dkbm} was held on {on} by neither cooperative "
                    f"{product.cooperative_id}, which owns {product.name}, nor one of its "
                    "member households",
                )
        amount = self._quantity(ref, product, required=True)
        assert amount is not None
        assert ref.item is not None and ref.item.lot is not None
        key = (product.gtin, ref.item.lot)
        state = self._produce(pending, key, product, amount, "harvest", ref.pointer)
        for dkbm, holding, area in checked:
            pending.lot_parcels.append((state.key, dkbm, holding, area))

    def _transformation(self, pending: Pending, own: list[Ref]) -> None:
        inputs: list[LotKey] = []
        outputs: list[LotKey] = []
        for ref in own:
            item = ref.item
            assert item is not None
            product = self.products[item.gtin]
            if ref.field == "inputQuantityList" and item.lot is not None:
                state = self._lot((item.gtin, item.lot), product)
                self._need_live(state, ref.pointer)
                amount = self._quantity(ref, product, required=True)
                assert amount is not None
                self._consume(pending, state, amount, ref.pointer)
                inputs.append(state.key)
            elif ref.field == "inputEPCList" and item.serial is not None:
                unit = self._unit(ref, ref.pointer)
                self._retire_unit(pending, unit, "consumed", ref.pointer)
                inputs.append(unit.lot_key)
            elif ref.field == "outputQuantityList" and item.lot is not None:
                amount = self._quantity(ref, product, required=True)
                assert amount is not None
                key = (item.gtin, item.lot)
                self._produce(pending, key, product, amount, "transformation", ref.pointer)
                outputs.append(key)
            elif ref.field == "outputEPCList" and item.serial is not None:
                outputs.append(self._new_unit(pending, ref, product))
            elif ref.field in ("outputQuantityList", "outputEPCList"):
                fail(
                    Invalid,
                    ref.pointer,
                    f"an output of {product.name} names its lot: …/01/{item.gtin}/10/<lot>",
                )
            else:
                self._observe_ref(pending, ref)
        for source in dict.fromkeys(inputs):
            for target in dict.fromkeys(outputs):
                if source != target:
                    pending.edges.append((source, target))

    def _aggregation(self, pending: Pending, own: list[Ref]) -> None:
        event = pending.event
        assert isinstance(event, AggregationEvent)
        parent = canonical_epc(event.parent_id) if event.parent_id else None
        for ref in own:
            item = ref.item
            assert item is not None
            if ref.field == "childEPCs" and item.serial is not None:
                unit = self._unit(ref, ref.pointer)
                if event.action == "ADD":
                    if unit.status != "active":
                        fail(
                            Conflict,
                            ref.pointer,
                            f"serialised item {item.serial!r} is {unit.status}; "
                            "it cannot be packed",
                        )
                    if parent is not None:
                        pending.containment.append((parent, unit.key))
                self._observe(pending, self.lots[unit.lot_key], ref.pointer)
            else:
                self._observe_ref(pending, ref)

    def _declare(self, pending: Pending, refs: list[Ref]) -> None:
        """An errorDeclaration: take the declared event's effects out of the lineage."""
        where = f"{pending.pointer}/errorDeclaration"
        target = self.stored.get(pending.event_id)
        if target is None:
            if pending.event_id in self.seen_ids:
                fail(
                    Invalid,
                    where,
                    "declares an event of the same capture; capture only the corrected event",
                )
            self._declare_ahead(pending, where)
            return
        if target.erroneous_since is not None:
            fail(
                Conflict,
                where,
                f"event {pending.event_id} was already declared erroneous at "
                f"{rfc3339(target.erroneous_since)}",
            )
        actor = self.actor
        allowed = (
            actor.is_admin
            or (actor.role is Role.MANAGER and actor.cooperative_id == target.cooperative_id)
            or (actor.role is Role.FARMER and actor.household_id == target.household_id)
        )
        if not allowed:
            fail(Forbidden, where, "only who may record the event may declare it erroneous")
        pending.declares = target
        pending.cooperative_id = target.cooperative_id
        pending.household_id = target.household_id
        for flow in lineage.flows_of_event(session=self.session, event_pk=target.id):
            if flow.voided:
                continue
            rows = products.lots_by_id(session=self.session, ids=[flow.lot_id], for_update=True)
            row = rows[flow.lot_id]
            state = self.lots.get((row.gtin, row.lot))
            if state is None:
                product = products.products_by_id(session=self.session, ids=[row.product_id])
                state = self._lot_state(row, product[row.product_id])
            if flow.kind == "produce":
                state.produced -= flow.quantity
            else:
                state.consumed -= flow.quantity
            state.changed = True
            self.declared_lots.add(state.key)
            if (state.key, "declared") not in pending.lot_roles:
                pending.lot_roles.append((state.key, "declared"))
        made, changed = lineage.units_touched_by(session=self.session, event_pk=target.id)
        for unit, status in [(u, "voided") for u in made] + [
            (u, "active") for u in changed if u.event_pk != target.id
        ]:
            unit_state = self._unit_state(unit)
            unit_state.status = status
            unit_state.touched = True
            unit_state.status_by = pending.index if status == "voided" else None
        pending.parcels.extend(
            dkbm for _, dkbm in self._parcels_of(pending) if dkbm not in pending.parcels
        )

    def _declare_ahead(self, pending: Pending, where: str) -> None:
        """A declaration of an event not (yet) received: stored, applied when it arrives."""
        waiting = self.waiting.get(pending.event_id)
        if waiting is not None:
            fail(
                Conflict,
                where,
                f"event {pending.event_id} was already declared erroneous (ledger entry "
                f"{waiting.ledger_seq}); it has not been received yet",
            )
        actor = self.actor
        pending.cooperative_id = actor.cooperative_id
        pending.household_id = actor.household_id if actor.role is Role.FARMER else None
        if actor.role is Role.FARMER and actor.household_id is not None:
            pending.cooperative_id = self._household_coop(actor.household_id)

    def declared_on_arrival(self, pending: Pending) -> None:
        """The event was declared erroneous before it arrived: its effects leave the lineage
        at once, as if the declaration came after it."""
        declaration = self.waiting.get(pending.event_id)
        if declaration is None or pending.event.error_declaration is not None:
            return
        allowed = declaration.cooperative_id is None or (
            declaration.cooperative_id == pending.cooperative_id
            and (
                declaration.household_id is None or declaration.household_id == pending.household_id
            )
        )
        if not allowed:
            return  # not a declaration its author could have made of this event: left waiting
        pending.declared_by = declaration
        made = {key for key, _ in pending.new_units}
        for key, kind, amount in pending.flows:
            state = self.lots[key]
            if kind == "produce":
                state.produced -= amount
            else:
                state.consumed -= amount
            state.changed = True
            self.declared_lots.add(key)
        for unit in self.units.values():
            if unit.key in made and unit.made_by == pending.index:
                unit.status, unit.status_by, unit.touched = "voided", pending.index, True
            elif unit.status_by == pending.index:
                unit.status, unit.status_by, unit.touched = "active", None, True

    def _owners(self, pending: Pending, checked: list[tuple[str, Holding, float | None]]) -> None:
        actor = self.actor
        coop: int | None = None
        for key, _ in pending.lot_roles:
            coop = self.lots[key].product.cooperative_id
            break
        household: int | None = actor.household_id if actor.role is Role.FARMER else None
        for _dkbm, holding, _area in checked:
            if household is None:
                household = holding.contractor_household_id
            if coop is None:
                coops = self._holder_coops(holding)
                if actor.cooperative_id in coops:
                    coop = actor.cooperative_id
                elif holding.operator_cooperative_id is not None:
                    coop = holding.operator_cooperative_id
                elif coops:
                    coop = min(coops)
        if coop is None and actor.role is Role.MANAGER:
            coop = actor.cooperative_id
        if coop is None and actor.role is Role.FARMER and actor.household_id is not None:
            coop = self._household_coop(actor.household_id)
        pending.cooperative_id = coop
        pending.household_id = household

    def check_declared_lots(self, pendings: Sequence[Pending]) -> None:
        """After declarations, no lot may have given more than it still holds."""
        for key in sorted(self.declared_lots):
            state = self.lots[key]
            if state.consumed > state.produced * (1 + QUANTITY_EPSILON) + QUANTITY_EPSILON:
                declaring = next(
                    (p for p in pendings if (key, "declared") in p.lot_roles), pendings[0]
                )
                fail(
                    Conflict,
                    f"{declaring.pointer}/errorDeclaration",
                    f"declaring this event erroneous leaves {state.label} with "
                    f"{state.consumed:g} {state.product.unit} used but only "
                    f"{state.produced:g} made; declare the events that used it erroneous "
                    "first, or capture the corrected event in the same capture",
                )
