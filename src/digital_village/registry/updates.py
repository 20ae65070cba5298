"""Dated changes to parcels already registered from an earlier package: new holders (a
CBDKXX row moved to another 承包方), a resurveyed shape under the same DKBM, land use, name and
registered area; and parcels the county retired. Each changed parcel gets one
``parcel.changed`` (or ``parcel.retired``) entry.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from digital_village.ledger.log import EntryIn, Ledger
from digital_village.parcels import recorded, resurvey
from digital_village.parcels.geometry import ParcelShape
from digital_village.parcels.models import (
    Parcel,
    ParcelAttribute,
    ParcelHolding,
)
from digital_village.parcels.reshape import retire_rows
from digital_village.parcels.storing import area_note
from digital_village.registry.models import RegistryParcel
from digital_village.registry.validate import ParcelRecordIn


@dataclass(frozen=True)
class ParcelUpdate:
    """What a re-import asks of one stored parcel: its new DK record and/or its holder, and
    its new shape when the county resurveyed it."""

    dkbm: str
    record: ParcelRecordIn | None  # None: only the holder may have changed
    household_id: int | None  # the 承包方 CBDKXX names now (None: none)
    shape: ParcelShape | None = None


def _period(session: Session, parcel_id: int, start: dt.date) -> ParcelHolding | None:
    return session.scalars(
        select(ParcelHolding).where(
            ParcelHolding.parcel_id == parcel_id,
            or_(ParcelHolding.valid_to.is_(None), ParcelHolding.valid_to > start),
            ParcelHolding.valid_from <= start,
        )
    ).first()


def _changes(
    session: Session,
    parcel: Parcel,
    want: ParcelUpdate,
    start: dt.date,
    record_of: dict[str, recorded.ParcelRecord],
) -> tuple[dict[str, Any], list[Any]]:
    """The ledger data of what changes, and the rows to add once the entry has its seq."""
    data: dict[str, Any] = {}
    added: list[Any] = []
    if want.shape is not None:
        data.update(
            resurvey.resurvey_rows(session, parcel, want.shape, start, record_of[parcel.dkbm])
        )
    holding = _period(session, parcel.id, start)
    current = holding.contractor_household_id if holding else None
    if current != want.household_id:
        operator = holding.operator_cooperative_id if holding else None
        if holding is not None:
            holding.valid_to = max(start, holding.valid_from)
        if want.household_id is not None or operator is not None:
            added.append(
                ParcelHolding(
                    parcel_id=parcel.id,
                    contractor_household_id=want.household_id,
                    operator_cooperative_id=operator,
                    valid_from=start,
                )
            )
        data["contractor_household_id"] = want.household_id
    record = want.record
    if record is None:
        return data, added
    if record.land_use != parcel.land_use:
        for row in session.scalars(
            select(ParcelAttribute).where(
                ParcelAttribute.parcel_id == parcel.id,
                ParcelAttribute.name == "land_use",
                ParcelAttribute.valid_to.is_(None),
            )
        ):
            row.valid_to = max(start, row.valid_from)
        added.append(
            ParcelAttribute(
                parcel_id=parcel.id, name="land_use", value=record.land_use, valid_from=start
            )
        )
        parcel.land_use = data["land_use"] = record.land_use
    if record.name != parcel.name:
        parcel.name = record.name
    if record.registered_area_m2 != parcel.registered_area_m2:
        parcel.registered_area_m2 = record.registered_area_m2
        parcel.area_note = area_note(record.registered_area_m2, parcel.area_m2)
        area = record.registered_area_m2
        data["registered_area_m2"] = None if area is None else round(area, 2)
    return data, added


def apply_updates(
    session: Session,
    ledger: Ledger,
    updates: list[ParcelUpdate],
    cbfbm_of: dict[int, str],
    start: dt.date,
) -> int:
    """Apply re-import changes; returns how many parcels changed (and got an entry)."""
    parcels = {
        p.dkbm: p
        for p in session.scalars(select(Parcel).where(Parcel.dkbm.in_([u.dkbm for u in updates])))
    }
    record_of = resurvey.records_of(session, [u.dkbm for u in updates if u.shape is not None])
    pending: list[tuple[Parcel, dict[str, Any], list[Any]]] = []
    for want in updates:
        parcel = parcels[want.dkbm]
        data, added = _changes(session, parcel, want, start, record_of)
        if data:
            pending.append((parcel, data, added))
        if want.record is not None:
            session.execute(
                update(RegistryParcel)
                .where(RegistryParcel.dkbm == want.dkbm)
                .values(record=want.record.record, source_sha256=want.record.sha256)
            )
    entries = []
    for parcel, data, _ in pending:
        if "contractor_household_id" in data:
            household = data.pop("contractor_household_id")
            data["contractor"] = cbfbm_of.get(household) if household else None
        data = {"dkbm": parcel.dkbm, **data, "valid_from": start.isoformat()}
        entries.append(EntryIn("parcel.changed", data, f"parcel:{parcel.dkbm}"))
    appended = ledger.append_many(session, entries)
    for (parcel, _, added), entry in zip(pending, appended, strict=True):
        for row in added:
            row.ledger_seq = entry.seq
            session.add(row)
        parcel.last_seq = entry.seq
    session.flush()
    return len(pending)


def retire(session: Session, ledger: Ledger, dkbms: list[str], start: dt.date) -> None:
    """Parcels the county's package no longer has: retired from ``start``, periods closed."""
    parcels = list(session.scalars(select(Parcel).where(Parcel.dkbm.in_(dkbms))))
    entries = [
        EntryIn(
            "parcel.retired", {"dkbm": p.dkbm, "valid_to": start.isoformat()}, f"parcel:{p.dkbm}"
        )
        for p in parcels
    ]
    appended = ledger.append_many(session, entries)
    retire_rows(
        session, parcels, start, {p.id: e.seq for p, e in zip(parcels, appended, strict=True)}
    )
    session.execute(
        update(RegistryParcel).where(RegistryParcel.dkbm.in_(dkbms)).values(retired_on=start)
    )
    session.flush()
