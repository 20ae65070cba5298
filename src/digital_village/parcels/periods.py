"""A parcel over time: its holders, land use and crops on a date, its history, whether its
stored geometry is the one the ledger registered, and the files imported.

Imported through ``parcels.service``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import shapely
from shapely.geometry import mapping
from sqlalchemy import ColumnElement, literal, or_, select
from sqlalchemy.orm import Session

from digital_village.parcels import audit, resurvey
from digital_village.parcels.models import (
    Parcel,
    ParcelAttribute,
    ParcelGeometry,
    ParcelHolding,
    ParcelImport,
    ParcelStatus,
)
from digital_village.parcels.store import (
    Holding,
    chunked,
    cooperative_codes,
    get_parcel,
    household_codes,
)


def holder_at(*, session: Session, dkbm: str, on: dt.date) -> Holding:
    """The contractor and operator of a parcel on a date (both None when nobody held it)."""
    parcel = get_parcel(session=session, dkbm=dkbm)
    row = session.scalars(
        select(ParcelHolding)
        .where(
            ParcelHolding.parcel_id == parcel.id,
            ParcelHolding.valid_from <= on,
            or_(ParcelHolding.valid_to.is_(None), ParcelHolding.valid_to > on),
        )
        .order_by(ParcelHolding.valid_from.desc())
        .limit(1)
    ).first()
    if row is None:
        return Holding(None, None)
    return Holding(row.contractor_household_id, row.operator_cooperative_id)


def crop_on(*, session: Session, dkbm: str, on: dt.date) -> str | None:
    """The crop recorded for a parcel on a date, or None."""
    parcel = get_parcel(session=session, dkbm=dkbm)
    return crops_on(session=session, parcel_ids=[parcel.id], on=on).get(parcel.id)


def crops_on(*, session: Session, parcel_ids: Sequence[int], on: dt.date) -> dict[int, str]:
    """Parcel id → crop on a date, for the parcels that have one."""
    found: dict[int, str] = {}
    for chunk in chunked(list(parcel_ids)):
        rows = session.execute(
            select(ParcelAttribute.parcel_id, ParcelAttribute.value).where(
                ParcelAttribute.parcel_id.in_(chunk),
                ParcelAttribute.name == "crop",
                ParcelAttribute.superseded_at.is_(None),
                ParcelAttribute.valid_from <= on,
                or_(ParcelAttribute.valid_to.is_(None), ParcelAttribute.valid_to > on),
            )
        )
        found.update((row[0], row[1]) for row in rows)
    return found


def holdings_on(*, session: Session, parcel_ids: Sequence[int], on: dt.date) -> dict[int, Holding]:
    """Parcel id → holders on a date."""
    found: dict[int, Holding] = {}
    for chunk in chunked(list(parcel_ids)):
        rows = session.execute(
            select(
                ParcelHolding.parcel_id,
                ParcelHolding.contractor_household_id,
                ParcelHolding.operator_cooperative_id,
            ).where(
                ParcelHolding.parcel_id.in_(chunk),
                ParcelHolding.valid_from <= on,
                or_(ParcelHolding.valid_to.is_(None), ParcelHolding.valid_to > on),
            )
        )
        for parcel_id, contractor, operator in rows:
            found[parcel_id] = Holding(contractor, operator)
    return found


@dataclass(frozen=True)
class HeldParcel:
    """An active parcel and who held it on a date (what a harvest form lists)."""

    parcel_id: int
    dkbm: str
    area_mu: float
    holding: Holding
    shape_wkb: bytes | None = None  # lon/lat WKB, when asked for


def held_on(
    *,
    session: Session,
    household_ids: Sequence[int],
    cooperative_id: int | None,
    on: dt.date,
    shapes: bool = False,
) -> list[HeldParcel]:
    """Active parcels contracted by these households or run by the cooperative on a date, by
    DKBM (a cooperative's harvest may come from any of them); their shapes only if asked."""
    held: ColumnElement[bool] = ParcelHolding.contractor_household_id.in_(
        sorted(set(household_ids))
    )
    if cooperative_id is not None:
        held = or_(held, ParcelHolding.operator_cooperative_id == cooperative_id)
    rows = session.execute(
        select(
            Parcel.id,
            Parcel.dkbm,
            Parcel.area_mu,
            ParcelHolding.contractor_household_id,
            ParcelHolding.operator_cooperative_id,
            Parcel.geometry_wkb if shapes else literal(None),
        )
        .join(ParcelHolding, ParcelHolding.parcel_id == Parcel.id)
        .where(
            held,
            ParcelHolding.valid_from <= on,
            or_(ParcelHolding.valid_to.is_(None), ParcelHolding.valid_to > on),
            Parcel.status == ParcelStatus.ACTIVE,
        )
        .order_by(Parcel.dkbm)
    ).all()
    return [
        HeldParcel(parcel_id, dkbm, area_mu, Holding(contractor, operator), shape)
        for parcel_id, dkbm, area_mu, contractor, operator, shape in rows
    ]


def _shapes(session: Session, parcel: Parcel) -> list[dict[str, Any]]:
    """The shapes a parcel had (kept when a resurvey replaced them) and the one it has, each
    with its period and the ledger entry that recorded it, oldest first."""
    kept = session.scalars(
        select(ParcelGeometry)
        .where(ParcelGeometry.parcel_id == parcel.id)
        .order_by(ParcelGeometry.valid_from, ParcelGeometry.id)
    ).all()
    record = resurvey.records_of(session, [parcel.dkbm])[parcel.dkbm]
    began = record.shaped("valid_from")
    shapes = [
        {
            "geometry": mapping(shapely.from_wkb(row.geometry_wkb)),
            "geometry_sha256": row.geometry_sha256,
            "area_m2": round(row.area_m2, 2),
            "area_mu": round(row.area_mu, 4),
            "valid_from": row.valid_from.isoformat(),
            "valid_to": row.valid_to.isoformat(),
            "ledger_seq": row.ledger_seq,
        }
        for row in kept
    ]
    shapes.append(
        {
            "geometry_sha256": parcel.geometry_sha256,
            "area_m2": round(parcel.area_m2, 2),
            "area_mu": round(parcel.area_mu, 4),
            "valid_from": began.value if began else None,
            "valid_to": parcel.retired_at.date().isoformat() if parcel.retired_at else None,
            "ledger_seq": record.shape_seq,
        }
    )
    return shapes


def history(*, session: Session, dkbm: str) -> dict[str, Any]:
    """Every recorded period of a parcel's shape (earlier ones with their geometry), holders,
    land use and crops, oldest first."""
    parcel = get_parcel(session=session, dkbm=dkbm)
    holdings = session.scalars(
        select(ParcelHolding)
        .where(ParcelHolding.parcel_id == parcel.id)
        .order_by(ParcelHolding.valid_from, ParcelHolding.id)
    ).all()
    attributes = session.scalars(
        select(ParcelAttribute)
        .where(ParcelAttribute.parcel_id == parcel.id)
        .order_by(ParcelAttribute.valid_from, ParcelAttribute.id)
    ).all()

    def period(row: ParcelHolding | ParcelAttribute) -> dict[str, Any]:
        return {
            "valid_from": row.valid_from.isoformat(),
            "valid_to": row.valid_to.isoformat() if row.valid_to else None,
            "ledger_seq": row.ledger_seq,
        }

    households = household_codes(
        session, {h.contractor_household_id for h in holdings if h.contractor_household_id}
    )
    cooperatives = cooperative_codes(
        session, {h.operator_cooperative_id for h in holdings if h.operator_cooperative_id}
    )
    return {
        "shapes": _shapes(session, parcel),
        "holdings": [
            {
                "contractor_household_id": h.contractor_household_id,
                "contractor_cbfbm": households.get(h.contractor_household_id or 0),
                "operator_cooperative_id": h.operator_cooperative_id,
                "operator_uscc": cooperatives.get(h.operator_cooperative_id or 0),
                **period(h),
            }
            for h in holdings
        ],
        "land_use": [{"value": a.value, **period(a)} for a in attributes if a.name == "land_use"],
        "bdcdyh": [{"value": a.value, **period(a)} for a in attributes if a.name == "bdcdyh"],
        "crops": [
            {
                "season": a.season,
                "value": a.value,
                "superseded": a.superseded_at is not None,
                **period(a),
            }
            for a in attributes
            if a.name == "crop"
        ],
    }


def verify_geometry(*, session: Session, dkbm: str) -> str | None:
    """None when the parcel's rows agree with its chain of ledger entries (geometry, code,
    area, land use, holders, crops: ``parcels.audit``); otherwise the first difference."""
    parcel = get_parcel(session=session, dkbm=dkbm)
    problems = audit.check_parcel(session=session, dkbm=parcel.dkbm)
    return problems[0].what if problems else None


def find_import(*, session: Session, file_sha256: str) -> dict[str, Any] | None:
    """The earlier import of a file with these bytes, if any."""
    row = session.scalars(
        select(ParcelImport)
        .where(ParcelImport.file_sha256 == file_sha256)
        .order_by(ParcelImport.id)
        .limit(1)
    ).first()
    if row is None:
        return None
    return {
        "import_id": row.id,
        "filename": row.filename,
        "at": row.created_at.isoformat(),
        "created": row.created,
    }


def record_import(
    *,
    session: Session,
    file_sha256: str,
    filename: str,
    fbfbm: str,
    created: int,
    rejected: int,
) -> None:
    """Remember an imported file by its content hash."""
    session.add(
        ParcelImport(
            file_sha256=file_sha256,
            filename=filename[:255],
            fbfbm=fbfbm,
            created=created,
            rejected=rejected,
        )
    )
    session.flush()
