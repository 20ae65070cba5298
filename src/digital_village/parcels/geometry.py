"""Pure geometry of land parcels: validation, snapping, areas and the checks of an import.

Coordinates are lon/lat on CGCS2000 (EPSG:4490), treated as equal to WGS84 (docs/DESIGN.md §3).
Areas are planar in the CGCS2000 3-degree Gauss-Krüger zone of the parcel (EPSG:4534..4554,
central meridians 75E..135E) and cross-checked against the GRS80 geodesic area.
Only shapely 2, pyproj and numpy are imported: no web framework, no ORM, no project module.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, TypeAlias

import numpy as np
import shapely
from numpy.typing import NDArray
from pyproj import Geod
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from digital_village.parcels.offsets import (
    MapDatum,
    bd09_to_wgs84,
    gcj02_to_wgs84,
    shift_geometry,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)
from digital_village.parcels.projection import (
    LONLAT_EPSG,
    CrsLike,
    Floats,
    GeometryError,
    LonLat,
    crs_of,
    gk_epsg,
    is_projected,
    to_gk,
    to_lonlat,
    zone_of,
)
from digital_village.parcels.snapping import SNAP_GRID_M, snap, snap_many

__all__ = [
    "LONLAT_EPSG",
    "SNAP_GRID_M",
    "AreaMeasure",
    "CrsLike",
    "GeometryError",
    "LonLat",
    "MapDatum",
    "ParcelShape",
    "Polygonal",
    "Repair",
    "SliverCheck",
    "bd09_to_wgs84",
    "check_valid",
    "crs_of",
    "fingerprint",
    "from_source",
    "gcj02_to_wgs84",
    "gk_epsg",
    "is_projected",
    "measure",
    "prepare_parcel",
    "repair",
    "require_polygonal",
    "shift_geometry",
    "snap",
    "snap_many",
    "to_gk",
    "to_lonlat",
    "wgs84_to_bd09",
    "wgs84_to_gcj02",
]

Polygonal: TypeAlias = Polygon | MultiPolygon

SQUARE_METRES_PER_MU = 10000 / 15
CHINA_LON = (73.0, 136.0)
CHINA_LAT = (3.0, 54.0)
AREA_AGREEMENT = 0.001
AREA_FLOOR_M2 = 0.01
_GEOD = Geod(ellps="GRS80")


@dataclass(frozen=True, slots=True)
class AreaMeasure:
    """Planar area in a GK zone (m², 亩, ha) with the geodesic cross-check."""

    area_m2: float
    area_mu: float
    area_ha: float
    geodesic_m2: float
    epsg: int

    @property
    def relative_difference(self) -> float:
        """(planar − geodesic) / geodesic: the GK scale error, < 0.1 % inside a 3° zone."""
        return (self.area_m2 - self.geodesic_m2) / self.geodesic_m2


@dataclass(frozen=True, slots=True)
class Repair:
    """What shapely.make_valid did to an invalid parcel."""

    reason: str
    location: LonLat | None
    area_before_m2: float  # GEOS shoelace area of the invalid rings: crossing lobes cancel out
    area_after_m2: float
    parts_before: int
    parts_after: int
    dropped: tuple[str, ...]  # types of non-polygonal pieces thrown away

    @property
    def area_change_m2(self) -> float:
        """Area after minus area before."""
        return self.area_after_m2 - self.area_before_m2

    @property
    def summary(self) -> str:
        """One line for an import report: what was wrong, where, and what the repair made."""
        where = (
            f" at lon {self.location[0]:.7f}, lat {self.location[1]:.7f}" if self.location else ""
        )
        dropped = f"; dropped {', '.join(self.dropped)}" if self.dropped else ""
        return (
            f"repaired {self.reason}{where}: {self.parts_before} part(s) became "
            f"{self.parts_after}, {self.area_after_m2:.2f} m² (the invalid shape measured "
            f"{self.area_before_m2:.2f} m²){dropped}"
        )


@dataclass(frozen=True, slots=True)
class SliverCheck:
    """Outcome of the sliver test; ``reason`` is None when the shape is fine."""

    is_sliver: bool
    reason: str | None
    compactness: float  # Polsby-Popper 4πA/P²: 1 for a circle, π/4 for a square
    area_m2: float


@dataclass(frozen=True, slots=True)
class ParcelShape(AreaMeasure):
    """A parcel ready to store: validated, snapped, oriented lon/lat geometry and its measures."""

    geometry: Polygonal
    fingerprint: str
    sliver: SliverCheck
    repaired: Repair | None = None
    warnings: tuple[str, ...] = ()


def require_polygonal(geom: BaseGeometry) -> Polygonal:
    """Return the geometry if it is a non-empty Polygon or MultiPolygon, else raise."""
    if not isinstance(geom, Polygon | MultiPolygon):
        kind = getattr(geom, "geom_type", type(geom).__name__)
        raise GeometryError(f"a parcel must be a Polygon or MultiPolygon, got {kind}")
    if geom.is_empty:
        raise GeometryError(f"the {geom.geom_type} is empty")
    return geom


def _inside_china(lon: Floats, lat: Floats) -> NDArray[np.bool_]:
    in_lon = (lon >= CHINA_LON[0]) & (lon <= CHINA_LON[1])
    return in_lon & (lat >= CHINA_LAT[0]) & (lat <= CHINA_LAT[1])


def check_china_lonlat(geom: BaseGeometry) -> None:
    """Raise unless every vertex is a plausible lon/lat inside China (lon 73..136, lat 3..54)."""
    xy = shapely.get_coordinates(geom)
    if not np.isfinite(xy).all():
        raise GeometryError("coordinates contain NaN or infinity")
    ok = _inside_china(xy[:, 0], xy[:, 1])
    if ok.all():
        return
    x, y = (float(v) for v in xy[int(np.argmin(ok))])
    if _inside_china(xy[:, 1], xy[:, 0]).all():
        raise GeometryError(
            f"latitude and longitude look swapped (a vertex came as ({x:g}, {y:g})): "
            "give longitude first; read the other way round it lies",
            (y, x),
        )
    if abs(x) > 180 or abs(y) > 90:
        prefixed = _zone_prefix_crs(x)
        example = f"EPSG:{prefixed[0]} ({prefixed[1]})" if prefixed else "EPSG:4544"
        raise GeometryError(
            f"({x:.2f}, {y:.2f}) is not lon/lat but looks projected: name its CRS, e.g. {example}"
        )
    raise GeometryError(
        f"outside China: lon must be {CHINA_LON[0]:g}..{CHINA_LON[1]:g}, "
        f"lat {CHINA_LAT[0]:g}..{CHINA_LAT[1]:g}",
        (x, y),
    )


def _zone_prefix_crs(easting: float) -> tuple[int, str] | None:
    """The CGCS2000 GK zone CRS whose zone number leads an easting such as 35 440 000 m."""
    zone = int(easting // 1_000_000)
    if 25 <= zone <= 45:
        return 4513 + zone - 25, f"CGCS2000 / 3-degree Gauss-Kruger zone {zone}"
    if 13 <= zone <= 23:
        return 4491 + zone - 13, f"CGCS2000 / Gauss-Kruger zone {zone} (6-degree)"
    return None


def _explain_crs(raw: BaseGeometry, source_crs: CrsLike, error: GeometryError) -> GeometryError:
    """Say what is likely wrong when coordinates read through a projected CRS make no sense."""
    crs = crs_of(source_crs)
    xy = shapely.get_coordinates(raw)
    if not crs.is_projected or len(xy) == 0 or not np.isfinite(xy).all():
        return error
    x, y = float(xy[0, 0]), float(xy[0, 1])
    if _inside_china(xy[:, 0], xy[:, 1]).all():
        return GeometryError(
            f"the coordinates look like lon/lat (a vertex at {x:g}, {y:g}), not metres of "
            f"{crs.name}: give no CRS, or the one they are really in"
        )
    prefixed = _zone_prefix_crs(x)
    if prefixed is not None and crs.to_epsg() != prefixed[0]:
        return GeometryError(
            f"easting {x:.0f} begins with a zone number: the coordinates look like "
            f"{prefixed[1]} (EPSG:{prefixed[0]}), not {crs.name}"
        )
    return GeometryError(
        f"{error.reason} (after reading the coordinates as {crs.name}: is that their CRS?)",
        error.location,
    )


def from_source(
    geom: BaseGeometry, *, source_crs: CrsLike | None = None, datum: MapDatum = "wgs84"
) -> BaseGeometry:
    """Lon/lat (WGS84) from another CRS and/or a consumer-map datum, checked to be in China.

    A GeometryError says what went wrong in the clerk's terms: swapped axes, metres without a
    CRS, lon/lat given a projected CRS, a zone-prefixed easting, or a point outside China.
    """
    raw = geom
    try:
        if source_crs is not None:
            geom = to_lonlat(geom, source_crs)
        geom = shift_geometry(geom, source=datum, target="wgs84")
        check_china_lonlat(geom)
    except GeometryError as error:
        if source_crs is None:
            raise
        raise _explain_crs(raw, source_crs, error) from None
    return geom


_LOCATION = re.compile(r"^(?P<reason>[^\[]*)\[(?P<x>\S+) (?P<y>\S+)\]")


def _invalidity(geom: BaseGeometry) -> tuple[str, LonLat | None] | None:
    if shapely.is_valid(geom):
        return None
    text = shapely.is_valid_reason(geom)
    found = _LOCATION.match(text)
    if found is None:
        return text, None
    return found["reason"].strip(), (float(found["x"]), float(found["y"]))


def check_valid(geom: BaseGeometry) -> None:
    """Raise GeometryError with the GEOS reason and location if the geometry is invalid."""
    problem = _invalidity(geom)
    if problem is not None:
        raise GeometryError(f"invalid geometry: {problem[0]}", problem[1])


def repair(geom: Polygonal) -> tuple[Polygonal, Repair]:
    """Make an invalid polygon valid (GEOS 'structure' method), keeping only polygonal parts."""
    problem = _invalidity(geom)
    if problem is None:
        raise GeometryError("the geometry is valid; nothing to repair")
    reason, location = problem
    fixed = shapely.make_valid(geom, method="structure", keep_collapsed=False)
    parts = shapely.get_parts(shapely.get_parts(fixed))  # flattens collections of multis
    polygons = [part for part in parts if isinstance(part, Polygon) and not part.is_empty]
    dropped = tuple(sorted({part.geom_type for part in parts if not isinstance(part, Polygon)}))
    if not polygons:
        raise GeometryError(f"repair left no area ({reason})", location)
    result = polygons[0] if len(polygons) == 1 else MultiPolygon(polygons)
    epsg = zone_of(geom)
    report = Repair(
        reason=reason,
        location=location,
        area_before_m2=float(to_gk(geom, epsg).area),
        area_after_m2=float(to_gk(result, epsg).area),
        parts_before=len(shapely.get_parts(geom)),
        parts_after=len(polygons),
        dropped=dropped,
    )
    return result, report


def orient(geom: Polygonal) -> Polygonal:
    """Orient rings as RFC 7946 asks: exterior counter-clockwise, holes clockwise."""
    return shapely.orient_polygons(geom, exterior_cw=False)


def projected_area_m2(geom: BaseGeometry, crs: CrsLike) -> float:
    """Planar area of a geometry already in a projected metric CRS; geographic CRS is an error."""
    found = crs_of(crs)
    if found.is_geographic:
        raise GeometryError(
            f"area requested on geographic CRS {found.name}: it would be in square degrees; "
            "project to a Gauss-Krüger zone (e.g. EPSG:4544) first"
        )
    unit = found.axis_info[0].unit_name if found.axis_info else ""
    if unit not in ("metre", "meter"):
        raise GeometryError(f"CRS {found.name} has axis unit {unit!r}, not metres")
    return float(shapely.area(geom))


def geodesic_area_m2(geom: Polygonal) -> float:
    """Area on the GRS80 ellipsoid, independent of ring orientation."""
    total = 0.0
    for polygon in shapely.get_parts(geom):
        rings = [polygon.exterior, *polygon.interiors]
        areas = [abs(_GEOD.polygon_area_perimeter(*ring.xy)[0]) for ring in rings]
        total += areas[0] - sum(areas[1:])
    return total


def areas_disagree(planar_m2: float, geodesic_m2: float) -> bool:
    """Whether the GK and geodesic areas differ by more than 0.1 % (and 1 dm²: below that the
    geodesic sum is rounding noise)."""
    difference = abs(planar_m2 - geodesic_m2)
    return difference > AREA_AGREEMENT * geodesic_m2 and difference > AREA_FLOOR_M2


def measure(geom: Polygonal, epsg: int | None = None) -> AreaMeasure:
    """Area of a lon/lat polygon in its GK zone (m², 亩, ha) and on the GRS80 ellipsoid."""
    epsg = epsg or zone_of(geom)
    area = projected_area_m2(to_gk(geom, epsg), epsg)
    return AreaMeasure(
        area_m2=area,
        area_mu=area / SQUARE_METRES_PER_MU,
        area_ha=area / 10_000,
        geodesic_m2=geodesic_area_m2(geom),
        epsg=epsg,
    )


def fingerprint(geom: BaseGeometry) -> str:
    """SHA-256 (hex) of the normalized 2D WKB, to recognise a re-imported shape.

    Normalizing makes it independent of start vertex, orientation and part order; snap first so
    that sub-centimetre noise does not change it.
    """
    wkb = shapely.to_wkb(shapely.normalize(geom), output_dimension=2, byte_order=1)
    return hashlib.sha256(wkb).hexdigest()


def check_sliver(
    geom: Polygonal,
    *,
    min_area_m2: float = 1.0,
    min_compactness: float = 0.01,
    min_width_m: float = 1.0,
) -> SliverCheck:
    """Flag tiny or thin shapes: area, Polsby-Popper compactness, nowhere wider than a width."""
    projected = to_gk(geom)
    area, perimeter = float(projected.area), float(projected.length)
    compactness = 4 * math.pi * area / perimeter**2 if perimeter > 0 else 0.0
    reason = None
    if area < min_area_m2:
        reason = f"tiny: {area:.2f} m² is below {min_area_m2:g} m²"
    elif compactness < min_compactness:
        reason = f"thin: Polsby-Popper compactness {compactness:.4f} is below {min_compactness:g}"
    elif projected.buffer(-min_width_m / 2).is_empty:
        reason = f"thin: nowhere wider than {min_width_m:g} m"
    return SliverCheck(reason is not None, reason, compactness, area)


def overlap_areas_m2(candidate: Polygonal, others: Sequence[BaseGeometry]) -> Floats:
    """Area in m² that ``candidate`` shares with each of ``others`` (0 for disjoint ones).

    An STRtree query (vectorised, prepared predicate) finds the shapes that touch the candidate
    in lon/lat; only those are projected, in one PROJ call, and intersected in the GK zone.
    """
    items = np.asarray(others, dtype=object)
    areas = np.zeros(len(items), dtype=np.float64)
    hits = shapely.STRtree(items).query(candidate, predicate="intersects")
    if len(hits):
        epsg = zone_of(candidate)
        shared = shapely.intersection(to_gk(candidate, epsg), to_gk(items[hits], epsg))
        areas[hits] = shapely.area(shared)
    return areas


def distances_to_bounds_m(
    geoms: Sequence[BaseGeometry], bounds: tuple[float, float, float, float]
) -> Floats:
    """Geodesic metres from each shape's centroid to a lon/lat box (0 inside it)."""
    centres = shapely.centroid(np.asarray(geoms, dtype=object))
    lon, lat = shapely.get_x(centres), shapely.get_y(centres)
    near_lon = np.clip(lon, bounds[0], bounds[2])
    near_lat = np.clip(lat, bounds[1], bounds[3])
    distances: Floats = np.asarray(_GEOD.inv(lon, lat, near_lon, near_lat)[2], dtype=np.float64)
    return distances


