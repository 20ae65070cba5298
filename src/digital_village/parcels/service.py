"""The parcel registry: every query of the parcel tables and the rules of the map.

Other capabilities call ``get_parcel``, ``get_active_parcel``, ``parcel_geometry``,
``parcel_containing_point`` and ``holder_at``; writes (register, change, split, merge) append
their ledger entries in the caller's transaction and never commit.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import shapely
from shapely.geometry import Point
from sqlalchemy import Integer, column, func, insert, or_, select, text
from sqlalchemy.orm import Session

from digital_village.auth.actor import Actor
from digital_village.auth.models import Role
from digital_village.db import utcnow
from digital_village.errors import Conflict, Forbidden, Invalid, NotFound
from digital_village.ledger.log import EntryIn, Ledger
from digital_village.ledger.models import LedgerEntry
from digital_village.parcels import batch, codes, geometry, landuse
from digital_village.parcels.models import (
    Parcel,
    ParcelAttribute,
    ParcelHolding,
    ParcelImport,
    ParcelLineage,
    ParcelSequence,
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
    if _is_postgres(session):
        found: int | None = session.execute(_POSTGRES_LOCATE, {"lon": lon, "lat": lat}).scalar()
        return found
    # The sqlite3 connection under the session (same transaction): a point lookup is a hot
    # path, and SQLAlchemy's statement handling costs several times the R*Tree query itself.
    driver = session.connection().connection.driver_connection
    assert driver is not None
    rows = driver.execute(_SQLITE_LOCATE, (lon, lon, lat, lat)).fetchall()
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
    return session.scalars(
        select(Parcel)
        .join(ParcelLineage, ParcelLineage.child_id == Parcel.id)
        .where(ParcelLineage.parent_id == parcel.id)
        .order_by(Parcel.dkbm)
    ).all()


# --- codes, regions and scopes -------------------------------------------------------------


@dataclass(frozen=True)
class Contractor:
    """An FBFBM checked against the administrative tree."""

    fbfbm: str
    township_code: str
    village_code: str
    group_code: str | None


def check_fbfbm(*, session: Session, fbfbm: str) -> Contractor:
    """Parse an FBFBM and check that its township, village and group are registered regions."""
    try:
        parsed = codes.parse_fbfbm(fbfbm)
    except codes.CodeError as error:
        raise Invalid(f"FBFBM {fbfbm.strip()!r}: {error}") from error
    if parsed.level == "township":
        raise Invalid(f"FBFBM {parsed.code} names village 000: land is contracted by a village")
    known = set(
        session.scalars(
            select(Region.code).where(
                Region.code.in_([parsed.township_code, parsed.village_code, parsed.code])
            )
        )
    )
    if parsed.township_code not in known:
        raise Invalid(f"unknown township code {parsed.township_code} in FBFBM {parsed.code}")
    if parsed.village_code not in known:
        raise Invalid(
            f"unknown village code {parsed.village_code} in FBFBM {parsed.code}; "
            "add it with `dv regions add`"
        )
    group = parsed.code if parsed.group != "00" else None
    if group is not None and group not in known:
        raise Invalid(
            f"unknown group code {parsed.group} of village {parsed.village_code} "
            f"(FBFBM {parsed.code}); add it with `dv regions add {parsed.code} NAME`"
        )
    return Contractor(parsed.code, parsed.township_code, parsed.village_code, group)


def _cooperative_region(session: Session, actor: Actor) -> str | None:
    if actor.role is not Role.MANAGER or actor.cooperative_id is None:
        return None
    cooperative = session.get(Cooperative, actor.cooperative_id)
    return cooperative.region_code if cooperative else None


def require_region_scope(*, session: Session, actor: Actor, fbfbm: str) -> None:
    """Admin, or a manager whose cooperative is registered in the FBFBM's village or township."""
    _require_region(session, actor, fbfbm)


def _require_region(session: Session, actor: Actor, fbfbm: str) -> None:
    """Admin, or a manager whose cooperative is registered in the parcel's village or township."""
    if actor.is_admin:
        return
    region = _cooperative_region(session, actor)
    if region is not None and fbfbm.startswith(region):
        return
    raise Forbidden(
        f"a {actor.role.value} token may not register or reshape parcels of {fbfbm}; "
        "it needs an admin token or a manager of a cooperative in that village or township",
        role=actor.role.value,
    )


# --- registration --------------------------------------------------------------------------


@dataclass(frozen=True)
class ParcelIn:
    """One parcel to register: raw geometry and attributes, checked by ``register_many``."""

    geometry: Any
    land_use: str
    fbfbm: str | None = None  # None: the FBFBM given to register_many
    name: str | None = None
    bdcdyh: str | None = None
    contractor_household_id: int | None = None
    operator_cooperative_id: int | None = None
    crops: tuple[tuple[str, str], ...] = ()  # (season label, crop)


