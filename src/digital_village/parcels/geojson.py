"""Parcels out as GeoJSON: RFC 7946 features without personal data, a village's or the
county's active parcels as a FeatureCollection, and plot geolocation for due-diligence
statements. Reading GIS files in is :mod:`digital_village.parcels.io`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import shapely
from sqlalchemy import select
from sqlalchemy.orm import Session

from digital_village.parcels import landuse
from digital_village.parcels import service as parcels
from digital_village.parcels.models import Parcel
from digital_village.regions.models import Region

DUE_DILIGENCE_POLYGON_HA = 4.0


def _rounded(geom: Any, decimals: int = 6) -> dict[str, Any]:
    mapping: dict[str, Any] = json.loads(
        shapely.to_geojson(shapely.transform(geom, lambda xy: np.round(xy, decimals)))
    )
    return mapping


def feature(
    parcel: Parcel, *, crop: str | None = None, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A parcel as an RFC 7946 Feature (lon/lat, 6 decimals ≈ 0.1 m) without personal data."""
    return {
        "type": "Feature",
        "id": parcel.dkbm,
        "geometry": _rounded(parcels.parcel_geometry(parcel)),
        "properties": {
            "dkbm": parcel.dkbm,
            "fbfbm": parcel.fbfbm,
            "village_code": parcel.village_code,
            "group_code": parcel.group_code,
            "name": parcel.name,
            "bdcdyh": parcel.bdcdyh,
            "land_use": parcel.land_use,
            "land_use_name": landuse.land_use_name(parcel.land_use),
            "area_m2": round(parcel.area_m2, 2),
            "area_mu": round(parcel.area_mu, 4),
            "area_ha": round(parcel.area_ha, 4),
            # The county's surveyed area (SCMJ) beside ours, and why they differ if over 1 %.
            "registered_area_m2": None
            if parcel.registered_area_m2 is None
            else round(parcel.registered_area_m2, 2),
            "area_note": parcel.area_note,
            "crop": crop,
            "status": parcel.status.value,
            "sliver": parcel.sliver_reason,  # why the shape was flagged as a sliver, if it was
            "ledger_seq": parcel.last_seq,
            **(extra or {}),
        },
    }


def export_geojson(
    *, session: Session, region: str | None = None, on: dt.date | None = None
) -> dict[str, Any]:
    """Every active parcel (of a township, village or FBFBM) as a FeatureCollection."""
    rows = _active(session, region)
    crops = parcels.crops_on(
        session=session, parcel_ids=[p.id for p in rows], on=on or parcels.today()
    )
    return {
        "type": "FeatureCollection",
        "features": [feature(p, crop=crops.get(p.id)) for p in rows],
    }


def export_due_diligence(*, session: Session, region: str | None = None) -> dict[str, Any]:
    """Plot geolocation for due-diligence statements: a point under 4 ha, a polygon otherwise.

    Shaped like the GeoJSON of the EU deforestation regulation's information system: one
    Feature per plot, 6 decimals, properties ProducerCountry, ProductionPlace and Area (ha).
    """
    rows = _active(session, region)
    names = dict(
        session.execute(
            select(Region.code, Region.name).where(Region.code.in_({p.village_code for p in rows}))
        ).all()
    )
    features = []
    for parcel in rows:
        shape = parcels.parcel_geometry(parcel)
        geom = shape if parcel.area_ha >= DUE_DILIGENCE_POLYGON_HA else shape.point_on_surface()
        features.append(
            {
                "type": "Feature",
                "geometry": _rounded(geom),
                "properties": {
                    "ProducerCountry": "CN",
                    "ProductionPlace": f"{names.get(parcel.village_code, parcel.village_code)} "
                    f"{parcel.dkbm}",
                    "Area": round(parcel.area_ha, 4),
                    "dkbm": parcel.dkbm,
                },
            }
        )
    return {"type": "FeatureCollection", "features": features}


def _active(session: Session, region: str | None) -> Sequence[Parcel]:
    if region is None:
        return parcels.list_all_active(session=session)
    return parcels.parcels_of_region(session=session, code=region)


def dumps(document: Mapping[str, Any]) -> str:
    """GeoJSON text: UTF-8 names kept, compact."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))
