"""Pure geometry of land parcels: validation, areas, CRS transforms and Chinese map offsets.

Coordinates are lon/lat on CGCS2000 (EPSG:4490), treated as equal to WGS84 (DESIGN §3).
Areas are planar in the CGCS2000 3-degree Gauss-Krüger zone of the parcel (EPSG:4534..4554,
central meridians 75E..135E) and cross-checked against the GRS80 geodesic area.
Only shapely 2, pyproj and numpy are imported: no web framework, no ORM, no project module.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any, Literal, TypeAlias

import numpy as np
import shapely
from numpy.typing import NDArray
from pyproj import CRS, Geod, Transformer
from pyproj.exceptions import CRSError
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

LonLat: TypeAlias = tuple[float, float]
Polygonal: TypeAlias = Polygon | MultiPolygon
CrsLike: TypeAlias = int | str | CRS
MapDatum: TypeAlias = Literal["wgs84", "gcj02", "bd09"]
Floats: TypeAlias = NDArray[np.float64]
Shift: TypeAlias = Callable[[Floats, Floats], tuple[Floats, Floats]]

LONLAT_EPSG = 4490
SQUARE_METRES_PER_MU = 10000 / 15
CHINA_LON = (73.0, 136.0)
CHINA_LAT = (3.0, 54.0)
SNAP_GRID_M = 0.01
AREA_AGREEMENT = 0.001
_GEOD = Geod(ellps="GRS80")


class GeometryError(ValueError):
    """Unusable parcel geometry: ``reason`` says why, ``location`` (lon, lat) where if known."""

    def __init__(self, reason: str, location: LonLat | None = None) -> None:
        where = f" at lon {location[0]:.7f}, lat {location[1]:.7f}" if location else ""
        super().__init__(reason + where)
        self.reason = reason
        self.location = location


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


@lru_cache(maxsize=64)
def _crs(crs: CrsLike) -> CRS:
    try:
        return CRS.from_user_input(crs)
    except CRSError as error:
        raise GeometryError(f"unknown CRS {crs!r}: {error}") from None


@lru_cache(maxsize=256)
def _transformer(source: CrsLike, target: CrsLike) -> Transformer:
    # pyproj >= 3.1 gives every thread its own PROJ context, so cached transformers are shareable.
    return Transformer.from_crs(_crs(source), _crs(target), always_xy=True)


def _apply(geom: Any, transform: Shift) -> Any:
    """Run a vectorised (x, y) → (x, y) function over all coordinates of geometries at once."""

    def on_array(xy: Floats) -> Floats:
        x, y = transform(xy[:, 0], xy[:, 1])
        return np.column_stack((x, y))

    return shapely.transform(geom, on_array)


def _reproject(geom: Any, source: CrsLike, target: CrsLike) -> Any:
    transformer = _transformer(source, target)
    result = _apply(geom, lambda x, y: transformer.transform(x, y))
    if not np.isfinite(shapely.get_coordinates(result)).all():
        raise GeometryError(f"coordinates fall outside the area of use of {_crs(source).name}")
    return result


def gk_epsg(lon: float) -> int:
    """EPSG code of the CGCS2000 3° Gauss-Krüger CM zone for a longitude (104.4 → 4544)."""
    zone = min(max(math.floor(lon / 3 + 0.5), 25), 45)  # CM 75E..135E
    return 4534 + zone - 25


def _zone_of(geom: Any) -> int:
    # The centroid of an invalid ring (a bow-tie's lobes cancel) can be anywhere: use the bbox.
    if shapely.is_valid(geom):
        return gk_epsg(geom.centroid.x)
    return gk_epsg((geom.bounds[0] + geom.bounds[2]) / 2)


def is_projected(crs: CrsLike) -> bool:
    """Whether a CRS has projected (metre) coordinates; GeometryError if it is unknown."""
    return bool(_crs(crs).is_projected)


def to_lonlat(geom: BaseGeometry, source_crs: CrsLike) -> BaseGeometry:
    """Transform a geometry from any CRS (EPSG code, WKT or PROJ string) to lon/lat."""
    return _reproject(geom, source_crs, LONLAT_EPSG)


def to_gk(geom: BaseGeometry, epsg: int | None = None) -> BaseGeometry:
    """Project a lon/lat geometry to its GK zone (or the given EPSG) in metres."""
    return _reproject(geom, LONLAT_EPSG, epsg or _zone_of(geom))


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
    crs = _crs(source_crs)
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
    epsg = _zone_of(geom)
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


def snap(geom: BaseGeometry, epsg: int | None = None) -> BaseGeometry:
    """Snap vertices to a 1 cm grid of the parcel's GK zone, then drop repeated vertices.

    Why the GK grid and not a 1e-7° grid: cadastral surveys deliver CGCS2000 GK coordinates in
    metres, so a GK grid keeps surveyed vertices (and the official areas computed from them)
    exact, and it is 1 cm in both axes. Snapping is idempotent because the lon/lat ↔ GK round
    trip is accurate to nanometres, far inside the half-centimetre rounding margin. A vertex
    moves at most √2/2 cm.
    """
    zone = epsg or _zone_of(geom)
    forward, backward = _transformer(LONLAT_EPSG, zone), _transformer(zone, LONLAT_EPSG)

    def to_grid(lon: Floats, lat: Floats) -> tuple[Floats, Floats]:
        x, y = forward.transform(lon, lat)
        # round(x * 100) / 100 is the double nearest to a whole centimetre: the same every time.
        scale = 1 / SNAP_GRID_M
        return backward.transform(np.round(x * scale) / scale, np.round(y * scale) / scale)

    snapped = _apply(geom, to_grid)
    try:
        return shapely.remove_repeated_points(snapped)
    except shapely.errors.GEOSException:  # a ring shrank below 3 distinct points
        first = shapely.get_coordinates(geom)[0]
        raise GeometryError(
            "the shape collapses on the 1 cm grid", (float(first[0]), float(first[1]))
        ) from None


def orient(geom: Polygonal) -> Polygonal:
    """Orient rings as RFC 7946 asks: exterior counter-clockwise, holes clockwise."""
    return shapely.orient_polygons(geom, exterior_cw=False)


def projected_area_m2(geom: BaseGeometry, crs: CrsLike) -> float:
    """Planar area of a geometry already in a projected metric CRS; geographic CRS is an error."""
    found = _crs(crs)
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


def measure(geom: Polygonal, epsg: int | None = None) -> AreaMeasure:
    """Area of a lon/lat polygon in its GK zone (m², 亩, ha) and on the GRS80 ellipsoid."""
    epsg = epsg or _zone_of(geom)
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
        epsg = _zone_of(candidate)
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


# --- Chinese map offsets -------------------------------------------------------------------
# GCJ-02 is WGS84 plus a smooth, published pseudo-random shift computed on the Krasovsky 1940
# ellipsoid; BD-09 adds Baidu's polar shift on top of GCJ-02. Forward formulas are closed-form;
# the inverses solve forward(p) = q by fixed-point iteration, which converges because the
# shift changes by less than 2 % per degree: a few rounds reach 1e-12° (~0.1 µm).
_KRASOVSKY_A = 6378245.0
_KRASOVSKY_EE = 0.00669342162296594323
_BD_FACTOR = math.pi * 3000 / 180
_INVERSE_TOLERANCE_DEG = 1e-12


def _gcj_shift(x: Floats, y: Floats) -> tuple[Floats, Floats]:
    wave = (20 * np.sin(6 * np.pi * x) + 20 * np.sin(2 * np.pi * x)) * 2 / 3
    dlat = -100 + 2 * x + 3 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x)) + wave
    dlat += (20 * np.sin(np.pi * y) + 40 * np.sin(np.pi * y / 3)) * 2 / 3
    dlat += (160 * np.sin(np.pi * y / 12) + 320 * np.sin(np.pi * y / 30)) * 2 / 3
    dlon = 300 + x + 2 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x)) + wave
    dlon += (20 * np.sin(np.pi * x) + 40 * np.sin(np.pi * x / 3)) * 2 / 3
    dlon += (150 * np.sin(np.pi * x / 12) + 300 * np.sin(np.pi * x / 30)) * 2 / 3
    return dlon, dlat


def _wgs84_to_gcj02(lon: Floats, lat: Floats) -> tuple[Floats, Floats]:
    dlon, dlat = _gcj_shift(lon - 105.0, lat - 35.0)
    phi = np.radians(lat)
    w = 1 - _KRASOVSKY_EE * np.sin(phi) ** 2
    meridian = _KRASOVSKY_A * (1 - _KRASOVSKY_EE) / (w * np.sqrt(w))
    parallel = _KRASOVSKY_A / np.sqrt(w) * np.cos(phi)
    # Maps outside the rough China box (the bounds every public implementation uses) are WGS84.
    china = (lon >= 72.004) & (lon <= 137.8347) & (lat >= 0.8293) & (lat <= 55.8271)
    return (
        np.where(china, lon + np.degrees(dlon / parallel), lon),
        np.where(china, lat + np.degrees(dlat / meridian), lat),
    )


def _gcj02_to_bd09(lon: Floats, lat: Floats) -> tuple[Floats, Floats]:
    radius = np.hypot(lon, lat) + 0.00002 * np.sin(lat * _BD_FACTOR)
    theta = np.arctan2(lat, lon) + 0.000003 * np.cos(lon * _BD_FACTOR)
    return radius * np.cos(theta) + 0.0065, radius * np.sin(theta) + 0.006


def _wgs84_to_bd09(lon: Floats, lat: Floats) -> tuple[Floats, Floats]:
    return _gcj02_to_bd09(*_wgs84_to_gcj02(lon, lat))


def _inverse(forward: Shift) -> Shift:
    def solve(lon: Floats, lat: Floats) -> tuple[Floats, Floats]:
        guess_lon, guess_lat = lon.copy(), lat.copy()
        if lon.size == 0:
            return guess_lon, guess_lat
        for _ in range(30):
            out_lon, out_lat = forward(guess_lon, guess_lat)
            error_lon, error_lat = out_lon - lon, out_lat - lat
            guess_lon, guess_lat = guess_lon - error_lon, guess_lat - error_lat
            if max(np.abs(error_lon).max(), np.abs(error_lat).max()) < _INVERSE_TOLERANCE_DEG:
                return guess_lon, guess_lat
        raise GeometryError("map offset inversion did not converge (point outside China?)")

    return solve


_TO_WGS84: dict[MapDatum, Shift] = {
    "gcj02": _inverse(_wgs84_to_gcj02),
    "bd09": _inverse(_wgs84_to_bd09),
}
_FROM_WGS84: dict[MapDatum, Shift] = {"gcj02": _wgs84_to_gcj02, "bd09": _wgs84_to_bd09}


def _point_shift(shift: Shift, doc: str) -> Callable[[float, float], LonLat]:
    def convert(lon: float, lat: float) -> LonLat:
        out_lon, out_lat = shift(np.array([lon], dtype=np.float64), np.array([lat], np.float64))
        return float(out_lon[0]), float(out_lat[0])

    convert.__doc__ = doc
    return convert


wgs84_to_gcj02 = _point_shift(
    _wgs84_to_gcj02, "WGS84 → GCJ-02 (高德, 腾讯); unchanged outside China."
)
gcj02_to_wgs84 = _point_shift(_TO_WGS84["gcj02"], "GCJ-02 → WGS84, iterated to ~1e-12°.")
wgs84_to_bd09 = _point_shift(_wgs84_to_bd09, "WGS84 → BD-09 (百度).")
bd09_to_wgs84 = _point_shift(_TO_WGS84["bd09"], "BD-09 → WGS84, iterated to ~1e-12°.")


def shift_geometry(geom: BaseGeometry, *, source: MapDatum, target: MapDatum) -> BaseGeometry:
    """Move every vertex between WGS84, GCJ-02 and BD-09 lon/lat (via WGS84 when needed)."""
    if source != "wgs84":
        geom = _apply(geom, _TO_WGS84[source])
    return geom if target == "wgs84" else _apply(geom, _FROM_WGS84[target])


def prepare_parcel(
    geom: BaseGeometry,
    *,
    source_crs: CrsLike | None = None,
    datum: MapDatum = "wgs84",
    allow_repair: bool = False,
) -> ParcelShape:
    """Validate, convert, snap, orient and measure a parcel geometry in one go.

    ``source_crs`` transforms from another CRS; ``datum`` undoes a consumer-map offset.
    Invalid geometry raises GeometryError with the GEOS reason and location, unless
    ``allow_repair`` is set: then the result's ``repaired`` says what the repair did.
    """
    polygon = require_polygonal(geom)
    warnings: list[str] = []
    if shapely.has_z(polygon):
        polygon = shapely.force_2d(polygon)
        warnings.append("Z coordinates dropped")
    polygon = from_source(polygon, source_crs=source_crs, datum=datum)
    epsg = _zone_of(polygon)
    polygon = snap(polygon, epsg)
    report = None
    if not shapely.is_valid(polygon) and allow_repair:
        polygon, report = repair(polygon)
        polygon = snap(polygon, epsg)
        warnings.append(report.summary)
    check_valid(polygon)
    polygon = orient(require_polygonal(polygon))
    area = measure(polygon, epsg)  # the zone it was snapped in, even if snapping moved the centroid
    if abs(area.relative_difference) > AREA_AGREEMENT:
        raise GeometryError(
            f"GK area {area.area_m2:.1f} m² and geodesic area {area.geodesic_m2:.1f} m² differ by "
            f"{area.relative_difference:.3%}; the shape is too large for one 3° zone"
        )
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