@dataclass(frozen=True)
class Created:
    feature: int
    dkbm: str
    area_m2: float
    area_mu: float
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rejected:
    feature: int
    reason: str


@dataclass
class RegisterReport:
    """What a registration did: parcels created and features rejected, each with its index."""

    created: list[Created] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    stored: bool = True
    already_imported: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "created": [
                {
                    "feature": c.feature,
                    "dkbm": c.dkbm,
                    "area_m2": round(c.area_m2, 2),
                    "area_mu": round(c.area_mu, 4),
                    **({"warnings": list(c.warnings)} if c.warnings else {}),
                }
                for c in self.created
            ],
            "rejected": [{"feature": r.feature, "reason": r.reason} for r in self.rejected],
            "stored": self.stored,
            **({"already_imported": self.already_imported} if self.already_imported else {}),
        }


@dataclass
class _Candidate:
    feature: int
    item: ParcelIn
    contractor: Contractor
    shape: geometry.ParcelShape
    crops: list[tuple[str, str, dt.date, dt.date]]


OVERLAP_TOLERANCE_M2 = 1.0
_CHUNK = 500


def _check_attributes(item: ParcelIn) -> list[tuple[str, str, dt.date, dt.date]]:
    if item.land_use not in landuse.LAND_USE:
        raise Invalid(
            f"land use {item.land_use!r} is not a GB/T 21010 farm class "
            f"(e.g. 0101 水田, 0103 旱地, 0201 果园)"
        )
    if item.bdcdyh is not None:
        try:
            codes.parse_bdcdyh(item.bdcdyh)
        except codes.CodeError as error:
            raise Invalid(f"不动产单元代码: {error}") from error
    crops = []
    for season, crop in item.crops:
        try:
            start, end = landuse.season_period(season)
        except ValueError as error:
            raise Invalid(str(error)) from error
        if not crop.strip() or len(crop.strip()) > 40:
            raise Invalid(f"crop of {season} must be 1 to 40 characters")
        crops.append((season, crop.strip(), start, end))
    return crops


def _bbox_ids(session: Session, bbox: tuple[float, float, float, float]) -> Any:
    """A subquery of the ids of parcels whose bounding box meets ``bbox`` (spatially indexed)."""
    params = dict(zip(("a", "b", "c", "d"), bbox, strict=True))
    if _is_postgres(session):
        query = text("SELECT id FROM parcel WHERE geom && ST_MakeEnvelope(:a, :b, :c, :d, 4490)")
    else:
        query = text(
            "SELECT id FROM parcel_rtree WHERE max_lon >= :a AND min_lon <= :c "
            "AND max_lat >= :b AND min_lat <= :d"
        )
    return query.bindparams(**params).columns(column("id", Integer))


def _active_near(
    session: Session, bbox: tuple[float, float, float, float]
) -> list[tuple[str, str, bytes]]:
    rows = session.execute(
        select(Parcel.dkbm, Parcel.fingerprint, Parcel.geometry_wkb).where(
            Parcel.id.in_(_bbox_ids(session, bbox)), Parcel.status == ParcelStatus.ACTIVE
        )
    ).all()
    return [(r[0], r[1], r[2]) for r in rows]


def _overlap_reasons(
    session: Session, candidates: list[_Candidate], *, ignore: frozenset[str] = frozenset()
) -> dict[int, str]:
    """Reasons to reject candidates that overlap an active parcel or an earlier candidate."""
    if not candidates:
        return {}
    shapes = np.asarray([c.shape.geometry for c in candidates], dtype=object)
    bounds = shapely.total_bounds(shapes)
    existing = [row for row in _active_near(session, tuple(bounds)) if row[0] not in ignore]
    by_fingerprint = {row[1]: row[0] for row in existing}
    reasons: dict[int, str] = {}
    seen: dict[str, int] = {}
    for position, candidate in enumerate(candidates):
        same = by_fingerprint.get(candidate.shape.fingerprint)
        if same is not None:
            reasons[position] = f"same shape as parcel {same}, already registered (re-import?)"
        elif candidate.shape.fingerprint in seen:
            earlier = candidates[seen[candidate.shape.fingerprint]].feature
            reasons[position] = f"same shape as feature {earlier} of this input"
        else:
            seen[candidate.shape.fingerprint] = position
    others = np.asarray([shapely.from_wkb(row[2]) for row in existing], dtype=object)
    tree_items = np.concatenate([others, shapes]) if len(others) else shapes
    pairs = shapely.STRtree(tree_items).query(shapes, predicate="intersects")
    mine, theirs = pairs[0], pairs[1]
    # An existing parcel (index < len(others)) or an earlier candidate.
    relevant = (theirs < len(others)) | (theirs - len(others) < mine)
    mine, theirs = mine[relevant], theirs[relevant]
    if len(mine) == 0:
        return reasons
    shared = shapely.intersection(shapes[mine], tree_items[theirs])
    areas = np.zeros(len(mine))
    epsgs = np.asarray([candidates[m].shape.epsg for m in mine])
    for epsg in np.unique(epsgs):
        chosen = np.flatnonzero(epsgs == epsg)
        areas[chosen] = shapely.area(geometry.to_gk(shared[chosen], int(epsg)))
    hits: dict[int, list[tuple[int, float]]] = {}
    for m, t, shared_m2 in zip(mine, theirs, areas, strict=True):
        if shared_m2 > OVERLAP_TOLERANCE_M2:
            hits.setdefault(int(m), []).append((int(t), float(shared_m2)))
    for position in sorted(hits):
        if position in reasons:
            continue
        named = []
        for t, area in sorted(hits[position], key=lambda hit: -hit[1]):
            if t < len(others):
                named.append(f"parcel {existing[t][0]} ({area:.1f} m²)")
            elif (t - len(others)) not in reasons:  # a rejected feature is no obstacle
                named.append(f"feature {candidates[t - len(others)].feature} ({area:.1f} m²)")
        if named:
            reasons[position] = "overlaps " + ", ".join(named)
    return reasons


