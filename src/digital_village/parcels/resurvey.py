"""A resurvey under the same DKBM: the parcel takes its new shape from a date, the shape it
replaces is kept in ``parcel_geometry`` with the entry that recorded it.

The county's registry re-measures a parcel without renumbering it (the yearly 变更 of a 确权
package); the new shape is recorded by a ``parcel.changed`` entry in the parcel's chain that
holds what a registration holds of a shape — the code, the 发包方编码, the areas, the
geometry's SHA-256 and fingerprint — so the audit, the parcel's check route and the pages take
the parcel's current shape and area from the newest such entry (``parcels.recorded``), and
every kept shape from the entry that recorded it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from digital_village.ledger import reads
from digital_village.parcels import recorded
from digital_village.parcels.geometry import ParcelShape
from digital_village.parcels.models import Parcel, ParcelGeometry
from digital_village.parcels.storing import area_note, geometry_wkb


def _shape_from(record: recorded.ParcelRecord, parcel: Parcel) -> dt.date:
    """When the parcel's current shape began: the ``valid_from`` of the entry recording it."""
    found = record.shaped("valid_from")
    try:
        return dt.date.fromisoformat(str(found.value)) if found else parcel.created_at.date()
    except ValueError:
        return parcel.created_at.date()


def records_of(session: Session, dkbms: Sequence[str]) -> dict[str, recorded.ParcelRecord]:
    """The parcels' chains of entries, folded."""
    chains = reads.chain_entries(session, [recorded.chain_key(dkbm) for dkbm in dkbms])
    return {
        dkbm: recorded.fold(
            dkbm,
            (
                (seq, kind, reads.data_of(body))
                for seq, kind, body in chains.get(recorded.chain_key(dkbm), [])
            ),
        )
        for dkbm in dkbms
    }


def resurvey_rows(
    session: Session,
    parcel: Parcel,
    shape: ParcelShape,
    start: dt.date,
    record: recorded.ParcelRecord,
) -> dict[str, Any]:
    """Give ``parcel`` the new shape from ``start`` and keep the one it replaces; returns what
    the ``parcel.changed`` entry records of the new shape (the caller appends it)."""
    began = _shape_from(record, parcel)
    session.add(
        ParcelGeometry(
            parcel_id=parcel.id,
            geometry_wkb=parcel.geometry_wkb,
            geometry_sha256=parcel.geometry_sha256,
            area_m2=parcel.area_m2,
            area_mu=parcel.area_mu,
            valid_from=began,
            valid_to=max(start, began),
            ledger_seq=record.shape_seq,
        )
    )
    wkb = geometry_wkb(shape.geometry)
    digest = hashlib.sha256(wkb).hexdigest()
    min_lon, min_lat, max_lon, max_lat = shape.geometry.bounds
    parcel.geometry_wkb = wkb
    parcel.geometry_sha256 = digest
    parcel.fingerprint = shape.fingerprint
    parcel.area_m2, parcel.area_mu, parcel.area_ha = shape.area_m2, shape.area_mu, shape.area_ha
    parcel.geodesic_m2 = shape.geodesic_m2
    parcel.epsg = shape.epsg
    parcel.min_lon, parcel.min_lat, parcel.max_lon, parcel.max_lat = (
        min_lon,
        min_lat,
        max_lon,
        max_lat,
    )
    parcel.sliver_reason = shape.sliver.reason
    parcel.area_note = area_note(parcel.registered_area_m2, shape.area_m2)
    return {
        "dkbm": parcel.dkbm,
        "fbfbm": parcel.fbfbm,
        "area_m2": round(shape.area_m2, 2),
        "area_mu": round(shape.area_mu, 4),
        "geometry_sha256": digest,
        "fingerprint": shape.fingerprint,
    }
