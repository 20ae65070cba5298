"""The parcel registry: every query of the parcel tables and the rules of the map.

Other capabilities call ``get_parcel``, ``get_active_parcel``, ``parcel_geometry``,
``parcel_containing_point`` and ``holder_at``; writes (register, change, split, merge) append
their ledger entries in the caller's transaction and never commit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import shapely
from shapely.geometry import Point
from sqlalchemy import or_, select, text
from sqlalchemy.orm import Session

from digital_village.db import utcnow
from digital_village.errors import Invalid, NotFound
from digital_village.parcels import geometry
from digital_village.parcels.models import Parcel, ParcelHolding, ParcelStatus

CHINA_TIME = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True)
class Holding:
    """Who held a parcel on a date: the contractor household and the operating cooperative."""

    contractor_household_id: int | None
    operator_cooperative_id: int | None


@dataclass(frozen=True)
class SourceCrs:
    """Where input coordinates come from: a CRS to transform from and a consumer-map offset."""

    crs: str | None = None
    datum: geometry.MapDatum = "wgs84"

    @property
    def label(self) -> str:
        return self.crs or ("EPSG:4490" if self.datum == "wgs84" else self.datum)


_LONLAT_NAMES = {"wgs84", "epsg:4326", "epsg:4490", "cgcs2000", "crs84", "ogc:crs84"}


def parse_source_crs(value: str | None) -> SourceCrs:
    """Read a ``--crs`` value: EPSG:NNNN (or any pyproj CRS text), gcj02, bd09 or lon/lat."""
    if value is None or not value.strip():
        return SourceCrs()
    name = value.strip()
    lowered = name.lower().replace("-", "").replace("_", "")
    if lowered in ("gcj02", "bd09"):
        datum: geometry.MapDatum = "gcj02" if lowered == "gcj02" else "bd09"
        return SourceCrs(datum=datum)
    if name.lower() in _LONLAT_NAMES:
        return SourceCrs()
    try:
        crs = geometry._crs(name)
    except geometry.GeometryError as error:
        raise Invalid(
            f"unknown CRS {name!r}: give EPSG:NNNN (e.g. EPSG:4544), gcj02 or bd09"
        ) from error
    if crs.to_epsg() in (4326, 4490):
        return SourceCrs()
    return SourceCrs(crs=name)


def today() -> dt.date:
    """Today's date in China, the calendar every valid_from refers to."""
    return utcnow().astimezone(CHINA_TIME).date()


# --- reads other capabilities use ----------------------------------------------------------


def get_parcel(*, session: Session, dkbm: str) -> Parcel:
    """The parcel with this DKBM, active or retired; NotFound otherwise."""
    parcel = session.scalar(select(Parcel).where(Parcel.dkbm == dkbm.strip()))
    if parcel is None:
        raise NotFound(f"no parcel with DKBM {dkbm}")
    return parcel


def get_active_parcel(*, session: Session, dkbm: str) -> Parcel:
    """The active parcel with this DKBM; Invalid when it was retired, NotFound when unknown."""
    parcel = get_parcel(session=session, dkbm=dkbm)
    if parcel.status is not ParcelStatus.ACTIVE:
        successors = [p.dkbm for p in successors_of(session=session, parcel=parcel)]
        after = f"; it became {', '.join(successors)}" if successors else ""
        raise Invalid(f"parcel {parcel.dkbm} was retired{after}", successors=successors)
    return parcel


def parcel_geometry(parcel: Parcel) -> geometry.Polygonal:
    """The parcel's Polygon or MultiPolygon, lon/lat CGCS2000 (≈ WGS84)."""
    shape: geometry.Polygonal = shapely.from_wkb(parcel.geometry_wkb)
    return shape


def _is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


_SQLITE_LOCATE = text(
    "SELECT p.id, p.geometry_wkb FROM parcel_rtree AS r JOIN parcel AS p ON p.id = r.id "
    "WHERE r.min_lon <= :lon AND r.max_lon >= :lon AND r.min_lat <= :lat AND r.max_lat >= :lat "
    "AND p.status = 'active'"
)
_POSTGRES_LOCATE = text(
    "SELECT id FROM parcel WHERE status = 'active' "
    "AND ST_Covers(geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4490)) ORDER BY id LIMIT 1"
)


def locate_id(*, session: Session, lon: float, lat: float) -> int | None:
    """The id of the active parcel covering a lon/lat point (boundary included), or None.

    SQLite: R*Tree candidates by bounding box, then exact shapely containment. PostgreSQL:
    ST_Covers on the GiST-indexed PostGIS column.
    """
    if _is_postgres(session):
        found: int | None = session.execute(_POSTGRES_LOCATE, {"lon": lon, "lat": lat}).scalar()
        return found
    rows = session.execute(_SQLITE_LOCATE, {"lon": lon, "lat": lat}).all()
    for parcel_id, wkb in rows:
        if shapely.intersects_xy(shapely.from_wkb(wkb), lon, lat):
            return int(parcel_id)
    return None


def to_lonlat_point(x: float, y: float, source: SourceCrs) -> tuple[float, float]:
    """A point given in a supported CRS or map datum, as lon/lat; Invalid if not in China."""
    try:
        point: Any = Point(x, y)
        if source.crs is not None:
            point = geometry.to_lonlat(point, source.crs)
        point = geometry.shift_geometry(point, source=source.datum, target="wgs84")
        geometry.check_china_lonlat(point)
    except geometry.GeometryError as error:
        raise Invalid(f"point ({x:g}, {y:g}) in {source.label}: {error}") from error
    return float(point.x), float(point.y)


def parcel_containing_point(*, session: Session, lon: float, lat: float) -> Parcel | None:
    """The active parcel that holds a lon/lat point, or None."""
    parcel_id = locate_id(session=session, lon=lon, lat=lat)
    return None if parcel_id is None else session.get(Parcel, parcel_id)


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


def successors_of(*, session: Session, parcel: Parcel) -> Sequence[Parcel]:
    """The parcels a retired parcel was split or merged into."""
    from digital_village.parcels.models import ParcelLineage

    return session.scalars(
        select(Parcel)
        .join(ParcelLineage, ParcelLineage.child_id == Parcel.id)
        .where(ParcelLineage.parent_id == parcel.id)
        .order_by(Parcel.dkbm)
    ).all()
