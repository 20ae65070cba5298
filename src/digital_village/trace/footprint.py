"""What a capture's checks read, and whether entries appended since could have changed it.

A capture may check its events in a read session before it takes the log's lock
(:func:`digital_village.trace.capture.capture`). Every change to what those checks read is
appended to the log under that lock, in the same transaction: so once the capture holds the
lock, the entries appended since its read began are all that may have made its checks stale.
:meth:`Footprint.touched_by` judges one such entry, erring on the side of "touched":

- an EPCIS event touches the capture if it has one of its eventIDs (the same event, or a
  declaration of it), changed the totals of one of its lots or made one of them (its entry's
  ``effects.lots``), or — when the capture names serialised items — names items itself
  (an item's status may have changed);
- a product's entry, if the capture names that GTIN;
- a parcel's entry, if its chain or its bytes name one of the capture's parcels;
- the county registry's households, contracts and collectives, if the capture names any parcel
  (holders and memberships come from them) or is a farmer's;
- devices, sealed readings and certificates never (no capture reads them);
- any other kind always.

The capture's own view of each entry is a few set look-ups; bodies are parsed only for EPCIS
events.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

import orjson

from digital_village.trace import recorded
from digital_village.trace.pending import Pending
from digital_village.trace.rules import CaptureState

_UNTOUCHING_PREFIXES: Final = ("iot.", "trace.certificate.")
_REGISTRY_PREFIXES: Final = ("household.", "contract.", "collective.")
# Where an EPCIS event names serialised items (instance-level identifiers).
_ITEM_FIELDS: Final = ("epcList", "childEPCs", "inputEPCList", "outputEPCList", "parentID")


@dataclass(frozen=True)
class Footprint:
    """The identifiers a capture's checks read by."""

    event_ids: frozenset[str]
    lots: frozenset[str]  # as entries name them (recorded.lot_key)
    gtins: frozenset[str]
    parcels: frozenset[str]  # DKBMs named, and the successors of retired ones
    names_items: bool
    reads_holders: bool  # parcels' holders or a farmer's cooperative were read

    @classmethod
    def of(cls, pendings: Iterable[Pending], work: CaptureState) -> Footprint:
        pendings = list(pendings)
        loaded = work.snapshot
        parcels = {dkbm for pending in pendings for _, dkbm in pending.parcel_refs}
        parcels.update(dkbm for found in loaded.successors.values() for dkbm in found)
        lots = {recorded.lot_key(*key) for key in work.stock.lots}
        lots.update(recorded.lot_key(row.gtin, row.lot) for row in loaded.lots.values())
        return cls(
            event_ids=frozenset(pending.event_id for pending in pendings),
            lots=frozenset(lots),
            gtins=frozenset(loaded.products) | {p.gtin for p in loaded.products_by_id.values()},
            parcels=frozenset(parcels),
            names_items=bool(loaded.units or work.stock.units),
            reads_holders=bool(parcels) or work.actor.household_id is not None,
        )

    def touched_by(self, kind: str, chain_key: str | None, body: bytes) -> bool:
        """Whether an entry appended since the checks read may change what they found."""
        if kind.startswith(_UNTOUCHING_PREFIXES):
            return False
        if kind == recorded.EVENT_KIND:
            return self._touched_by_event(body)
        if kind.startswith("trace.product."):
            return chain_key is None or chain_key.removeprefix("product:") in self.gtins
        if kind.startswith("parcel."):
            if chain_key is not None and chain_key.removeprefix("parcel:") in self.parcels:
                return True
            return any(f'"{dkbm}"'.encode() in body for dkbm in self.parcels)
        if kind.startswith(_REGISTRY_PREFIXES):
            return self.reads_holders
        return True

    def _touched_by_event(self, body: bytes) -> bool:
        try:
            data = orjson.loads(body)["data"]
            event: dict[str, Any] = data["event"]
            effects: dict[str, Any] = data.get("effects") or {}
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return True  # not as this version writes it: take it as a change
        if event.get("eventID") in self.event_ids:
            return True
        if not self.lots.isdisjoint(effects.get("lots") or ()):
            return True
        return self.names_items and (
            bool(effects.get("units")) or any(event.get(name) for name in _ITEM_FIELDS)
        )
