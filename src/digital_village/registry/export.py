"""Writing the registry back out as the county's exchange package (NY/T 2539).

The DK layer carries each active parcel's stored shape, projected to its CGCS2000 3° GK zone,
with the package's own record overlaid by what the registry knows now (name, land use, the
registered area); the tables are the stored FBF, CBF, CBF_JTCY, CBHT, CBJYQZ and CBDKXX rows
of the 发包方 in scope, as .dbf and .csv in GBK with .cpg files. Importing the export into an
empty registry gives the same records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import shapely
from sqlalchemy import select
from sqlalchemy.orm import Session

from digital_village.errors import Invalid
from digital_village.parcels import geometry, landuse
from digital_village.parcels.models import Parcel, ParcelStatus
from digital_village.parcels.store import chunked
from digital_village.regions.models import Collective, Household, HouseholdMember
from digital_village.registry import nyt2539, writer
from digital_village.registry.models import ContractParcel, LandContract, RegistryParcel


@dataclass(frozen=True)
class Exported:
    folder: Path
    epsg: int
    counts: dict[str, int]


def _scope(code: str | None) -> str:
    if code is None:
        return ""
    code = code.strip()
    if not code.isdigit() or len(code) not in (6, 9, 12, 14):
        raise Invalid(f"{code!r} is no county, township, village or 发包方 (FBFBM) code")
    return code


def _dk_row(parcel: Parcel, record: dict[str, Any] | None, bsm: int) -> dict[str, Any]:
    row: dict[str, Any] = dict(record or {})
    kept = nyt2539.land_use_of(str(row.get("TDLYLX", "")))
    if kept != parcel.land_use:
        row["TDLYLX"] = nyt2539.LAND_USE_TO_2007.get(parcel.land_use, parcel.land_use[:3])
    area = parcel.registered_area_m2 if parcel.registered_area_m2 is not None else parcel.area_m2
    row.update(
        BSM=row.get("BSM") or bsm,
        YSDM=nyt2539.DK_FEATURE_CODE,
        DKBM=parcel.dkbm,
        DKMC=parcel.name or row.get("DKMC") or landuse.land_use_name(parcel.land_use) or "",
        SCMJ=round(area, 2),
        SCMJM=round(area / geometry.SQUARE_METRES_PER_MU, 2),
    )
    return row


def _parcels(session: Session, scope: str) -> list[tuple[Parcel, dict[str, Any] | None]]:
    parcels = session.scalars(
        select(Parcel)
        .where(Parcel.fbfbm.startswith(scope), Parcel.status == ParcelStatus.ACTIVE)
        .order_by(Parcel.dkbm)
    ).all()
    records: dict[str, dict[str, Any]] = {}
    for chunk in chunked([p.dkbm for p in parcels]):
        query = select(RegistryParcel.dkbm, RegistryParcel.record)
        records.update(session.execute(query.where(RegistryParcel.dkbm.in_(chunk))).all())
    return [(p, records.get(p.dkbm)) for p in parcels]


def _tables(session: Session, scope: str) -> dict[str, list[dict[str, Any]]]:
    collectives = session.scalars(
        select(Collective).where(Collective.fbfbm.startswith(scope)).order_by(Collective.fbfbm)
    ).all()
    households = session.scalars(
        select(Household)
        .where(Household.cbfbm.startswith(scope), Household.registry_record.is_not(None))
        .order_by(Household.cbfbm)
    ).all()
    members = session.scalars(
        select(HouseholdMember)
        .join(Household, Household.id == HouseholdMember.household_id)
        .where(Household.cbfbm.startswith(scope))
        .order_by(Household.cbfbm, HouseholdMember.position)
    ).all()
    contracts = session.scalars(
        select(LandContract)
        .where(LandContract.fbfbm.startswith(scope), LandContract.active.is_(True))
        .order_by(LandContract.cbhtbm)
    ).all()
    links = session.scalars(
        select(ContractParcel)
        .join(LandContract, LandContract.id == ContractParcel.contract_id)
        .where(
            LandContract.fbfbm.startswith(scope),
            LandContract.active.is_(True),
            ContractParcel.valid_to.is_(None),
        )
        .order_by(ContractParcel.dkbm)
    ).all()
    return {
        "FBF": [c.record for c in collectives],
        "CBF": [h.registry_record or {} for h in households],
        "CBF_JTCY": [m.record for m in members],
        "CBHT": [c.record["CBHT"] for c in contracts],
        "CBJYQZ": [c.record["CBJYQZ"] for c in contracts if "CBJYQZ" in c.record],
        "CBDKXX": [link.record for link in links],
    }


def export_package(session: Session, *, folder: Path, scope: str | None = None) -> Exported:
    """Write the package of a county, township, village or 发包方 (all when ``scope`` is None)."""
    prefix = _scope(scope)
    parcels = _parcels(session, prefix)
    tables = _tables(session, prefix)
    if not parcels and not tables["FBF"]:
        raise Invalid(f"nothing to export under {prefix or 'this registry'}")
    zones = sorted({p.epsg for p, _ in parcels})
    if len(zones) > 1:
        raise Invalid(
            f"the parcels lie in {len(zones)} GK zones ({', '.join(map(str, zones))}); "
            "export one township or village at a time"
        )
    epsg = zones[0] if zones else 4544
    folder.mkdir(parents=True, exist_ok=True)
    shapes: Sequence[Any] = (
        list(geometry.to_gk(shapely.from_wkb([p.geometry_wkb for p, _ in parcels]), epsg))
        if parcels
        else []
    )
    rows = [_dk_row(parcel, record, bsm) for bsm, (parcel, record) in enumerate(parcels, 1)]
    writer.write_dk(folder / "DK.shp", rows, list(shapes), crs=f"EPSG:{epsg}")
    for name, table_rows in tables.items():
        for suffix in (".dbf", ".csv"):
            writer.write_table(folder / f"{name}{suffix}", name, table_rows)
    counts = {"DK": len(rows), **{name: len(r) for name, r in tables.items()}}
    return Exported(folder, epsg, counts)
