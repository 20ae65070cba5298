"""What the registry already holds of a package's records, read before anything is written."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from digital_village.parcels.models import Parcel, ParcelStatus
from digital_village.parcels.store import chunked
from digital_village.regions.models import Collective, Household, Region, RegionLevel
from digital_village.registry.models import ContractParcel, LandContract, RegistryParcel


@dataclass(frozen=True)
class Known:
    """A stored record: its id (0 where it has none), source hash and whether it is live."""

    id: int
    sha256: str | None
    live: bool = True


@dataclass
class State:
    county: str | None
    townships: set[str]
    regions: set[str]
    collectives: dict[str, Known] = field(default_factory=dict)
    households: dict[str, Known] = field(default_factory=dict)
    parcels: dict[str, Known] = field(default_factory=dict)  # every registered DKBM asked for
    registry_parcels: dict[str, Known] = field(default_factory=dict)  # from earlier packages
    contracts: dict[str, Known] = field(default_factory=dict)
    contract_parcels: dict[str, list[str]] = field(default_factory=dict)  # CBHTBM → open DKBMs


def _in_chunks(session: Session, query: Any, column: Any, codes: Iterable[str]) -> list[Any]:
    rows: list[Any] = []
    for chunk in chunked(sorted(set(codes))):
        rows.extend(session.execute(query.where(column.in_(chunk))).all())
    return rows


def county_of(session: Session, fbfbms: Iterable[str]) -> str | None:
    """The registered county the package belongs to: the one registered county, or the
    registered county most of its 发包方 name."""
    counties = set(session.scalars(select(Region.code).where(Region.level == RegionLevel.COUNTY)))
    if len(counties) == 1:
        return next(iter(counties))
    named = [code[:6] for code in fbfbms if code[:6] in counties]
    return max(set(named), key=named.count) if named else None


def read_state(
    session: Session,
    *,
    county: str | None,
    fbfbms: set[str],
    cbfbms: set[str],
    dkbms: set[str],
    cbhtbms: set[str],
) -> State:
    """The registry's side of every code the package names, and what earlier packages of the
    same 发包方 stored (so what is missing now can be retired)."""
    regions = set(session.scalars(select(Region.code).where(Region.code.like(f"{county}%"))))
    townships = {code for code in regions if len(code) == 9}
    state = State(county, townships, regions)
    for row in _in_chunks(
        session, select(Collective.fbfbm, Collective.source_sha256), Collective.fbfbm, fbfbms
    ):
        state.collectives[row[0]] = Known(0, row[1])
    for row in _in_chunks(
        session,
        select(Household.cbfbm, Household.id, Household.source_sha256),
        Household.cbfbm,
        cbfbms,
    ):
        state.households[row[0]] = Known(row[1], row[2])
    for row in _in_chunks(
        session, select(Parcel.dkbm, Parcel.id, Parcel.status), Parcel.dkbm, dkbms
    ):
        state.parcels[row[0]] = Known(row[1], None, row[2] == ParcelStatus.ACTIVE)
    for fbfbm in sorted(fbfbms):  # every parcel earlier packages stored under these 发包方
        query = select(RegistryParcel.dkbm, RegistryParcel.source_sha256, RegistryParcel.retired_on)
        # A range on the primary key, not LIKE: SQLite's LIKE cannot use the index.
        under = (RegistryParcel.dkbm > fbfbm) & (RegistryParcel.dkbm < fbfbm + ":")
        for row in session.execute(query.where(under)):
            state.registry_parcels[row[0]] = Known(0, row[1], row[2] is None)
        contracts = select(
            LandContract.cbhtbm, LandContract.id, LandContract.source_sha256, LandContract.active
        ).where(LandContract.fbfbm == fbfbm)
        for row in session.execute(contracts):
            state.contracts[row[0]] = Known(row[1], row[2], row[3])
        links = (
            select(LandContract.cbhtbm, ContractParcel.dkbm)
            .join(ContractParcel, ContractParcel.contract_id == LandContract.id)
            .where(LandContract.fbfbm == fbfbm, ContractParcel.valid_to.is_(None))
        )
        for cbhtbm, dkbm in session.execute(links):
            state.contract_parcels.setdefault(cbhtbm, []).append(dkbm)
    for row in _in_chunks(
        session,
        select(
            LandContract.cbhtbm, LandContract.id, LandContract.source_sha256, LandContract.active
        ),
        LandContract.cbhtbm,
        cbhtbms,
    ):
        state.contracts[row[0]] = Known(row[1], row[2], row[3])
    return state
