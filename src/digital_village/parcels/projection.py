"""CRS handling shared by the parcel geometry modules: CRS look-up, cached transformers,
Gauss-Krüger zones and the error every geometry check raises.

Pure: pyproj, shapely and numpy only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from typing import Any, TypeAlias

import numpy as np
import shapely
from numpy.typing import NDArray
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError
from shapely.geometry.base import BaseGeometry

LonLat: TypeAlias = tuple[float, float]
CrsLike: TypeAlias = int | str | CRS
Floats: TypeAlias = NDArray[np.float64]
XYFunction: TypeAlias = Callable[[Floats, Floats], tuple[Floats, Floats]]

LONLAT_EPSG = 4490


class GeometryError(ValueError):
    """Unusable parcel geometry: ``reason`` says why, ``location`` (lon, lat) where if known."""

    def __init__(self, reason: str, location: LonLat | None = None) -> None:
        where = f" at lon {location[0]:.7f}, lat {location[1]:.7f}" if location else ""
        super().__init__(reason + where)
        self.reason = reason
        self.location = location


@lru_cache(maxsize=64)
def crs_of(crs: CrsLike) -> CRS:
    """The pyproj CRS for an EPSG code, WKT or PROJ string; GeometryError if unknown."""
    try:
        return CRS.from_user_input(crs)
    except CRSError as error:
        raise GeometryError(f"unknown CRS {crs!r}: {error}") from None


@lru_cache(maxsize=256)
def transformer(source: CrsLike, target: CrsLike) -> Transformer:
    """A cached lon-first transformer (pyproj >= 3.1 gives each thread its own PROJ context)."""
    return Transformer.from_crs(crs_of(source), crs_of(target), always_xy=True)


def apply_xy(geom: Any, function: XYFunction) -> Any:
    """Run a vectorised (x, y) → (x, y) function over all coordinates of geometries at once."""

    def on_array(xy: Floats) -> Floats:
        x, y = function(xy[:, 0], xy[:, 1])
        return np.column_stack((x, y))

    return shapely.transform(geom, on_array)


def reproject(geom: Any, source: CrsLike, target: CrsLike) -> Any:
    """Geometries (one or an array) from one CRS to another; GeometryError off its area."""
    found = transformer(source, target)
    result = apply_xy(geom, lambda x, y: found.transform(x, y))
    if not np.isfinite(shapely.get_coordinates(result)).all():
        raise GeometryError(f"coordinates fall outside the area of use of {crs_of(source).name}")
    return result


def gk_epsg(lon: float) -> int:
    """EPSG code of the CGCS2000 3° Gauss-Krüger CM zone for a longitude (104.4 → 4544)."""
    zone = min(max(math.floor(lon / 3 + 0.5), 25), 45)  # CM 75E..135E
    return 4534 + zone - 25


def zone_of(geom: Any) -> int:
    """The GK zone of a lon/lat shape: by its centroid, or its bbox centre when invalid."""
    # The centroid of an invalid ring (a bow-tie's lobes cancel) can be anywhere: use the bbox.
    if shapely.is_valid(geom):
        return gk_epsg(geom.centroid.x)
    return gk_epsg((geom.bounds[0] + geom.bounds[2]) / 2)


def is_projected(crs: CrsLike) -> bool:
    """Whether a CRS has projected (metre) coordinates; GeometryError if it is unknown."""
    return bool(crs_of(crs).is_projected)


def to_lonlat(geom: BaseGeometry, source_crs: CrsLike) -> BaseGeometry:
    """Transform a geometry from any CRS (EPSG code, WKT or PROJ string) to lon/lat."""
    return reproject(geom, source_crs, LONLAT_EPSG)


def to_gk(geom: BaseGeometry, epsg: int | None = None) -> BaseGeometry:
    """Project a lon/lat geometry to its GK zone (or the given EPSG) in metres."""
    return reproject(geom, LONLAT_EPSG, epsg or zone_of(geom))
