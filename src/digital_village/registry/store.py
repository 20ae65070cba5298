"""Writing checked package records, one short transaction per chunk (see ``importer``).

Every function here is idempotent at the level of its records: it writes a record's new state
together with the record's source hash and its ledger entry, in the caller's transaction, so a
chunk is stored whole or not at all and an import run again skips what is already stored.
Ledger entries carry codes, areas and dates, never names or ID numbers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from digital_village.bulk import insert_rows
from digital_village.db import utcnow
from digital_village.ledger.log import EntryIn, Ledger
from digital_village.parcels import codes
from digital_village.parcels.geometry import ParcelShape
from digital_village.parcels.records import Candidate, Contractor, ParcelIn, RegisterReport
from digital_village.parcels.storing import store_parcels
from digital_village.regions import service as regions
from digital_village.regions.models import (
    Collective,
    Household,
    HouseholdMember,
    Region,
)
from digital_village.registry.models import ContractParcel, LandContract, RegistryParcel
from digital_village.registry.validate import CollectiveIn, ContractIn, HouseholdIn, ParcelRecordIn


def region_of(fbfbm: str) -> str:
    """The region a 发包方 is: its group, or its village when the village contracts (00)."""
    return fbfbm if not fbfbm.endswith("00") else fbfbm[:12]


def _village_name(collective: CollectiveIn) -> str:
    name = collective.name
    return name[: name.index("村") + 1] if "村" in name else name


def store_collectives(
    session: Session,
    ledger: Ledger,
    collectives: Sequence[CollectiveIn],
    new: set[str],
    start: dt.date,
) -> None:
    """Villages and groups a 发包方 needs, created where missing; collectives written."""
    for collective in collectives:
        village = collective.fbfbm[:12]
        for code, name in ((village, _village_name(collective)), (region_of(collective.fbfbm), "")):
            if session.get(Region, code) is None:
                parsed = regions.parse_region_code(code)
                label = name or collective.name.removeprefix(_village_name(collective)) or code
                session.add(
                    Region(
                        code=code, level=parsed.level, name=label, parent_code=parsed.parent_code
                    )
                )
                session.flush()
    entries = [
        EntryIn(
            "collective.registered" if c.fbfbm in new else "collective.changed",
            {"fbfbm": c.fbfbm, "name": c.name, "valid_from": start.isoformat()},
            f"collective:{c.fbfbm}",
        )
        for c in collectives
    ]
    appended = ledger.append_many(session, entries)
    for collective, entry in zip(collectives, appended, strict=True):
        values = {
            "region_code": region_of(collective.fbfbm),
            "name": collective.name,
            "record": collective.record,
            "surveyed_on": collective.surveyed_on,
            "source_sha256": collective.sha256,
            "ledger_seq": entry.seq,
        }
        if collective.fbfbm in new:
            session.execute(insert(Collective), [{"fbfbm": collective.fbfbm, **values}])
        else:
            session.execute(
                update(Collective).where(Collective.fbfbm == collective.fbfbm).values(**values)
            )


def _member_rows(household_id: int, household: HouseholdIn) -> list[dict[str, Any]]:
    return [
        {
            "household_id": household_id,
            "position": position,
            "name": member.name,
            "sex": member.sex,
            "id_type": member.id_type,
            "id_number": member.id_number,
            "relation": member.relation,
            "co_owner": member.co_owner,
            "record": member.record,
        }
        for position, member in enumerate(household.members, start=1)
    ]


def store_households(
    session: Session,
    ledger: Ledger,
    households: Sequence[HouseholdIn],
    existing: dict[str, int],
    start: dt.date,
) -> dict[str, int]:
    """New households inserted, known ones (by CBFBM) updated; members replaced. CBFBM → id."""
    entries = [
        EntryIn(
            "household.changed" if h.cbfbm in existing else "household.registered",
            {
                "cbfbm": h.cbfbm,
                "fbfbm": h.cbfbm[:14],
                "kind": h.kind,
                "members": len(h.members),
                "valid_from": start.isoformat(),
            },
            f"household:{h.cbfbm}",
        )
        for h in households
    ]
    appended = ledger.append_many(session, entries)
    ids: dict[str, int] = {}
    fresh = []
    for household, entry in zip(households, appended, strict=True):
        values = {
            "name": household.name,
            "kind": household.kind,
            "id_type": household.id_type,
            "id_number": household.id_number,
            "registry_record": household.record,
            "source_sha256": household.sha256,
            "ledger_seq": entry.seq,
        }
        if household.cbfbm in existing:
            ids[household.cbfbm] = existing[household.cbfbm]
            session.execute(
                update(Household).where(Household.id == ids[household.cbfbm]).values(**values)
            )
        else:
            region = region_of(household.cbfbm[:14])
            fresh.append({"cbfbm": household.cbfbm, "region_code": region, **values})
    if fresh:
        now = utcnow()
        insert_rows(session.connection(), Household, [{**row, "created_at": now} for row in fresh])
        query = select(Household.cbfbm, Household.id)
        ids.update(
            session.execute(query.where(Household.cbfbm.in_([r["cbfbm"] for r in fresh]))).all()
        )
    replaced = [ids[h.cbfbm] for h in households if h.cbfbm in existing]
    if replaced:
        session.execute(delete(HouseholdMember).where(HouseholdMember.household_id.in_(replaced)))
    members = [row for h in households for row in _member_rows(ids[h.cbfbm], h)]
    if members:
        insert_rows(session.connection(), HouseholdMember, members)
    return ids


def _contractor(fbfbm: str) -> Contractor:
    parsed = codes.parse_fbfbm(fbfbm)
    group = parsed.code if parsed.group != "00" else None
    return Contractor(parsed.code, parsed.township_code, parsed.village_code, group)


def _registry_record(record: ParcelRecordIn) -> dict[str, Any]:
    return {
        "dkbm": record.dkbm,
        "record": record.record,
        "source_sha256": record.sha256,
        "retired_on": None,
        "updated_at": utcnow(),
    }


def store_new_parcels(
    session: Session,
    ledger: Ledger,
    records: Sequence[tuple[ParcelRecordIn, ParcelShape]],
    household_ids: dict[str, int],
    start: dt.date,
) -> None:
    """Parcels new to the registry, under their own DKBMs, held by their CBDKXX household."""
    candidates = [
        Candidate(
            record.row,
            ParcelIn(
                geometry=shape.geometry,
                land_use=record.land_use,
                fbfbm=record.fbfbm,
                name=record.name,
                contractor_household_id=household_ids.get(record.cbfbm or ""),
                dkbm=record.dkbm,
                registered_area_m2=record.registered_area_m2,
            ),
            _contractor(record.fbfbm),
            shape,
            [],
        )
        for record, shape in records
    ]
    households = {i: c for c, i in household_ids.items()}
    store_parcels(
        session,
        ledger,
        candidates,
        start=start,
        households=households,
        cooperatives={},
        kind="parcel.registered",
        extra={"source": "NY/T 2539"},
        report=RegisterReport(),
    )
    session.execute(
        delete(RegistryParcel).where(RegistryParcel.dkbm.in_([r.dkbm for r, _ in records]))
    )
    insert_rows(session.connection(), RegistryParcel, [_registry_record(r) for r, _ in records])


def _contract_values(contract: ContractIn, household_id: int, seq: int) -> dict[str, Any]:
    return {
        "fbfbm": contract.fbfbm,
        "cbfbm": contract.cbfbm,
        "household_id": household_id,
        "method": contract.method,
        "period_from": contract.period_from,
        "period_to": contract.period_to,
        "area_m2": contract.area_m2,
        "parcel_count": contract.parcel_count,
        "signed_on": contract.signed_on,
        "certificate": contract.certificate,
        "record": contract.record,
        "active": True,
        "valid_to": None,
        "source_sha256": contract.sha256,
        "ledger_seq": seq,
    }


def _contract_entry(contract: ContractIn, new: bool, start: dt.date) -> EntryIn:
    return EntryIn(
        "contract.registered" if new else "contract.changed",
        {
            "cbhtbm": contract.cbhtbm,
            "cbfbm": contract.cbfbm,
            "fbfbm": contract.fbfbm,
            "method": contract.method,
            "period_from": contract.period_from.isoformat() if contract.period_from else None,
            "period_to": contract.period_to.isoformat() if contract.period_to else None,
            "area_m2": round(contract.area_m2, 2),
            "certificate": contract.certificate,
            "parcels": [
                {"dkbm": link.dkbm, "area_m2": round(link.area_m2, 2), "by_share": link.by_share}
                for link in contract.links
            ],
            "valid_from": start.isoformat(),
        },
        f"contract:{contract.cbhtbm}",
    )


def store_contracts(
    session: Session,
    ledger: Ledger,
    contracts: Sequence[ContractIn],
    existing: dict[str, int],
    household_ids: dict[str, int],
    start: dt.date,
) -> None:
    """Contracts inserted or updated; their parcel links closed at ``start`` and reopened."""
    appended = ledger.append_many(
        session, [_contract_entry(c, c.cbhtbm not in existing, start) for c in contracts]
    )
    ids: dict[str, int] = {}
    new_rows: list[dict[str, Any]] = []
    for contract, entry in zip(contracts, appended, strict=True):
        values = _contract_values(contract, household_ids[contract.cbfbm], entry.seq)
        if contract.cbhtbm in existing:
            ids[contract.cbhtbm] = existing[contract.cbhtbm]
            session.execute(
                update(LandContract).where(LandContract.id == ids[contract.cbhtbm]).values(**values)
            )
        else:
            row = {"cbhtbm": contract.cbhtbm, "valid_from": start, "created_at": utcnow()}
            new_rows.append({**row, **values})
    if new_rows:
        insert_rows(session.connection(), LandContract, new_rows)
    fresh = [c.cbhtbm for c in contracts if c.cbhtbm not in existing]
    if fresh:
        query = select(LandContract.cbhtbm, LandContract.id).where(LandContract.cbhtbm.in_(fresh))
        ids.update(session.execute(query).all())
    close_links(session, [ids[c.cbhtbm] for c in contracts if c.cbhtbm in existing], start)
    links = [
        {
            "contract_id": ids[contract.cbhtbm],
            "dkbm": link.dkbm,
            "household_id": household_ids[contract.cbfbm],
            "acquired_by": link.acquired_by,
            "area_m2": link.area_m2,
            "by_share": link.by_share,
            "record": link.record,
            "valid_from": start,
            "valid_to": None,
            "ledger_seq": entry.seq,
        }
        for contract, entry in zip(contracts, appended, strict=True)
        for link in contract.links
    ]
    if links:
        insert_rows(session.connection(), ContractParcel, links)


def close_links(session: Session, contract_ids: list[int], start: dt.date) -> None:
    """End the open parcel links of contracts at ``start``."""
    if contract_ids:
        session.execute(
            update(ContractParcel)
            .where(ContractParcel.contract_id.in_(contract_ids), ContractParcel.valid_to.is_(None))
            .values(valid_to=start)
        )


def retire_contracts(
    session: Session, ledger: Ledger, contracts: dict[str, int], start: dt.date
) -> None:
    """Contracts no longer in the package: inactive from ``start``, links closed."""
    entries = [
        EntryIn(
            "contract.retired", {"cbhtbm": code, "valid_to": start.isoformat()}, f"contract:{code}"
        )
        for code in contracts
    ]
    appended = ledger.append_many(session, entries)
    for contract_id, entry in zip(contracts.values(), appended, strict=True):
        session.execute(
            update(LandContract)
            .where(LandContract.id == contract_id)
            .values(active=False, valid_to=start, ledger_seq=entry.seq)
        )
    close_links(session, list(contracts.values()), start)
