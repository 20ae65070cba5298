"""Snapping parcels to the 1 cm grid of their Gauss-Krüger zone without breaking them.

Rounding each vertex on its own can fold a valid shape: two edges a few millimetres apart
cross, a thin spike turns into a self-intersection, a tiny ring collapses. So the grid is
applied in steps and the first valid result wins:

1. every vertex rounded to the nearest centimetre (repeated vertices dropped): what almost
   every surveyed field gets, and exactly what earlier versions stored;
2. where that is not valid, GEOS snap-rounding (``shapely.set_precision``, valid output),
   which keeps a valid polygon valid by merging what the grid merges;
3. where even that loses the shape (it is narrower than the grid) or the way back to lon/lat
   is not valid, the shape as it came, unsnapped.

A polygon that was valid before snapping is therefore valid after it. Why the GK grid and not
a 1e-7° grid: cadastral surveys deliver CGCS2000 GK coordinates in metres, so the grid keeps
surveyed vertices (and the official areas computed from them) exact, and it is 1 cm in both
axes. Snapping is idempotent: a snapped shape's vertices lie within nanometres of grid points
(the lon/lat ↔ GK round trip), so rounding them again gives the same points.
Pure: shapely, pyproj and numpy only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely
from numpy.typing import NDArray

from digital_village.parcels.projection import LONLAT_EPSG, Floats, transformer, zone_of

SNAP_GRID_M = 0.01
_POLYGONAL = (3, 6)  # shapely type ids of Polygon and MultiPolygon
_SCALE = 1 / SNAP_GRID_M


def _round(xy: Floats) -> Floats:
    # round(x * 100) / 100 is the double nearest to a whole centimetre: the same every time.
    rounded: Floats = np.round(xy * _SCALE) / _SCALE
    return rounded


def _drop_repeats(geoms: NDArray[Any]) -> NDArray[Any]:
    """Repeated vertices removed; None where a ring shrinks below three distinct points."""
    try:
        result: NDArray[Any] = shapely.remove_repeated_points(geoms)
        return result
    except shapely.errors.GEOSException:
        out = np.empty(len(geoms), dtype=object)
        for index, geom in enumerate(geoms):
            try:
                out[index] = shapely.remove_repeated_points(geom)
            except shapely.errors.GEOSException:
                out[index] = None
        return out


def _usable(geoms: NDArray[Any]) -> NDArray[np.bool_]:
    """Valid, non-empty Polygon or MultiPolygon (None counts as unusable)."""
    present = ~shapely.is_missing(geoms)
    ok: NDArray[np.bool_] = present & np.isin(shapely.get_type_id(geoms), _POLYGONAL)
    ok &= ~shapely.is_empty(geoms) & shapely.is_valid(geoms)
    return ok


def _snap_rounded(projected: Any) -> Any:
    """GEOS snap-rounding of one GK shape; None when it fails or leaves no area."""
    try:
        result = shapely.set_precision(projected, SNAP_GRID_M, mode="valid_output")
    except shapely.errors.GEOSException:  # GEOS refuses input it finds invalid
        return None
    if shapely.get_type_id(result) not in _POLYGONAL or result.is_empty:
        return None
    return shapely.remove_repeated_points(result)


def snap_many(geoms: NDArray[Any], epsg: int) -> NDArray[Any]:
    """Snap lon/lat shapes of one GK zone to its 1 cm grid (see the module's docstring).

    Each result is valid wherever its input was; an invalid input comes back rounded (steps
    2 and 3 apply only to shapes that were valid before).
    """
    geoms = np.asarray(geoms, dtype=object)
    if len(geoms) == 0:
        return geoms
    forward, backward = transformer(LONLAT_EPSG, epsg), transformer(epsg, LONLAT_EPSG)

    def to_gk(xy: Floats) -> Floats:
        return np.column_stack(forward.transform(xy[:, 0], xy[:, 1]))

    def to_lonlat(xy: Floats) -> Floats:
        return np.column_stack(backward.transform(xy[:, 0], xy[:, 1]))

    projected = shapely.transform(geoms, to_gk)
    result = _drop_repeats(shapely.transform(shapely.transform(projected, _round), to_lonlat))
    was_valid = shapely.is_valid(geoms)
    for index in np.flatnonzero(~_usable(result) & was_valid):
        rounded = _snap_rounded(projected[index])
        back = None if rounded is None else shapely.transform(rounded, to_lonlat)
        result[index] = back if back is not None and _usable(np.asarray([back]))[0] else None
    missing = shapely.is_missing(result)
    result[missing] = geoms[missing]  # an invalid input that collapsed, or step 3
    return result


def snap(geom: Any, epsg: int | None = None) -> Any:
    """Snap one lon/lat shape to the 1 cm grid of its GK zone (or the given one)."""
    return snap_many(np.asarray([geom], dtype=object), epsg or zone_of(geom))[0]
