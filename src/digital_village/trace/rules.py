"""The rules a capture checks events by, against the chain's lots, serial items and parcels.

:class:`CaptureState` applies one event at a time to what the capture has seen so far: a
harvest may create a lot that the next event of the same capture presses. It reads only the
:class:`~digital_village.trace.snapshot.Snapshot` loaded for the document and keeps lots and
items in a :class:`~digital_village.trace.stock.Stock`; it never touches the database. Every
refusal names the event's field by a JSON pointer.

Rules for identifiers the project owns (a GTIN registered as a product, a parcel URI on the
project's host or a ``dv:parcel`` value; everything else is stored as given):

* lots and serialised items follow the state machine of :mod:`digital_village.trace.stock`;
* field work (planting, fertilizing, spraying, irrigating, harvesting) names its parcels, which
  must exist, not be retired, and be held on that day by the farmer's household or the
  cooperative (``parcels.holder_at``); a harvest's product belongs to that cooperative;
* a token records only what its role and scope allow (a farmer: field work on its household's
  parcels; a manager: its cooperative's products and parcels);
* an errorDeclaration names a stored event by its eventID and takes that event's effects out
  of the lineage; a corrective event may then make the same lot again.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

from digital_village.auth.actor import Actor
from digital_village.auth.models import Role
from digital_village.errors import Conflict, Forbidden, Invalid
from digital_village.parcels.service import Holding, ParcelFacts
from digital_village.trace.epcis import AggregationEvent, ObjectEvent, TransformationEvent
from digital_village.trace.identifiers import COUNT_UNITS, canonical_epc, convert, in_base_unit
from digital_village.trace.models import Product
from digital_village.trace.pending import (
    LotKey,
    Pending,
    Ref,
    fail,
    local_date,
    rfc3339,
)
from digital_village.trace.snapshot import Snapshot
from digital_village.trace.stock import Stock
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

Checked = list[tuple[str, Holding, float | None]]  # (DKBM, its holders that day, area in 亩)


# One quantity element's largest amount, in its kind's base unit: KGM, LTR or H87
# (Settings.max_quantity).
DEFAULT_MAX_QUANTITY: Final = 10_000_000.0


class CaptureState:
    """The state of one capture while its events are checked."""

    def __init__(
        self,
        *,
        snapshot: Snapshot,
        actor: Actor,
        base_url: str,
        seen_ids: dict[str, int],
        max_quantity: float = DEFAULT_MAX_QUANTITY,
    ) -> None:
        self.max_quantity = max_quantity
        self.snapshot = snapshot
        self.actor = actor
        self.base_url = base_url
        self.products = snapshot.products
        self.stock = Stock(snapshot)
        self.seen_ids = seen_ids  # eventID → index, of this capture's events (not declarations)

    # --- parcels --------------------------------------------------------------------------

    def _parcel(self, dkbm: str, pointer: str, when: dt.datetime) -> ParcelFacts:
        parcel = self.snapshot.parcels.get(dkbm)
        if parcel is None:
            fail(Invalid, pointer, f"no parcel with DKBM {dkbm} is registered")
        if parcel.retired_at is not None and when >= parcel.retired_at:
            successors = self.snapshot.successors.get(dkbm, [])
            after = f"; record work on {', '.join(successors)}" if successors else ""
            fail(
                Invalid,
                pointer,
                f"parcel {dkbm} was retired on {parcel.retired_at.date()}{after}",
            )
        return parcel

    def _household_coop(self, household_id: int) -> int | None:
        return self.snapshot.household_coops.get(household_id)

    def _owner(self, product: Product) -> str:
        """The product's cooperative as people name it (name and 统一社会信用代码)."""
        return self.snapshot.cooperative_names.get(product.cooperative_id, "another cooperative")

    def _holder_coops(self, holding: Holding) -> set[int]:
        coops: set[int] = set()
        if holding.operator_cooperative_id is not None:
            coops.add(holding.operator_cooperative_id)
        if holding.contractor_household_id is not None:
            coop = self._household_coop(holding.contractor_household_id)
            if coop is not None:
                coops.add(coop)
        return coops

    def _check_parcels(self, pending: Pending) -> Checked:
        on = local_date(pending.event)
        checked: Checked = []
        for where, dkbm in pending.parcel_refs:
            parcel = self._parcel(dkbm, where, pending.event_time)
            holding = self.snapshot.holdings[(dkbm, on)]
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
            f"{product.name} ({product.gtin}) belongs to {self._owner(product)}; "
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
        # The limit holds in the kind's base unit, so 20,000 TNE is as far past it as 2e7 KGM.
        amount_in_base, base = in_base_unit(float(element.quantity), unit or product.unit)
        if amount_in_base > self.max_quantity:
            sent = f"{element.quantity:g} {unit or ''}".strip()
            as_base = "" if sent.endswith(base) else f" ({amount_in_base:g} {base})"
            fail(
                Invalid,
                f"{where}/quantity",
                f"{sent}{as_base} is past the limit: one quantity is at most "
                f"{self.max_quantity:.0f} {base} (DV_MAX_QUANTITY)",
            )
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
            unit = self.stock.unit(ref, ref.pointer)
            self.stock.observe(pending, self.stock.lots[unit.lot_key], ref.pointer)
        elif item.lot is not None:
            self.stock.observe(pending, self.stock.lot((item.gtin, item.lot), product), ref.pointer)

    def _object_event(
        self,
        pending: Pending,
        own: list[Ref],
        checked: Checked,
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
                    self.stock.produce(pending, key, product, amount, "commissioning", ref.pointer)
            elif event.action == "ADD" and item.serial is not None:
                self.stock.new_unit(pending, ref, product)
            elif event.action == "DELETE" and item.serial is not None:
                self.stock.retire_unit(
                    pending, self.stock.unit(ref, ref.pointer), "decommissioned", ref.pointer
                )
            elif event.action == "DELETE" and item.lot is not None and ref.quantity is not None:
                state = self.stock.lot((item.gtin, item.lot), product)
                self.stock.need_live(state, ref.pointer)
                amount = self._quantity(ref, product, required=False)
                self.stock.consume(
                    pending, state, state.remaining if amount is None else amount, ref.pointer
                )
            else:
                self._observe_ref(pending, ref)

    def _harvest(
        self,
        pending: Pending,
        ref: Ref,
        product: Product,
        checked: Checked,
    ) -> None:
        element = ref.quantity
        where = ref.pointer.removesuffix("/epcClass")
        if element is None or element.uom not in MASS_UNITS or product.unit != "KGM":
            fail(
                Invalid,
                f"{where}/uom",
                f"a harvest is weighed: give the quantity of {product.name} in KGM",
            )
        on = local_date(pending.event)
        for dkbm, holding, _area in checked:
            if holding.contractor_household_id is None and holding.operator_cooperative_id is None:
                fail(Invalid, pending.pointer, f"parcel {dkbm} had no holder on {on}")
            if product.cooperative_id not in self._holder_coops(holding):
                fail(
                    Invalid,
                    pending.pointer,
                    f"parcel {dkbm} was held on {on} by neither {self._owner(product)}, "
                    f"which owns {product.name}, nor one of its member households",
                )
        amount = self._quantity(ref, product, required=True)
        assert amount is not None
        assert ref.item is not None and ref.item.lot is not None
        key = (product.gtin, ref.item.lot)
        state = self.stock.produce(pending, key, product, amount, "harvest", ref.pointer)
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
                state = self.stock.lot((item.gtin, item.lot), product)
                self.stock.need_live(state, ref.pointer)
                amount = self._quantity(ref, product, required=True)
                assert amount is not None
                self.stock.consume(pending, state, amount, ref.pointer)
                inputs.append(state.key)
            elif ref.field == "inputEPCList" and item.serial is not None:
                unit = self.stock.unit(ref, ref.pointer)
                self.stock.retire_unit(pending, unit, "consumed", ref.pointer)
                inputs.append(unit.lot_key)
            elif ref.field == "outputQuantityList" and item.lot is not None:
                amount = self._quantity(ref, product, required=True)
                assert amount is not None
                key = (item.gtin, item.lot)
                self.stock.produce(pending, key, product, amount, "transformation", ref.pointer)
                outputs.append(key)
            elif ref.field == "outputEPCList" and item.serial is not None:
                outputs.append(self.stock.new_unit(pending, ref, product))
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
                unit = self.stock.unit(ref, ref.pointer)
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
                self.stock.observe(pending, self.stock.lots[unit.lot_key], ref.pointer)
            else:
                self._observe_ref(pending, ref)

    def _declare(self, pending: Pending, refs: list[Ref]) -> None:
        """An errorDeclaration: take the declared event's effects out of the lineage."""
        where = f"{pending.pointer}/errorDeclaration"
        target = self.snapshot.stored.get(pending.event_id)
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
        effects = self.snapshot.declared[target.id]
        for flow in effects.flows:
            row = self.snapshot.lots[flow.lot_id]
            self.stock.take_back(pending, (row.gtin, row.lot), flow.kind, flow.quantity)
        for unit in effects.made:
            self.stock.restore_unit((unit.gtin, unit.serial), "voided", pending.index)
        for unit in effects.changed:
            if unit.event_pk != target.id:
                self.stock.restore_unit((unit.gtin, unit.serial), "active", None)
        pending.parcels.extend(
            dkbm for _, dkbm in pending.parcel_refs if dkbm not in pending.parcels
        )

    def _declare_ahead(self, pending: Pending, where: str) -> None:
        """A declaration of an event not (yet) received: stored, applied when it arrives."""
        waiting = self.snapshot.waiting.get(pending.event_id)
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
        declaration = self.snapshot.waiting.get(pending.event_id)
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
        self.stock.void_arrival(pending)

    def _owners(self, pending: Pending, checked: Checked) -> None:
        actor = self.actor
        coop: int | None = None
        for key, _ in pending.lot_roles:
            coop = self.stock.lots[key].product.cooperative_id
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
