"""Storing checked parcels: DKBMs kept or allocated, ledger entries, rows and history.

Core inserts on the session's connection: the ORM's bulk path with RETURNING costs several
times more than the SQL; ids are read back by DKBM.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import shapely
from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from digital_village.bulk import insert_rows
from digital_village.db import utcnow
from digital_village.errors import Conflict
from digital_village.ledger.log import AppendedEntry, EntryIn, Ledger
from digital_village.parcels import codes, geometry
from digital_village.parcels.models import (
    Parcel,
    ParcelAttribute,
    ParcelHolding,
    ParcelSequence,
    ParcelStatus,
)
from digital_village.parcels.records import Candidate, Created, RegisterReport
from digital_village.parcels.store import chunked


def _allocate(session: Session, fbfbm: str, count: int, *, at_least: int = 0) -> int:
    """Reserve ``count`` new sequences under an FBFBM, past ``at_least`` (a sequence kept from
    a file); return the first. Never reused."""
    row = session.scalars(
        select(ParcelSequence).where(ParcelSequence.fbfbm == fbfbm).with_for_update()
    ).first()
    first = max(row.last_sequence if row else 0, at_least) + 1
    last = first + count - 1
    if last > codes.MAX_SEQUENCE:
        raise Conflict(
            f"发包方 {fbfbm} would pass parcel sequence {codes.MAX_SEQUENCE} "
            f"({count} asked, {codes.MAX_SEQUENCE - first + 1} left)"
        )
    if row is None:
        session.add(ParcelSequence(fbfbm=fbfbm, last_sequence=last))
    else:
        row.last_sequence = last
    session.flush()
    return first


def assign_codes(session: Session, accepted: list[Candidate]) -> dict[int, str]:
    """Feature → DKBM: the file's own where it has one, else the next free of its FBFBM.

    Kept codes move their FBFBM's sequence past them, so an assigned code never meets one.
    """
    dkbms = {c.feature: c.item.dkbm for c in accepted if c.item.dkbm}
    highest: dict[str, int] = {}
    for code in dkbms.values():
        highest[code[:14]] = max(highest.get(code[:14], 0), int(code[14:]))
    waiting: dict[str, list[Candidate]] = {}
    for candidate in accepted:
        if not candidate.item.dkbm:
            waiting.setdefault(candidate.contractor.fbfbm, []).append(candidate)
    for fbfbm in sorted(set(waiting) | set(highest)):
        members = waiting.get(fbfbm, [])
        first = _allocate(session, fbfbm, len(members), at_least=highest.get(fbfbm, 0))
        for offset, candidate in enumerate(members):
            dkbms[candidate.feature] = codes.format_dkbm(fbfbm, first + offset)
    return dkbms


def geometry_wkb(shape: geometry.Polygonal) -> bytes:
    wkb: bytes = shapely.to_wkb(shape, output_dimension=2, byte_order=1)
    return wkb


def _entry_data(
    candidate: Candidate,
    dkbm: str,
    digest: str,
    start: dt.date,
    households: dict[int, str],
    cooperatives: dict[int, str],
) -> dict[str, Any]:
    item, shape = candidate.item, candidate.shape
    data: dict[str, Any] = {
        "dkbm": dkbm,
        "fbfbm": candidate.contractor.fbfbm,
        "area_m2": round(shape.area_m2, 2),
        "area_mu": round(shape.area_mu, 4),
        "land_use": item.land_use,
        "geometry_sha256": digest,
        "fingerprint": shape.fingerprint,
        "valid_from": start.isoformat(),
    }
    if item.bdcdyh:
        data["bdcdyh"] = codes.parse_bdcdyh(item.bdcdyh).code
    if item.contractor_household_id:
        data["contractor"] = households[item.contractor_household_id]
    if item.operator_cooperative_id:
        data["operator"] = cooperatives[item.operator_cooperative_id]
    if item.registered_area_m2 is not None:
        data["registered_area_m2"] = round(item.registered_area_m2, 2)
    # Season crops, so that the crop a page shows is on the ledger (parcels/recorded.py).
    data["crops"] = {season: crop for season, crop, _, _ in candidate.crops}
    return data


AREA_DISAGREEMENT = 0.01  # registered (SCMJ) and computed areas further apart are flagged


def area_note(registered_m2: float | None, computed_m2: float) -> str | None:
    """Why the registered area is flagged beside the computed one (None when they agree)."""
    if registered_m2 is None or registered_m2 <= 0:
        return None
    difference = (computed_m2 - registered_m2) / registered_m2
    if abs(difference) <= AREA_DISAGREEMENT:
        return None
    return (
        f"registered area (SCMJ) {registered_m2:.2f} m² and the computed {computed_m2:.2f} m² "
        f"differ by {difference:+.1%}"
    )


def _parcel_row(
    candidate: Candidate, dkbm: str, wkb: bytes, digest: str, seq: int, now: dt.datetime
) -> dict[str, Any]:
    shape, item = candidate.shape, candidate.item
    min_lon, min_lat, max_lon, max_lat = shape.geometry.bounds
    return {
        "dkbm": dkbm,
        "fbfbm": candidate.contractor.fbfbm,
        "township_code": candidate.contractor.township_code,
        "village_code": candidate.contractor.village_code,
        "group_code": candidate.contractor.group_code,
        "name": item.name,
        "bdcdyh": codes.parse_bdcdyh(item.bdcdyh).code if item.bdcdyh else None,
        "land_use": item.land_use,
        "status": ParcelStatus.ACTIVE,
        "area_m2": shape.area_m2,
        "area_mu": shape.area_mu,
        "area_ha": shape.area_ha,
        "geodesic_m2": shape.geodesic_m2,
        "epsg": shape.epsg,
        "geometry_wkb": wkb,
        "geometry_sha256": digest,
        "fingerprint": shape.fingerprint,
        "min_lon": min_lon,
        "min_lat": min_lat,
        "max_lon": max_lon,
        "max_lat": max_lat,
        "sliver_reason": shape.sliver.reason,
        "registered_area_m2": item.registered_area_m2,
        "area_note": area_note(item.registered_area_m2, shape.area_m2),
        "last_seq": seq,
        "created_at": now,
        "retired_at": None,
    }


def _insert_parcels(connection: Connection, rows: list[dict[str, Any]]) -> list[int]:
    insert_rows(connection, Parcel, rows)
    id_of: dict[str, int] = {}
    for chunk in chunked([row["dkbm"] for row in rows]):
        query = select(Parcel.dkbm, Parcel.id).where(Parcel.dkbm.in_(chunk))
        id_of.update((row[0], row[1]) for row in connection.execute(query))
    return [id_of[row["dkbm"]] for row in rows]


def _history_rows(
    parcel_id: int, candidate: Candidate, seq: int, start: dt.date, now: dt.datetime
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The opening holding (if any) and attribute periods of a new parcel."""
    item = candidate.item
    holding = None
    if item.contractor_household_id or item.operator_cooperative_id:
        holding = {
            "parcel_id": parcel_id,
            "contractor_household_id": item.contractor_household_id,
            "operator_cooperative_id": item.operator_cooperative_id,
            "valid_from": start,
            "valid_to": None,
            "ledger_seq": seq,
            "recorded_at": now,
        }
    # Rows of one executemany must have the same keys.
    base = {
        "parcel_id": parcel_id,
        "season": None,
        "valid_to": None,
        "superseded_at": None,
        "ledger_seq": seq,
        "recorded_at": now,
    }
    attributes = [{**base, "name": "land_use", "value": item.land_use, "valid_from": start}]
    if item.bdcdyh:
        code = codes.parse_bdcdyh(item.bdcdyh).code
        attributes.append({**base, "name": "bdcdyh", "value": code, "valid_from": start})
    for season, crop, crop_from, crop_to in candidate.crops:
        attributes.append(
            {
                **base,
                "name": "crop",
                "value": crop,
                "season": season,
                "valid_from": crop_from,
                "valid_to": crop_to,
            }
        )
    return holding, attributes