def find_overlaps(
    candidate: Polygonal, others: Mapping[str, BaseGeometry], *, tolerance_m2: float = 1.0
) -> dict[str, float]:
    """Codes of parcels sharing over ``tolerance_m2`` with the candidate → m², largest first."""
    areas = overlap_areas_m2(candidate, list(others.values()))
    found = [(code, float(a)) for code, a in zip(others, areas, strict=True) if a > tolerance_m2]
    return dict(sorted(found, key=lambda item: -item[1]))


def _file_location(
    location: LonLat | None, source_crs: CrsLike | None, datum: MapDatum
) -> LonLat | None:
    """A place given in the file's coordinates, as lon/lat (None if it cannot be converted)."""
    if location is None:
        return None
    try:
        point = from_source(shapely.Point(location), source_crs=source_crs, datum=datum)
    except GeometryError:
        return None
    return float(point.x), float(point.y)


def _fix_own_fold(polygon: Any) -> Polygonal:
    """A shape valid in the file that the conversion to lon/lat folded (nanometre-close
    vertices): GEOS repairs it, and the file is not blamed."""
    fixed, _ = repair(polygon)
    return fixed


def prepare_parcel(
    geom: BaseGeometry,
    *,
    source_crs: CrsLike | None = None,
    datum: MapDatum = "wgs84",
    allow_repair: bool = False,
) -> ParcelShape:
    """Validate, convert, snap, orient and measure a parcel geometry in one go.

    ``source_crs`` transforms from another CRS; ``datum`` undoes a consumer-map offset.
    Validity is judged on the shape as the file has it: an invalid one raises GeometryError
    with the GEOS reason and its place ("invalid in the file: …"), unless ``allow_repair`` is
    set, when the result's ``repaired`` says what the repair did. A shape valid in the file is
    never refused for what the conversion or the 1 cm grid would do to it (see ``snapping``).
    """
    polygon = require_polygonal(geom)
    warnings: list[str] = []
    if shapely.has_z(polygon):
        polygon = shapely.force_2d(polygon)
        warnings.append("Z coordinates dropped")
    in_file = _invalidity(polygon)
    polygon = from_source(polygon, source_crs=source_crs, datum=datum)
    report = None
    if in_file is not None and not allow_repair:
        where = _file_location(in_file[1], source_crs, datum)
        raise GeometryError(f"invalid geometry in the file: {in_file[0]}", where)
    epsg = zone_of(polygon)
    if in_file is not None and not shapely.is_valid(polygon):
        polygon, report = repair(polygon)
    polygon = snap(polygon, epsg)
    if not shapely.is_valid(polygon):
        polygon = _fix_own_fold(polygon)
    polygon = orient(require_polygonal(polygon))
    area = measure(polygon, epsg)  # the zone it was snapped in, even if snapping moved the centroid
    if areas_disagree(area.area_m2, area.geodesic_m2):
        raise GeometryError(
            f"GK area {area.area_m2:.1f} m² and geodesic area {area.geodesic_m2:.1f} m² differ by "
            f"{area.relative_difference:.3%}; the shape is too large for one 3° zone"
        )
    if report is not None:  # what the stored shape measures, after the grid
        report = replace(report, area_after_m2=area.area_m2)
        warnings.append(report.summary)
    sliver = check_sliver(polygon)
    if sliver.reason:
        warnings.append(f"sliver: {sliver.reason}")
    return ParcelShape(
        **asdict(area),
        geometry=polygon,
        fingerprint=fingerprint(polygon),
        sliver=sliver,
        repaired=report,
        warnings=tuple(warnings),
    )
