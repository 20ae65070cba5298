"""One event on its way into the chain: what it names, and what it will write.

Pure: no session, no ledger. :func:`collect_refs` lists the identifiers an event names (GTIN
items, lots and serials, read as Digital Links or EPC URIs) and :func:`parcel_refs` the
parcels (a ``/p/<DKBM>`` URI on the project's host or a ``dv:parcel`` value); a
:class:`Pending` gathers what the rules decide the event will write. Every refusal names the
event's field by a JSON pointer (:func:`fail`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NoReturn

from digital_village.errors import DomainError, Invalid
from digital_village.parcels.service import Holding
from digital_village.trace.epcis import EventModel, QuantityElement
from digital_village.trace.identifiers import (
    PARCEL_EXTENSIONS,
    GtinItem,
    IdentifierError,
    parcel_of_extension,
    parcel_of_uri,
    parse_gtin_identifier,
)
from digital_village.trace.models import Event

LotKey = tuple[str, str]
UnitKey = tuple[str, str]


def fail(error: type[DomainError], pointer: str, message: str) -> NoReturn:
    raise error(f"{pointer}: {message}", errors=[{"pointer": pointer, "message": message}])


def rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@lru_cache(maxsize=64)
def _zone(offset: str) -> dt.timezone:
    sign = -1 if offset.startswith("-") else 1
    hours, minutes = offset[1:].split(":")
    return dt.timezone(sign * dt.timedelta(hours=int(hours), minutes=int(minutes)))


def local_date(event: EventModel) -> dt.date:
    """The day of the event where it happened (by its eventTimeZoneOffset)."""
    return event.event_time.astimezone(_zone(event.event_time_zone_offset)).date()


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
    parcel_refs: list[tuple[str, str]] = field(default_factory=list)

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


def event_field(event: EventModel, name: str) -> Any:
    """A field of the event's type, or None when its type has no such field."""
    # vars(): a field the event type lacks is None here, without pydantic's slow __getattr__.
    return vars(event).get(name)


def _event_fields(event: EventModel) -> list[tuple[str, list[str] | None]]:
    return [
        ("epcList", event_field(event, "epc_list")),
        ("childEPCs", event_field(event, "child_epcs")),
        ("inputEPCList", event_field(event, "input_epc_list")),
        ("outputEPCList", event_field(event, "output_epc_list")),
    ]


def _quantity_fields(event: EventModel) -> list[tuple[str, list[QuantityElement] | None]]:
    return [
        ("quantityList", event_field(event, "quantity_list")),
        ("childQuantityList", event_field(event, "child_quantity_list")),
        ("inputQuantityList", event_field(event, "input_quantity_list")),
        ("outputQuantityList", event_field(event, "output_quantity_list")),
    ]


def _item(uri: str, pointer: str) -> GtinItem | None:
    try:
        return parse_gtin_identifier(uri)
    except IdentifierError as error:
        fail(Invalid, pointer, str(error))


def collect_refs(event: EventModel, pointer: str) -> list[Ref]:
    """Every identifier the event names, with its JSON pointer and its GTIN reading."""
    refs: list[Ref] = []
    for name, values in _event_fields(event):
        for i, uri in enumerate(values or []):
            where = f"{pointer}/{name}/{i}"
            refs.append(Ref(name, where, uri, _item(uri, where)))
    parent = event_field(event, "parent_id")
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


def parcel_refs(event: EventModel, pointer: str, *, base_url: str) -> list[tuple[str, str]]:
    """(pointer, DKBM) of every parcel the event names, each parcel once."""
    found: list[tuple[str, str]] = []

    def by_uri(uri: str | None, where: str) -> None:
        if uri is None:
            return
        try:
            dkbm = parcel_of_uri(uri, base_url=base_url)
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

    by_uri(event.read_point.id if event.read_point else None, f"{pointer}/readPoint/id")
    by_uri(event.biz_location.id if event.biz_location else None, f"{pointer}/bizLocation/id")
    by_uri(event_field(event, "parent_id"), f"{pointer}/parentID")
    by_extension(event.extensions, pointer)
    ilmd = event_field(event, "ilmd")
    if ilmd:
        by_extension(ilmd, f"{pointer}/ilmd")
    unique: dict[str, str] = {}
    for where, dkbm in found:
        unique.setdefault(dkbm, where)
    return [(where, dkbm) for dkbm, where in unique.items()]
