"""Reads and queries of the parcel registry: lookups, holders on a date, history, paging.

Imported through ``parcels.service``; see there for the functions other capabilities call.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import shapely
from shapely.geometry import Point
from sqlalchemy import Integer, column, func, select, text
from sqlalchemy.orm import Session

from digital_village.db import utcnow
from digital_village.errors import Invalid, NotFound
from digital_village.parcels import codes, geometry
from digital_village.parcels.models import (
    Parcel,
    ParcelLineage,
    ParcelStatus,
)
from digital_village.regions.models import Cooperative, Household, Region

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
        crs = geometry.crs_of(name)
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


def get_parcel(*, session: Session, dkbm: str) -> Parcel:
    """The parcel with this DKBM, active or retired.

    Invalid when the text is no DKBM at all (saying what is wrong with it), NotFound when no
    parcel has the code.
    """
    try:
        code = codes.parse_dkbm(dkbm).code
    except codes.CodeError as error:
        raise Invalid(f"not a parcel code: {error}") from None
    parcel = session.scalar(select(Parcel).where(Parcel.dkbm == code))
    if parcel is None:
        raise NotFound(f"no parcel with DKBM {code}")
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


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


# CROSS JOIN makes SQLite walk the R*Tree first; left to itself, without statistics, it
# scans parcels by status and probes the tree for each (5 ms a lookup at 320 parcels).
_SQLITE_LOCATE = (
    "SELECT p.id, p.geometry_wkb FROM parcel_rtree AS r CROSS JOIN parcel AS p ON p.id = r.id "
    "WHERE r.min_lon <= ? AND r.max_lon >= ? AND r.min_lat <= ? AND r.max_lat >= ? "
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
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        found: int | None = connection.execute(_POSTGRES_LOCATE, {"lon": lon, "lat": lat}).scalar()
        return found
    # The sqlite3 connection under the session (same transaction): a point lookup is a hot
    # path, and SQLAlchemy's statement handling costs several times the R*Tree query itself.
    driver = connection.connection.driver_connection
    assert driver is not None
    rows = driver.execute(_SQLITE_LOCATE, (lon, lon, lat, lat)).fetchall()
    if len(rows) == 1:
        # One candidate is the usual case: test it without building arrays.
        return (
            int(rows[0][0])
            if shapely.intersects_xy(shapely.from_wkb(rows[0][1]), lon, lat)
            else None
        )
    if rows:
        shapes = shapely.from_wkb([wkb for _, wkb in rows])
        hits = shapely.intersects_xy(shapes, lon, lat)
        for (parcel_id, _), hit in zip(rows, hits, strict=True):
            if hit:
                return int(parcel_id)
    return None


def to_lonlat_point(x: float, y: float, source: SourceCrs) -> tuple[float, float]:
    """A point given in a supported CRS or map datum, as lon/lat; Invalid if not in China."""
    try:
        point: Any = geometry.from_source(Point(x, y), source_crs=source.crs, datum=source.datum)
    except geometry.GeometryError as error:
        raise Invalid(f"point ({x:.10g}, {y:.10g}) in {source.label}: {error}") from error
    return float(point.x), float(point.y)


def parcel_containing_point(*, session: Session, lon: float, lat: float) -> Parcel | None:
    """The active parcel that holds a lon/lat point, or None."""
    parcel_id = locate_id(session=session, lon=lon, lat=lat)
    return None if parcel_id is None else session.get(Parcel, parcel_id)


@dataclass(frozen=True)
class ParcelFacts:
    """What checking work recorded on a parcel needs of it, without its geometry."""

    id: int
    dkbm: str
    area_mu: float
    retired_at: dt.datetime | None


def parcel_facts(*, session: Session, dkbms: Iterable[str]) -> dict[str, ParcelFacts]:
    """Parcels (active or retired) by DKBM, for the codes that are registered."""
    found: dict[str, ParcelFacts] = {}
    for chunk in chunked(sorted(set(dkbms))):
        query = select(Parcel.id, Parcel.dkbm, Parcel.area_mu, Parcel.retired_at).where(
            Parcel.dkbm.in_(chunk)
        )
        found.update({row.dkbm: ParcelFacts(*row) for row in session.execute(query)})
    return found


def successors_of(*, session: Session, parcel: Parcel | ParcelFacts) -> Sequence[Parcel]:
    """The parcels a retired parcel was split or merged into."""
    return session.scalars(
        select(Parcel)
        .join(ParcelLineage, ParcelLineage.child_id == Parcel.id)
        .where(ParcelLineage.parent_id == parcel.id)
        .order_by(Parcel.dkbm)
    ).all()


CHUNK = 500


def bbox_ids(session: Session, bbox: tuple[float, float, float, float]) -> Any:
    """A subquery of the ids of parcels whose bounding box meets ``bbox`` (spatially indexed)."""
    params = dict(zip(("a", "b", "c", "d"), bbox, strict=True))
    if is_postgres(session):
        query = text("SELECT id FROM parcel WHERE geom && ST_MakeEnvelope(:a, :b, :c, :d, 4490)")
    else:
        query = text(
            "SELECT id FROM parcel_rtree WHERE max_lon >= :a AND min_lon <= :c "
            "AND max_lat >= :b AND min_lat <= :d"
        )
    return query.bindparams(**params).columns(column("id", Integer))


def _by_id(session: Session, key: Any, value: Any, ids: set[int]) -> dict[int, Any]:
    """``value`` of each row whose ``key`` (an id column) is in ``ids``, a chunk at a time."""
    found: dict[int, Any] = {}
    for chunk in chunked(sorted(ids)):
        found.update(
            (row[0], row[1]) for row in session.execute(select(key, value).where(key.in_(chunk)))
        )
    return found


def household_codes(session: Session, ids: set[int]) -> dict[int, str]:
    return _by_id(session, Household.id, Household.cbfbm, ids)


def household_cooperatives(session: Session, ids: set[int]) -> dict[int, int | None]:
    """The cooperative each household is a member of (None: of none)."""
    return _by_id(session, Household.id, Household.cooperative_id, ids)


def cooperative_codes(session: Session, ids: set[int]) -> dict[int, str]:
    return _by_id(session, Cooperative.id, Cooperative.uscc, ids)


def chunked(values: Sequence[Any], size: int = CHUNK) -> list[Sequence[Any]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


def lineage(*, session: Session, dkbm: str) -> dict[str, list[Parcel]]:
    """The parcels this one came from and the ones it became."""
    parcel = get_parcel(session=session, dkbm=dkbm)
    parents = session.scalars(
        select(Parcel)
        .join(ParcelLineage, ParcelLineage.parent_id == Parcel.id)
        .where(ParcelLineage.child_id == parcel.id)
        .order_by(Parcel.dkbm)
    ).all()
    return {"from": list(parents), "into": list(successors_of(session=session, parcel=parcel))}


@dataclass(frozen=True)
class Page:
    items: Sequence[Parcel]
    total: int
    limit: int
    offset: int


def region_filter(code: str) -> Any:
    """A WHERE clause for parcels of a 9-digit township, 12-digit village or 14-digit FBFBM."""
    code = code.strip()
    if not code.isdigit() or len(code) not in (9, 12, 14):
        raise Invalid(
            f"region {code!r} must be a 9-digit township, 12-digit village or 14-digit FBFBM"
        )
    if len(code) == 9:
        return Parcel.township_code == code
    if len(code) == 12:
        return Parcel.village_code == code
    return Parcel.fbfbm == code


def list_parcels(
    *,
    session: Session,
    region: str | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    include_retired: bool = False,
    limit: int = 100,
    offset: int = 0,
) -> Page:
    """Parcels by DKBM, of a township, village or FBFBM and/or meeting a lon/lat bbox."""
    if not 1 <= limit <= 1000:
        raise Invalid("limit must be 1..1000")
    if offset < 0:
        raise Invalid("offset must not be negative")
    conditions: list[Any] = []
    if region is not None:
        conditions.append(region_filter(region))
    if bbox is not None:
        min_lon, min_lat, max_lon, max_lat = bbox
        if not (min_lon <= max_lon and min_lat <= max_lat):
            raise Invalid("bbox must be min_lon,min_lat,max_lon,max_lat with min <= max")
        conditions.append(Parcel.id.in_(bbox_ids(session, bbox)))
    if not include_retired:
        conditions.append(Parcel.status == ParcelStatus.ACTIVE)
    total = session.scalar(select(func.count()).select_from(Parcel).where(*conditions)) or 0
    items = session.scalars(
        select(Parcel).where(*conditions).order_by(Parcel.dkbm).limit(limit).offset(offset)
    ).all()
    return Page(items, total, limit, offset)


def parcels_of_region(*, session: Session, code: str) -> Sequence[Parcel]:
    """Every active parcel of a township, village or FBFBM, by DKBM.

    NotFound for a code no registered region has (a mistyped village is not an empty one).
    """
    rows = session.scalars(
        select(Parcel)
        .where(region_filter(code), Parcel.status == ParcelStatus.ACTIVE)
        .order_by(Parcel.dkbm)
    ).all()
    if not rows:
        _require_region(session, code.strip())
    return rows


_LEVELS = {9: "township", 12: "village", 14: "发包方 (FBFBM)"}


def _require_region(session: Session, code: str) -> None:
    # An FBFBM with group 00 is the village itself contracting: the village is the region.
    known = code[:12] if len(code) == 14 and code.endswith("00") else code
    if session.scalar(select(Region.code).where(Region.code == known)) is None:
        raise NotFound(f"unknown {_LEVELS[len(code)]} code {code}: no such region is registered")


def neighbours(*, session: Session, dkbm: str, within_m: float = 2.0) -> list[tuple[Parcel, float]]:
    """Active parcels within ``within_m`` metres (touching, or across a ridge), nearest first."""
    if not 0 <= within_m <= 1000:
        raise Invalid("within_m must be 0..1000")
    parcel = get_parcel(session=session, dkbm=dkbm)
    # Degrees per metre: 1/111 km of latitude; longitude shrinks by cos(lat).
    pad_lat = within_m / 111_000 * 1.01
    pad_lon = pad_lat / max(0.1, float(np.cos(np.radians(parcel.max_lat))))
    bbox = (
        parcel.min_lon - pad_lon,
        parcel.min_lat - pad_lat,
        parcel.max_lon + pad_lon,
        parcel.max_lat + pad_lat,
    )
    others = session.scalars(
        select(Parcel).where(
            Parcel.id.in_(bbox_ids(session, bbox)),
            Parcel.status == ParcelStatus.ACTIVE,
            Parcel.id != parcel.id,
        )
    ).all()
    if not others:
        return []
    mine = geometry.to_gk(parcel_geometry(parcel), parcel.epsg)
    shapes = geometry.to_gk(
        np.asarray([parcel_geometry(p) for p in others], dtype=object), parcel.epsg
    )
    distances = shapely.distance(mine, shapes)
    found = [(p, float(d)) for p, d in zip(others, distances, strict=True) if d <= within_m]
    return sorted(found, key=lambda pair: (pair[1], pair[0].dkbm))


def list_all_active(*, session: Session) -> Sequence[Parcel]:
    """Every active parcel, by DKBM."""
    return session.scalars(
        select(Parcel).where(Parcel.status == ParcelStatus.ACTIVE).order_by(Parcel.dkbm)
    ).all()