def store_parcels(
    session: Session,
    ledger: Ledger,
    accepted: list[Candidate],
    *,
    start: dt.date,
    households: dict[int, str],
    cooperatives: dict[int, str],
    kind: str,
    extra: dict[str, Any],
    report: RegisterReport,
) -> list[int]:
    """Give codes, append the ledger entries, insert the rows. Returns the new parcel ids."""
    dkbms = assign_codes(session, accepted)
    wkbs = [geometry_wkb(c.shape.geometry) for c in accepted]
    hashes = [hashlib.sha256(wkb).hexdigest() for wkb in wkbs]
    entries = [
        EntryIn(
            kind,
            {**_entry_data(c, dkbms[c.feature], digest, start, households, cooperatives), **extra},
            f"parcel:{dkbms[c.feature]}",
        )
        for c, digest in zip(accepted, hashes, strict=True)
    ]
    appended: list[AppendedEntry] = ledger.append_many(session, entries)
    now = utcnow()
    rows = [
        _parcel_row(c, dkbms[c.feature], wkb, digest, entry.seq, now)
        for c, wkb, digest, entry in zip(accepted, wkbs, hashes, appended, strict=True)
    ]
    connection = session.connection()
    ids = _insert_parcels(connection, rows)
    holdings, attributes = [], []
    for parcel_id, candidate, entry in zip(ids, accepted, appended, strict=True):
        holding, periods = _history_rows(parcel_id, candidate, entry.seq, start, now)
        if holding is not None:
            holdings.append(holding)
        attributes.extend(periods)
    if holdings:
        insert_rows(connection, ParcelHolding, holdings)
    insert_rows(connection, ParcelAttribute, attributes)
    for c in accepted:
        shape = c.shape
        report.created.append(
            Created(c.feature, dkbms[c.feature], shape.area_m2, shape.area_mu, shape.warnings)
        )
    report.created.sort(key=lambda c: c.feature)
    return ids
