"""Each ledger-bound row of the chain against the entry that records it, one row at a time.

Rows are selected raw (``ledger.stored``), so a value of another type is a difference, never
an error; each comparison returns (entry index, what differs) naming the row, the field, both
values and the entry (``trace/recorded.py`` says where an entry records each field). Used by
the log audit's checker and by the per-record checks (``trace/audit.py``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Select, select

from digital_village.ledger.audit import entry_data
from digital_village.ledger.models import LedgerEntry
from digital_village.ledger.stored import UNREADABLE, as_date, as_number, as_time, raw
from digital_village.regions.models import Cooperative, Household
from digital_village.trace import recorded, store
from digital_village.trace.models import Certificate, Event, Lot, LotParcel, Product, Unit

Issue = tuple[int, str]
"""(entry index, what differs)."""


def _differ(subject: str, seq: int, diffs: list[tuple[str, Any, Any]]) -> list[Issue]:
    if not diffs:
        return []
    path, shown, entry = diffs[0]
    more = f" (and {len(diffs) - 1} more fields)" if len(diffs) > 1 else ""
    # A field of an event's effects is named by its last token (the subject names the lot).
    field = path.rsplit("/", 1)[-1] if path.startswith("/data/effects/") else path[6:]
    return [
        (
            seq,
            f"{subject}: {field} is {shown!r} in its row but {entry!r} in ledger entry "
            f"{seq}{more}: row edited",
        )
    ]


def envelope(data: Mapping[str, Any]) -> dict[str, Any]:
    return {"data": data}


# --- rows read raw ------------------------------------------------------------------------------


def product_rows() -> Select[Any]:
    return select(
        raw(Product.id),
        raw(Product.gtin),
        raw(Product.name),
        raw(Product.category),
        raw(Product.unit),
        raw(Product.net_quantity),
        raw(Product.net_unit),
        raw(Product.ledger_seq),
        Cooperative.uscc.label("uscc"),
    ).outerjoin(Cooperative, Cooperative.id == Product.cooperative_id)


def lot_rows() -> Select[Any]:
    return select(
        raw(Lot.id),
        raw(Lot.gtin),
        raw(Lot.lot),
        raw(Lot.origin),
        raw(Lot.produced),
        raw(Lot.consumed),
        raw(Lot.produced_at),
    )


def lot(row: Any) -> SimpleNamespace:
    return SimpleNamespace(
        id=row.id,
        gtin=row.gtin,
        lot=row.lot,
        origin=row.origin,
        produced=as_number(row.produced),
        consumed=as_number(row.consumed),
        produced_at=as_time(row.produced_at),
    )


def certificate_rows() -> Select[Any]:
    return select(
        raw(Certificate.id),
        raw(Certificate.number),
        raw(Certificate.product_name),
        raw(Certificate.quantity),
        raw(Certificate.unit),
        raw(Certificate.origin),
        raw(Certificate.issued_on),
        raw(Certificate.issuer),
        raw(Certificate.contact),
        raw(Certificate.contact_salt),
        raw(Certificate.basis),
        raw(Certificate.commitments),
        raw(Certificate.ledger_seq),
        Lot.gtin.label("gtin"),
        Lot.lot.label("lot"),
    ).outerjoin(Lot, Lot.id == Certificate.lot_id)


def certificate(row: Any) -> SimpleNamespace:
    values = dict(row._mapping)
    values["quantity"] = as_number(row.quantity)
    values["issued_on"] = as_date(row.issued_on)
    return SimpleNamespace(**values)


def harvest_rows() -> Select[Any]:
    return (
        select(
            raw(LotParcel.id),
            raw(LotParcel.dkbm),
            raw(LotParcel.area_mu),
            Event.ledger_seq.label("seq"),
            Lot.gtin.label("gtin"),
            Lot.lot.label("lot"),
            Household.cbfbm.label("contractor"),
            Cooperative.uscc.label("operator"),
        )
        .outerjoin(Event, Event.id == LotParcel.event_pk)
        .outerjoin(Lot, Lot.id == LotParcel.lot_id)
        .outerjoin(Household, Household.id == LotParcel.household_id)
        .outerjoin(Cooperative, Cooperative.id == LotParcel.operator_cooperative_id)
        .where(LotParcel.voided.is_(False))
    )


def unit_rows() -> Select[Any]:
    return (
        select(
            raw(Unit.id),
            raw(Unit.gtin),
            raw(Unit.serial),
            Lot.gtin.label("lot_gtin"),
            Lot.lot.label("lot"),
            Event.ledger_seq.label("seq"),
        )
        .outerjoin(Lot, Lot.id == Unit.lot_id)
        .outerjoin(Event, Event.id == Unit.event_pk)
    )


def event_rows() -> Select[Any]:
    return select(
        raw(Event.id),
        raw(Event.event_id),
        raw(Event.event_type),
        raw(Event.action),
        raw(Event.biz_step),
        raw(Event.read_point),
        raw(Event.biz_location),
        raw(Event.event_time),
        raw(Event.ledger_seq),
        raw(Event.declaration),
        LedgerEntry.kind.label("entry_kind"),
        LedgerEntry.body.label("entry_body"),
    ).outerjoin(LedgerEntry, LedgerEntry.seq == Event.ledger_seq)


# --- comparisons, one row each ------------------------------------------------------------------


def product_issues(row: Any, newest: tuple[int, Mapping[str, Any] | None] | None) -> list[Issue]:
    """A product row against the newest entry of its chain ``product:<GTIN>`` (index and data;
    no data: that entry is no product entry): the row must name that entry and hold its facts."""
    subject = f"product {row.gtin}"
    seq = row.ledger_seq if isinstance(row.ledger_seq, int) else -1
    if newest is None:
        return [
            (seq, f"{subject}: no ledger entry records this product (row added behind the log)")
        ]
    head, data = newest
    if data is None:
        return [(head, f"{subject}: ledger entry {head}, the newest of its chain, is no product")]
    if row.ledger_seq != head:
        return [
            (
                head,
                f"{subject}: its row names ledger entry {row.ledger_seq!r} but the newest entry "
                f"of its chain {recorded.product_chain(str(row.gtin))} is {head}: row edited",
            )
        ]
    return _differ(subject, head, recorded.differences(recorded.PRODUCT, row, envelope(data)))


def certificate_issues(row: Any, data: Mapping[str, Any] | None) -> list[Issue]:
    subject = f"certificate {row.number}"
    seq = row.ledger_seq if isinstance(row.ledger_seq, int) else -1
    if data is None:
        return [(seq, f"{subject}: ledger entry {row.ledger_seq!r} is not its issue")]
    bindings = recorded.certificate_bindings(row)
    return _differ(subject, seq, recorded.differences(bindings, row, envelope(data)))


def lot_issues(
    row: Any, latest: tuple[int, dict[str, Any]] | None, made: tuple[int, dict[str, Any]] | None
) -> list[Issue]:
    """A lot row against the totals of the last event that changed it and the record of the
    event that made it (each (entry index, the lot's record in its effects))."""
    subject = f"lot {row.gtin}/{row.lot}"
    if latest is None:
        return [(-1, f"{subject}: no ledger entry records this lot (row added behind the log)")]
    key = recorded.lot_key(row.gtin, row.lot)
    found: list[Issue] = []
    for (seq, record), made_here in ((latest, False), *([(made, True)] if made else [])):
        wrapped = envelope({"effects": {"lots": {key: record}}})
        bindings = recorded.lot_bindings(row.gtin, row.lot, made_here=made_here)
        if made_here:
            bindings = bindings[2:]  # the totals are the latest entry's
        found += _differ(subject, seq, recorded.differences(bindings, row, wrapped))
    return found[:1]


def harvest_issues(row: Any, parcels: Mapping[str, Any] | None) -> list[Issue]:
    subject = f"harvest of lot {row.gtin}/{row.lot} on parcel {row.dkbm}"
    seq = row.seq if isinstance(row.seq, int) else -1
    if parcels is None:
        return [(seq, f"{subject}: ledger entry {row.seq!r} records no harvest effects")]
    shown = SimpleNamespace(
        lot_key=recorded.lot_key(row.gtin, row.lot),
        contractor=row.contractor,
        operator=row.operator,
        area_mu=as_number(row.area_mu) if row.area_mu is not None else None,
    )
    wrapped = envelope({"effects": {"parcels": parcels}})
    diffs = recorded.differences(recorded.harvest_bindings(str(row.dkbm)), shown, wrapped)
    return _differ(subject, seq, diffs)


def unit_issues(row: Any, units: Mapping[str, Any] | None) -> list[Issue]:
    """A serialised item's lot against the entry of the event that commissioned it."""
    seq = row.seq if isinstance(row.seq, int) else -1
    key = recorded.unit_key(str(row.gtin), str(row.serial))
    subject = f"item {key}"
    if units is None:
        return [(seq, f"{subject}: ledger entry {row.seq!r} records no commissioned items")]
    shown = None if row.lot_gtin is None else recorded.lot_key(row.lot_gtin, row.lot)
    entered = units.get(key)
    if shown != entered:
        return [
            (
                seq,
                f"{subject}: its lot is {shown!r} in its row but {entered!r} in ledger entry "
                f"{seq}: row edited",
            )
        ]
    return []


def units_of(data: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The items an event entry records as commissioned; None when it records no effects."""
    if data is None or not recorded.records_effects(data):
        return None
    units = (data.get("effects") or {}).get("units")
    return units if isinstance(units, dict) else {}


def event_issues(row: Any) -> list[Issue]:
    """An event row against the EPCIS event its entry records."""
    seq = row.ledger_seq if isinstance(row.ledger_seq, int) else -1
    subject = f"event {row.event_id}"
    data = entry_data(row.entry_body) if row.entry_kind == recorded.EVENT_KIND else None
    event = data.get("event") if data else None
    if not isinstance(event, dict):
        return [(seq, f"{subject}: ledger entry {row.ledger_seq!r} records no EPCIS event")]
    when = as_time(row.event_time)
    try:
        recorded_time = dt.datetime.fromisoformat(
            str(event.get("eventTime")).replace("Z", "+00:00")
        )
    except ValueError:
        recorded_time = None
    step = event.get("bizStep")
    expected = {
        "eventID": (row.event_id, event.get("eventID")),
        "type": (row.event_type, event.get("type")),
        "action": (row.action, event.get("action")),
        "bizStep": (
            row.biz_step,
            store.normalise_biz_step(step) if isinstance(step, str) else None,
        ),
        "readPoint": (row.read_point, (event.get("readPoint") or {}).get("id")),
        "bizLocation": (row.biz_location, (event.get("bizLocation") or {}).get("id")),
        "eventTime": (
            when,
            recorded_time if recorded_time is None else recorded_time.astimezone(dt.UTC),
        ),
        # A declaration may wait for its event (declares_pk still None): the row says which.
        "errorDeclaration": (bool(row.declaration), "errorDeclaration" in event),
    }
    for name, (shown, entry) in expected.items():
        if shown is UNREADABLE or shown != entry:
            return [
                (
                    seq,
                    f"{subject}: {name} is {shown!r} in its row but {entry!r} in ledger entry "
                    f"{seq}: row edited",
                )
            ]
    return []
