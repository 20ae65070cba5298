"""Lots and serialised items as one capture sees them: what was made, what is left, who is live.

Pure: the :class:`Stock` starts from a :class:`~digital_village.trace.snapshot.Snapshot` and
changes only in memory; :mod:`digital_village.trace.capture` writes the changed lots and items
once every event has passed. The state machine:

* a lot is made (``produce``) by a harvest, a commissioning or a transformation output, once;
  later events may only name it while it is live;
* ``consume`` never takes more than is left, so a lot cannot be used twice over;
* a serialised item is commissioned into the lot its URI names (``new_unit``), then consumed,
  decommissioned or packed while active (``retire_unit``);
* a declaration takes an event's quantities back (``take_back``) and restores its items;
  afterwards no lot may have given more than it holds (``check_declared_lots``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn

from digital_village.errors import Conflict, Invalid
from digital_village.trace.epcis import TransformationEvent
from digital_village.trace.identifiers import COUNT_UNITS
from digital_village.trace.models import Lot, Product, Unit
from digital_village.trace.pending import LotKey, Pending, Ref, UnitKey, fail
from digital_village.trace.products import QUANTITY_EPSILON
from digital_village.trace.snapshot import Snapshot


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


class UsedUpBefore(Exception):
    """A stored lot was used up before this capture; the event that did it is in the store.

    The rules do not read the store: the capture names that event and refuses the document
    (:func:`used_up`).
    """

    def __init__(self, lot_id: int, label: str, pointer: str) -> None:
        super().__init__(f"{label} was already used up")
        self.lot_id = lot_id
        self.label = label
        self.pointer = pointer


def used_up(label: str, pointer: str, by: str | None) -> NoReturn:
    """Refuse taking from a lot with nothing left, naming the event that took the last of it."""
    by_event = f" by event {by}" if by else ""
    fail(
        Conflict, pointer, f"{label} was already used up{by_event}; a lot cannot be consumed twice"
    )


class Stock:
    """The lots and items a capture's events make, use, pack and declare erroneous."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.lots: dict[LotKey, LotState] = {}
        self.units: dict[UnitKey, UnitState] = {}
        self.declared_lots: set[LotKey] = set()
        for row in snapshot.lots.values():
            state = LotState(
                (row.gtin, row.lot),
                snapshot.products_by_id[row.product_id],
                row,
                row.produced,
                row.consumed,
                origin=row.origin,
                produced_at=row.produced_at,
            )
            self.lots[state.key] = state
        stored_units = list(snapshot.units.values()) + [
            unit
            for declared in snapshot.declared.values()
            for unit in declared.made + declared.changed
        ]
        for unit in stored_units:
            key = (unit.gtin, unit.serial)
            if key not in self.units:
                lot_row = snapshot.lots[unit.lot_id]
                lot_key = (lot_row.gtin, lot_row.lot)
                self.units[key] = UnitState(key, lot_key, unit, unit.status)

    def lot(self, key: LotKey, product: Product) -> LotState:
        """The lot's state; a lot not stored and not yet made starts empty."""
        state = self.lots.get(key)
        if state is None:
            state = LotState(key, product, None, 0.0, 0.0)
            self.lots[key] = state
        return state

    def need_live(self, state: LotState, pointer: str) -> None:
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

    def produce(
        self,
        pending: Pending,
        key: LotKey,
        product: Product,
        amount: float,
        origin: str,
        pointer: str,
    ) -> LotState:
        state = self.lot(key, product)
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

    def consume(self, pending: Pending, state: LotState, amount: float, pointer: str) -> None:
        self.need_live(state, pointer)
        unit = state.product.unit
        if amount > state.remaining * (1 + QUANTITY_EPSILON) + QUANTITY_EPSILON:
            if state.remaining <= QUANTITY_EPSILON:
                if state.used_up_by is None and state.row is not None:
                    raise UsedUpBefore(state.row.id, state.label, pointer)
                used_up(state.label, pointer, state.used_up_by)
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

    def observe(self, pending: Pending, state: LotState, pointer: str) -> None:
        self.need_live(state, pointer)
        if not any(key == state.key for key, _ in pending.lot_roles):
            pending.lot_roles.append((state.key, "observed"))

    def unit(self, ref: Ref, pointer: str) -> UnitState:
        """A serialised item that exists (commissioned and not declared erroneous)."""
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

    def new_unit(self, pending: Pending, ref: Ref, product: Product) -> LotKey:
        """Commission the serialised item ``ref`` names into its lot; returns the lot."""
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
        self.produce(pending, lot_key, product, 1.0, origin, ref.pointer)
        # A serial whose commissioning was declared erroneous keeps its row and is reused.
        row = existing.row if existing is not None else None
        self.units[key] = UnitState(
            key, lot_key, row, "active", touched=True, made_by=pending.index
        )
        pending.new_units.append((key, lot_key))
        return lot_key

    def retire_unit(self, pending: Pending, state: UnitState, status: str, pointer: str) -> None:
        """An active item is consumed or decommissioned: one piece leaves its lot."""
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

    def _undo(self, key: LotKey, kind: str, quantity: float) -> None:
        """Take a declared event's quantity back out of a lot (``kind``: produce or consume)."""
        state = self.lots[key]
        if kind == "produce":
            state.produced -= quantity
        else:
            state.consumed -= quantity
        state.changed = True
        self.declared_lots.add(key)

    def take_back(self, pending: Pending, key: LotKey, kind: str, quantity: float) -> None:
        """Undo what the event ``pending`` declares erroneous did to a lot."""
        self._undo(key, kind, quantity)
        if (key, "declared") not in pending.lot_roles:
            pending.lot_roles.append((key, "declared"))

    def void_arrival(self, pending: Pending) -> None:
        """Take back what ``pending`` itself did: it arrived already declared erroneous."""
        made = {key for key, _ in pending.new_units}
        for key, kind, amount in pending.flows:
            self._undo(key, kind, amount)
        for unit in self.units.values():
            if unit.key in made and unit.made_by == pending.index:
                unit.status, unit.status_by, unit.touched = "voided", pending.index, True
            elif unit.status_by == pending.index:
                unit.status, unit.status_by, unit.touched = "active", None, True

    def restore_unit(self, key: UnitKey, status: str, by: int | None) -> None:
        """Set an item's status back as a declaration says (``by``: the declaring event)."""
        state = self.units[key]
        state.status = status
        state.touched = True
        state.status_by = by

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