def _allocate(session: Session, fbfbm: str, count: int) -> int:
    """Reserve ``count`` new sequences under an FBFBM; return the first. Never reused."""
    row = session.scalars(
        select(ParcelSequence).where(ParcelSequence.fbfbm == fbfbm).with_for_update()
    ).first()
    first = (row.last_sequence if row else 0) + 1
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


def _household_codes(session: Session, ids: set[int]) -> dict[int, str]:
    found: dict[int, str] = {}
    for chunk in _chunks(sorted(ids)):
        found.update(
            session.execute(
                select(Household.id, Household.cbfbm).where(Household.id.in_(chunk))
            ).all()
        )
    return found


def _cooperative_codes(session: Session, ids: set[int]) -> dict[int, str]:
    found: dict[int, str] = {}
    for chunk in _chunks(sorted(ids)):
        found.update(
            session.execute(
                select(Cooperative.id, Cooperative.uscc).where(Cooperative.id.in_(chunk))
            ).all()
        )
    return found


def _chunks(values: Sequence[Any], size: int = _CHUNK) -> list[Sequence[Any]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


def _geometry_wkb(shape: geometry.Polygonal) -> bytes:
    wkb: bytes = shapely.to_wkb(shape, output_dimension=2, byte_order=1)
    return wkb


def register_many(
    *,
    session: Session,
    ledger: Ledger,
    fbfbm: str,
    items: Sequence[ParcelIn],
    actor: Actor,
    source: SourceCrs | None = None,
    allow_repair: bool = False,
    all_or_nothing: bool = False,
    valid_from: dt.date | None = None,
    kind: str = "parcel.registered",
    extra: dict[str, Any] | None = None,
    feature_numbers: Sequence[int] | None = None,
) -> RegisterReport:
    """Check every parcel, store the good ones (or none, ``all_or_nothing``), report the rest.

    Each feature is checked for its FBFBM (known region, under ``fbfbm``), attributes
    (GB/T 21010 land use, 不动产单元代码, crop seasons, holders), geometry (prepare_parcel),
    a shape already registered, and overlaps over 1 m² with active parcels or earlier
    features. Stored parcels get the next DKBMs of their FBFBM and one ledger entry each.
    ``feature_numbers`` names the items in reports (default: their index in ``items``).
    """
    numbers = list(feature_numbers) if feature_numbers is not None else list(range(len(items)))
    source = source or SourceCrs()
    base = check_fbfbm(session=session, fbfbm=fbfbm)
    _require_region(session, actor, base.fbfbm)
    start = valid_from or today()
    report = RegisterReport()
    contractors: dict[str, Contractor | Invalid] = {base.fbfbm: base}
    households = _household_codes(
        session, {i.contractor_household_id for i in items if i.contractor_household_id}
    )
    cooperatives = _cooperative_codes(
        session, {i.operator_cooperative_id for i in items if i.operator_cooperative_id}
    )
    shapes = batch.prepare_many(
        [item.geometry for item in items],
        source_crs=source.crs,
        datum=source.datum,
        allow_repair=allow_repair,
    )
    candidates: list[_Candidate] = []
    for index, (item, shape) in enumerate(zip(items, shapes, strict=True)):
        try:
            owner = _feature_contractor(session, base, item.fbfbm, contractors)
            crops = _check_attributes(item)
            if item.contractor_household_id and item.contractor_household_id not in households:
                raise Invalid(f"no household with id {item.contractor_household_id}")
            if item.operator_cooperative_id and item.operator_cooperative_id not in cooperatives:
                raise Invalid(f"no cooperative with id {item.operator_cooperative_id}")
            if isinstance(shape, geometry.GeometryError):
                raise Invalid(str(shape))
        except Invalid as error:
            report.rejected.append(Rejected(numbers[index], error.detail))
            continue
        candidates.append(_Candidate(numbers[index], item, owner, shape, crops))
    reasons = _overlap_reasons(session, candidates)
    for position, reason in reasons.items():
        report.rejected.append(Rejected(candidates[position].feature, reason))
    report.rejected.sort(key=lambda r: r.feature)
    accepted = [c for position, c in enumerate(candidates) if position not in reasons]
    if not accepted or (all_or_nothing and report.rejected):
        report.stored = not report.rejected
        return report
    _store(
        session,
        ledger,
        accepted,
        start=start,
        households=households,
        cooperatives=cooperatives,
        kind=kind,
        extra=extra or {},
        report=report,
    )
    return report


def _feature_contractor(
    session: Session,
    base: Contractor,
    text_code: str | None,
    cache: dict[str, Contractor | Invalid],
) -> Contractor:
    code = (text_code or base.fbfbm).strip()
    if code not in cache:
        try:
            cache[code] = check_fbfbm(session=session, fbfbm=code)
        except Invalid as error:
            cache[code] = error
    found = cache[code]
    if isinstance(found, Invalid):
        raise found
    same_scope = found.fbfbm == base.fbfbm or (
        base.group_code is None and found.village_code == base.village_code
    )
    if not same_scope:
        raise Invalid(f"feature's FBFBM {found.fbfbm} is not under the import's FBFBM {base.fbfbm}")
    return found


def _store(
    session: Session,
    ledger: Ledger,
    accepted: list[_Candidate],
    *,
    start: dt.date,
    households: dict[int, str],
    cooperatives: dict[int, str],
    kind: str,
    extra: dict[str, Any],
    report: RegisterReport,
) -> list[int]:
    """Allocate codes, append the ledger entries, insert the rows. Returns the new parcel ids."""
    by_fbfbm: dict[str, list[_Candidate]] = {}
    for candidate in accepted:
        by_fbfbm.setdefault(candidate.contractor.fbfbm, []).append(candidate)
    dkbms: dict[int, str] = {}
    for code, members in by_fbfbm.items():
        first = _allocate(session, code, len(members))
        for offset, candidate in enumerate(members):
            dkbms[candidate.feature] = codes.format_dkbm(code, first + offset)
    wkbs = [_geometry_wkb(c.shape.geometry) for c in accepted]
    hashes = [hashlib.sha256(wkb).hexdigest() for wkb in wkbs]
    entries = []
    for candidate, digest in zip(accepted, hashes, strict=True):
        item, shape = candidate.item, candidate.shape
        data: dict[str, Any] = {
            "dkbm": dkbms[candidate.feature],
            "fbfbm": candidate.contractor.fbfbm,
            "area_m2": round(shape.area_m2, 2),
            "area_mu": round(shape.area_mu, 4),
            "land_use": item.land_use,
            "geometry_sha256": digest,
            "fingerprint": shape.fingerprint,
            "valid_from": start.isoformat(),
            **extra,
        }
        if item.bdcdyh:
            data["bdcdyh"] = codes.parse_bdcdyh(item.bdcdyh).code
        if item.contractor_household_id:
            data["contractor"] = households[item.contractor_household_id]
        if item.operator_cooperative_id:
            data["operator"] = cooperatives[item.operator_cooperative_id]
        entries.append(EntryIn(kind, data, f"parcel:{dkbms[candidate.feature]}"))
    appended = ledger.append_many(session, entries)
    rows = []
    for candidate, wkb, digest, entry in zip(accepted, wkbs, hashes, appended, strict=True):
        shape, item = candidate.shape, candidate.item
        min_lon, min_lat, max_lon, max_lat = shape.geometry.bounds
        rows.append(
            {
                "dkbm": dkbms[candidate.feature],
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
                "last_seq": entry.seq,
            }
        )
    # Core inserts on the session's connection: the ORM's bulk path with RETURNING costs
    # several times more than the SQL; the ids are read back by DKBM.
    connection = session.connection()
    connection.execute(insert(Parcel), rows)
    id_of: dict[str, int] = {}
    for chunk in _chunks([row["dkbm"] for row in rows]):
        id_of.update(
            (row[0], row[1])
            for row in connection.execute(
                select(Parcel.dkbm, Parcel.id).where(Parcel.dkbm.in_(chunk))
            )
        )
    ids = [id_of[row["dkbm"]] for row in rows]
    holdings, attributes = [], []
    for parcel_id, candidate, entry in zip(ids, accepted, appended, strict=True):
        item = candidate.item
        if item.contractor_household_id or item.operator_cooperative_id:
            holdings.append(
                {
                    "parcel_id": parcel_id,
                    "contractor_household_id": item.contractor_household_id,
                    "operator_cooperative_id": item.operator_cooperative_id,
                    "valid_from": start,
                    "ledger_seq": entry.seq,
                }
            )
        attributes.append(
            {
                "parcel_id": parcel_id,
                "name": "land_use",
                "value": item.land_use,
                "season": None,
                "valid_from": start,
                "ledger_seq": entry.seq,
            }
        )
        for season, crop, crop_from, crop_to in candidate.crops:
            attributes.append(
                {
                    "parcel_id": parcel_id,
                    "name": "crop",
                    "value": crop,
                    "season": season,
                    "valid_from": crop_from,
                    "valid_to": crop_to,
                    "ledger_seq": entry.seq,
                }
            )
    if holdings:
        connection.execute(insert(ParcelHolding), holdings)
    # Rows of one executemany must have the same keys.
    for row in attributes:
        row.setdefault("valid_to", None)
    connection.execute(insert(ParcelAttribute), attributes)
    for candidate in accepted:
        shape = candidate.shape
        report.created.append(
            Created(
                candidate.feature,
                dkbms[candidate.feature],
                shape.area_m2,
                shape.area_mu,
                shape.warnings,
            )
        )
    report.created.sort(key=lambda c: c.feature)
    return ids


def register(
    *,
    session: Session,
    ledger: Ledger,
    fbfbm: str,
    parcel_in: ParcelIn,
    actor: Actor,
    source: SourceCrs | None = None,
    allow_repair: bool = False,
    valid_from: dt.date | None = None,
) -> tuple[Parcel, tuple[str, ...]]:
    """Register one parcel; Invalid (or Conflict for an overlap) naming what is wrong."""
    report = register_many(
        session=session,
        ledger=ledger,
        fbfbm=fbfbm,
        items=[parcel_in],
        actor=actor,
        source=source,
        allow_repair=allow_repair,
        valid_from=valid_from,
    )
    if report.rejected:
        reason = report.rejected[0].reason
        if reason.startswith(("overlaps", "same shape")):
            raise Conflict(reason)
        raise Invalid(reason)
    created = report.created[0]
    return get_parcel(session=session, dkbm=created.dkbm), created.warnings


# --- changes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParcelChange:
    """Attributes to change from ``valid_from`` on (default today); None leaves one alone."""

    valid_from: dt.date | None = None
    holding: Holding | None = None
    land_use: str | None = None
    crop: tuple[str, str] | None = None  # (season label, crop): replaces that season's crop
    bdcdyh: str | None = None


def _open_holding(session: Session, parcel_id: int) -> ParcelHolding | None:
    return session.scalars(
        select(ParcelHolding).where(
            ParcelHolding.parcel_id == parcel_id, ParcelHolding.valid_to.is_(None)
        )
    ).first()


def _require_change_scope(
    session: Session, actor: Actor, parcel: Parcel, change: ParcelChange
) -> None:
    if actor.is_admin:
        return
    current = _open_holding(session, parcel.id)
    if actor.role is Role.FARMER:
        only_crop = change.crop is not None and change == ParcelChange(
            valid_from=change.valid_from, crop=change.crop
        )
        holds = current is not None and current.contractor_household_id == actor.household_id
        if only_crop and holds and actor.household_id is not None:
            return
        raise Forbidden(
            "a farmer token may only record the crop of parcels its household contracts",
            role=actor.role.value,
        )
    if actor.role is not Role.MANAGER:
        raise Forbidden(f"a {actor.role.value} token may not change parcels", role=actor.role.value)
    operates = current is not None and current.operator_cooperative_id == actor.cooperative_id
    region = _cooperative_region(session, actor)
    if not operates and not (region is not None and parcel.fbfbm.startswith(region)):
        raise Forbidden(
            f"a manager may change parcels its cooperative operates or in its region; "
            f"{parcel.dkbm} is neither",
            role=actor.role.value,
        )
    new_operator = change.holding.operator_cooperative_id if change.holding else None
    if new_operator not in (None, actor.cooperative_id):
        raise Forbidden(
            f"a manager may hand a parcel's operation to its own cooperative only, "
            f"not to cooperative {new_operator}",
            role=actor.role.value,
        )


def change(
    *, session: Session, ledger: Ledger, dkbm: str, change: ParcelChange, actor: Actor
) -> Parcel:
    """Record new holders, land use, a season's crop or the 不动产单元代码 of an active parcel.

    The current period of each changed attribute ends at ``valid_from``; a new one starts
    there. One ``parcel.changed`` ledger entry records everything changed together.
    """
    parcel = get_active_parcel(session=session, dkbm=dkbm)
    _require_change_scope(session, actor, parcel, change)
    start = change.valid_from or today()
    data: dict[str, Any] = {"dkbm": parcel.dkbm, "valid_from": start.isoformat()}
    if change == ParcelChange(valid_from=change.valid_from):
        raise Invalid("nothing to change: give holders, land_use, crop or bdcdyh")
    closing: list[Any] = []
    new_rows: list[Any] = []
    if change.holding is not None:
        contractor = change.holding.contractor_household_id
        operator = change.holding.operator_cooperative_id
        if contractor is not None:
            household = session.get(Household, contractor)
            if household is None:
                raise Invalid(f"no household with id {contractor}")
            data["contractor"] = household.cbfbm
        else:
            data["contractor"] = None
        if operator is not None:
            cooperative = session.get(Cooperative, operator)
            if cooperative is None:
                raise Invalid(f"no cooperative with id {operator}")
            data["operator"] = cooperative.uscc
        else:
            data["operator"] = None
        current = _open_holding(session, parcel.id)
        if current is not None:
            if start <= current.valid_from:
                raise Invalid(
                    f"the change must start after the current holding, which began on "
                    f"{current.valid_from.isoformat()}"
                )
            closing.append(current)
        new_rows.append(
            ParcelHolding(
                parcel_id=parcel.id,
                contractor_household_id=contractor,
                operator_cooperative_id=operator,
                valid_from=start,
            )
        )
    if change.land_use is not None:
        if change.land_use not in landuse.LAND_USE:
            raise Invalid(f"land use {change.land_use!r} is not a GB/T 21010 farm class")
        current_use = session.scalars(
            select(ParcelAttribute).where(
                ParcelAttribute.parcel_id == parcel.id,
                ParcelAttribute.name == "land_use",
                ParcelAttribute.valid_to.is_(None),
            )
        ).first()
        if current_use is not None:
            if start <= current_use.valid_from:
                raise Invalid(
                    f"the change must start after the current land use, which began on "
                    f"{current_use.valid_from.isoformat()}"
                )
            closing.append(current_use)
        new_rows.append(
            ParcelAttribute(
                parcel_id=parcel.id, name="land_use", value=change.land_use, valid_from=start
            )
        )
        parcel.land_use = change.land_use
        data["land_use"] = change.land_use
    if change.crop is not None:
        season, crop = change.crop
        try:
            crop_from, crop_to = landuse.season_period(season)
        except ValueError as error:
            raise Invalid(str(error)) from error
        crop = crop.strip()
        if not crop or len(crop) > 40:
            raise Invalid("crop must be 1 to 40 characters")
        for row in session.scalars(
            select(ParcelAttribute).where(
                ParcelAttribute.parcel_id == parcel.id,
                ParcelAttribute.name == "crop",
                ParcelAttribute.season == season,
                ParcelAttribute.superseded_at.is_(None),
            )
        ):
            row.superseded_at = utcnow()
        new_rows.append(
            ParcelAttribute(
                parcel_id=parcel.id,
                name="crop",
                value=crop,
                season=season,
                valid_from=crop_from,
                valid_to=crop_to,
            )
        )
        data["crop"] = {"season": season, "crop": crop}
    if change.bdcdyh is not None:
        try:
            parcel.bdcdyh = codes.parse_bdcdyh(change.bdcdyh).code
        except codes.CodeError as error:
            raise Invalid(f"不动产单元代码: {error}") from error
        data["bdcdyh"] = parcel.bdcdyh
    entry = ledger.append(
        session, kind="parcel.changed", data=data, chain_key=f"parcel:{parcel.dkbm}"
    )
    for row in closing:
        row.valid_to = start
    for row in new_rows:
        row.ledger_seq = entry.seq
        session.add(row)
    parcel.last_seq = entry.seq
    session.flush()
    return parcel


# --- split and merge -----------------------------------------------------------------------


def _retire(
    session: Session, parcels_: Sequence[Parcel], on: dt.date, seqs: dict[int, int]
) -> None:
    ids = [p.id for p in parcels_]
    for holding in session.scalars(
        select(ParcelHolding).where(
            ParcelHolding.parcel_id.in_(ids), ParcelHolding.valid_to.is_(None)
        )
    ):
        holding.valid_to = max(on, holding.valid_from)
    for attribute in session.scalars(
        select(ParcelAttribute).where(
            ParcelAttribute.parcel_id.in_(ids),
            ParcelAttribute.name == "land_use",
            ParcelAttribute.valid_to.is_(None),
        )
    ):
        attribute.valid_to = max(on, attribute.valid_from)
    now = utcnow()
    for parcel in parcels_:
        parcel.status = ParcelStatus.RETIRED
        parcel.retired_at = now
        parcel.last_seq = seqs[parcel.id]


def _future_crops(session: Session, parcel_id: int, on: dt.date) -> tuple[tuple[str, str], ...]:
    rows = session.scalars(
        select(ParcelAttribute)
        .where(
            ParcelAttribute.parcel_id == parcel_id,
            ParcelAttribute.name == "crop",
            ParcelAttribute.superseded_at.is_(None),
            or_(ParcelAttribute.valid_to.is_(None), ParcelAttribute.valid_to > on),
        )
        .order_by(ParcelAttribute.valid_from)
    ).all()
    return tuple((row.season or landuse.season_of(row.valid_from), row.value) for row in rows)


def split(
    *,
    session: Session,
    ledger: Ledger,
    dkbm: str,
    parts: Sequence[Any],
    actor: Actor,
    source: SourceCrs | None = None,
    valid_from: dt.date | None = None,
) -> list[Parcel]:
    """Retire a parcel and register its parts under new DKBMs of the same FBFBM.

    The parts must not overlap each other and must together cover the parcel (within 1 m²
    or 0.1 % of its area). They inherit land use, holders and the crops still to come.
    """
    parent = get_active_parcel(session=session, dkbm=dkbm)
    _require_region(session, actor, parent.fbfbm)
    if len(parts) < 2:
        raise Invalid("a split needs at least two parts")
    start = valid_from or today()
    source = source or SourceCrs()
    shapes = batch.prepare_many(list(parts), source_crs=source.crs, datum=source.datum)
    for index, shape in enumerate(shapes):
        if isinstance(shape, geometry.GeometryError):
            raise Invalid(f"part {index}: {shape}")
    prepared = [s for s in shapes if isinstance(s, geometry.ParcelShape)]
    whole = parcel_geometry(parent)
    epsg = parent.epsg
    mismatch = shapely.area(
        geometry.to_gk(
            shapely.symmetric_difference(whole, shapely.union_all([p.geometry for p in prepared])),
            epsg,
        )
    )
    tolerance = max(OVERLAP_TOLERANCE_M2, 0.001 * parent.area_m2)
    if mismatch > tolerance:
        raise Invalid(
            f"the parts do not cover parcel {parent.dkbm}: they differ from it by "
            f"{mismatch:.1f} m² (allowed {tolerance:.1f} m²)"
        )
    for i, first in enumerate(prepared):
        for j in range(i + 1, len(prepared)):
            shared = geometry.find_overlaps(
                first.geometry, {str(j): prepared[j].geometry}, tolerance_m2=OVERLAP_TOLERANCE_M2
            )
            if shared:
                raise Invalid(f"parts {i} and {j} overlap by {shared[str(j)]:.1f} m²")
    holding = _open_holding(session, parent.id)
    items = [
        ParcelIn(
            geometry=shape.geometry,
            land_use=parent.land_use,
            fbfbm=parent.fbfbm,
            contractor_household_id=holding.contractor_household_id if holding else None,
            operator_cooperative_id=holding.operator_cooperative_id if holding else None,
            crops=_future_crops(session, parent.id, start),
        )
        for shape in prepared
    ]
    return _replace(session, ledger, [parent], items, start=start, kind="split", actor=actor)


def merge(
    *,
    session: Session,
    ledger: Ledger,
    dkbms: Sequence[str],
    actor: Actor,
    valid_from: dt.date | None = None,
) -> Parcel:
    """Retire adjacent active parcels of one FBFBM and register their union under a new DKBM.

    They must touch (their union is one polygon) and have the same holders and land use.
    """
    unique = list(dict.fromkeys(code.strip() for code in dkbms))
    if len(unique) < 2:
        raise Invalid("a merge needs at least two different parcels")
    members = [get_active_parcel(session=session, dkbm=code) for code in unique]
    fbfbms = {p.fbfbm for p in members}
    if len(fbfbms) > 1:
        raise Invalid(f"parcels of different 发包方 cannot merge: {', '.join(sorted(fbfbms))}")
    _require_region(session, actor, members[0].fbfbm)
    union = shapely.union_all([parcel_geometry(p) for p in members])
    if not isinstance(union, shapely.Polygon):
        raise Invalid(
            f"parcels {', '.join(unique)} do not all touch: their union is not one polygon"
        )
    holdings = {p.dkbm: _open_holding(session, p.id) for p in members}
    holders = {
        (h.contractor_household_id, h.operator_cooperative_id) if h else (None, None)
        for h in holdings.values()
    }
    if len(holders) > 1:
        raise Invalid("the parcels have different contractors or operators; change them first")
    uses = {p.land_use for p in members}
    if len(uses) > 1:
        raise Invalid(f"the parcels have different land uses ({', '.join(sorted(uses))})")
    start = valid_from or today()
    contractor, operator = next(iter(holders))
    item = ParcelIn(
        geometry=union,
        land_use=members[0].land_use,
        fbfbm=members[0].fbfbm,
        contractor_household_id=contractor,
        operator_cooperative_id=operator,
        crops=_future_crops(session, members[0].id, start),
    )
    return _replace(session, ledger, members, [item], start=start, kind="merge", actor=actor)[0]


def _replace(
    session: Session,
    ledger: Ledger,
    parents: Sequence[Parcel],
    items: list[ParcelIn],
    *,
    start: dt.date,
    kind: str,
    actor: Actor,
) -> list[Parcel]:
    parent_codes = [p.dkbm for p in parents]
    # Check against every active parcel but the ones being replaced.
    base = check_fbfbm(session=session, fbfbm=parents[0].fbfbm)
    shapes = batch.prepare_many([item.geometry for item in items])
    candidates = []
    for index, (item, shape) in enumerate(zip(items, shapes, strict=True)):
        if isinstance(shape, geometry.GeometryError):
            raise Invalid(f"part {index}: {shape}")
        candidates.append(_Candidate(index, item, base, shape, _check_attributes(item)))
    reasons = _overlap_reasons(session, candidates, ignore=frozenset(parent_codes))
    if reasons:
        position, reason = next(iter(sorted(reasons.items())))
        raise Conflict(f"part {position}: {reason}")
    households = _household_codes(
        session, {i.contractor_household_id for i in items if i.contractor_household_id}
    )
    cooperatives = _cooperative_codes(
        session, {i.operator_cooperative_id for i in items if i.operator_cooperative_id}
    )
    report = RegisterReport()
    child_ids = _store(
        session,
        ledger,
        candidates,
        start=start,
        households=households,
        cooperatives=cooperatives,
        kind="parcel.registered",
        extra={"from": parent_codes, "by": kind},
        report=report,
    )
    children = [c.dkbm for c in report.created]
    entries = [
        EntryIn(
            f"parcel.{'split' if kind == 'split' else 'merged'}",
            {"dkbm": parent.dkbm, "into": children, "valid_to": start.isoformat()},
            f"parcel:{parent.dkbm}",
        )
        for parent in parents
    ]
    appended = ledger.append_many(session, entries)
    seqs = {parent.id: entry.seq for parent, entry in zip(parents, appended, strict=True)}
    _retire(session, parents, start, seqs)
    for parent in parents:
        for child_id in child_ids:
            session.add(
                ParcelLineage(
                    parent_id=parent.id, child_id=child_id, kind=kind, ledger_seq=seqs[parent.id]
                )
            )
    session.flush()
    del actor  # scope was checked by the caller
    return [get_parcel(session=session, dkbm=code) for code in children]


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


# --- queries -------------------------------------------------------------------------------


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
        conditions.append(Parcel.id.in_(_bbox_ids(session, bbox)))
    if not include_retired:
        conditions.append(Parcel.status == ParcelStatus.ACTIVE)
    total = session.scalar(select(func.count()).select_from(Parcel).where(*conditions)) or 0
    items = session.scalars(
        select(Parcel).where(*conditions).order_by(Parcel.dkbm).limit(limit).offset(offset)
    ).all()
    return Page(items, total, limit, offset)


def parcels_of_region(*, session: Session, code: str) -> Sequence[Parcel]:
    """Every active parcel of a township, village or FBFBM, by DKBM."""
    return session.scalars(
        select(Parcel)
        .where(region_filter(code), Parcel.status == ParcelStatus.ACTIVE)
        .order_by(Parcel.dkbm)
    ).all()


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
            Parcel.id.in_(_bbox_ids(session, bbox)),
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


def crop_on(*, session: Session, dkbm: str, on: dt.date) -> str | None:
    """The crop recorded for a parcel on a date, or None."""
    parcel = get_parcel(session=session, dkbm=dkbm)
    return crops_on(session=session, parcel_ids=[parcel.id], on=on).get(parcel.id)


def crops_on(*, session: Session, parcel_ids: Sequence[int], on: dt.date) -> dict[int, str]:
    """Parcel id → crop on a date, for the parcels that have one."""
    found: dict[int, str] = {}
    for chunk in _chunks(list(parcel_ids)):
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
    for chunk in _chunks(list(parcel_ids)):
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


def history(*, session: Session, dkbm: str) -> dict[str, Any]:
    """Every recorded period of a parcel's holders, land use and crops, oldest first."""
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

    households = _household_codes(
        session, {h.contractor_household_id for h in holdings if h.contractor_household_id}
    )
    cooperatives = _cooperative_codes(
        session, {h.operator_cooperative_id for h in holdings if h.operator_cooperative_id}
    )
    return {
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
    """None when the stored geometry hashes to what its registration entry recorded.

    Otherwise a message saying what does not match: an edit of the stored bytes after
    registration, or an entry that is missing.
    """
    parcel = get_parcel(session=session, dkbm=dkbm)
    body = session.scalar(
        select(LedgerEntry.body)
        .where(
            LedgerEntry.chain_key == f"parcel:{parcel.dkbm}",
            LedgerEntry.kind == "parcel.registered",
        )
        .order_by(LedgerEntry.seq)
        .limit(1)
    )
    if body is None:
        return f"parcel {parcel.dkbm} has no registration entry in the ledger"
    recorded = json.loads(body)["data"]["geometry_sha256"]
    stored = hashlib.sha256(parcel.geometry_wkb).hexdigest()
    if not hmac.compare_digest(recorded, stored):
        return (
            f"stored geometry of {parcel.dkbm} (sha256 {stored[:16]}…) does not match the "
            f"ledger's registration entry (sha256 {recorded[:16]}…)"
        )
    return None


def list_all_active(*, session: Session) -> Sequence[Parcel]:
    """Every active parcel, by DKBM."""
    return session.scalars(
        select(Parcel).where(Parcel.status == ParcelStatus.ACTIVE).order_by(Parcel.dkbm)
    ).all()


# --- imports -------------------------------------------------------------------------------


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
