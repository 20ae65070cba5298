"""The map's records against the ledger: every parcel's geometry is the one it registered.

A ``RecordChecker`` for the log audit (``digital_village.audit`` composes it). An edit is
named by the parcel (``parcel:<dkbm>``) and its registration entry: the geometry bytes, their
hash column, the PostGIS column, the bounding box, the area.
"""

from __future__ import annotations

import hashlib
from typing import Any

import shapely
from sqlalchemy import and_, literal, literal_column, select
from sqlalchemy.orm import Session, aliased

from digital_village.ledger.audit import Found, RecordChecker, entry_data, keyset
from digital_village.ledger.models import LedgerEntry
from digital_village.parcels.models import Parcel


class ParcelChecker(RecordChecker):
    """Each parcel's stored geometry must be the one its registration entry hashed."""

    def finish(self, session: Session, found: Found) -> dict[str, int]:
        """Check every parcel; count them."""
        registration = aliased(LedgerEntry)
        postgis = session.get_bind().dialect.name == "postgresql"
        # On PostgreSQL spatial queries use the PostGIS column, kept from the WKB by a trigger:
        # an edit of that column alone would move the parcel on every map and search.
        geom_matches = (
            literal_column(
                "ST_OrderingEquals(parcel.geom, "
                "ST_SetSRID(ST_GeomFromWKB(parcel.geometry_wkb), 4490))"
            )
            if postgis
            else literal(True)
        )
        rows = keyset(
            session,
            select(
                Parcel.id,
                Parcel.dkbm,
                Parcel.geometry_wkb,
                Parcel.geometry_sha256,
                Parcel.area_m2,
                Parcel.min_lon,
                Parcel.min_lat,
                Parcel.max_lon,
                Parcel.max_lat,
                Parcel.last_seq,
                geom_matches.label("geom_matches"),
                registration.seq.label("registered_seq"),
                registration.body.label("registered_body"),
            ).outerjoin(
                registration,
                and_(
                    registration.chain_key == literal("parcel:") + Parcel.dkbm,
                    registration.chain_prev_seq.is_(None),
                ),
            ),
            Parcel.id,
        )
        count = 0
        for row in rows:
            count += 1
            _check_parcel(row, found)
        return {"parcels": count}


def _check_parcel(row: Any, found: Found) -> None:
    name = f"parcel:{row.dkbm}"
    data = entry_data(row.registered_body)
    if data is None or "geometry_sha256" not in data:
        found(
            row.last_seq if row.last_seq is not None else -1,
            f"parcel {row.dkbm} has no registration entry in the ledger",
            name,
        )
        return
    seq = row.registered_seq
    digest = hashlib.sha256(row.geometry_wkb).hexdigest()
    if digest != data["geometry_sha256"]:
        found(
            seq,
            f"parcel {row.dkbm}: the stored geometry (sha256 {digest[:16]}…) is not the one "
            f"registered in ledger entry {seq} (sha256 {str(data['geometry_sha256'])[:16]}…): "
            "geometry edited",
            name,
        )
    elif row.geometry_sha256 != digest:
        found(seq, f"parcel {row.dkbm}: the stored geometry hash column was edited", name)
    if not row.geom_matches:
        found(
            seq,
            f"parcel {row.dkbm}: the PostGIS geometry (parcel.geom) differs from the registered "
            "geometry bytes: geom edited, so maps and spatial searches show another shape",
            name,
        )
    try:
        bounds = tuple(shapely.from_wkb(row.geometry_wkb).bounds)
    except shapely.errors.GEOSException:
        found(seq, f"parcel {row.dkbm}: the stored geometry bytes are not WKB", name)
        return
    if bounds != (row.min_lon, row.min_lat, row.max_lon, row.max_lat):
        found(
            seq,
            f"parcel {row.dkbm}: the stored bounding box differs from its geometry (edited: "
            "spatial searches would find the parcel elsewhere)",
            name,
        )
    if "area_m2" in data and round(row.area_m2, 2) != data["area_m2"]:
        found(
            seq,
            f"parcel {row.dkbm}: stored area {row.area_m2:.2f} m² differs from the "
            f"{data['area_m2']} m² registered in ledger entry {seq}",
            name,
        )
