"""The harvest panel's village map: the parcels members hold that day, to pick by a tap.

Drawn here rather than with ``web/drawing.parcel_map`` because these shapes are controls: each
is a path carrying its DKBM (``data-pick``), which the console's script ties to the parcel's box
in the list (a tap on either ticks both). All shapes are read and projected at once (shapely and
pyproj over arrays); no labels are drawn (a village's fields are too many to label legibly on a
phone), each path's title names its parcel.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from html import escape
from typing import Final

import shapely

from digital_village.parcels import projection
from digital_village.parcels import service as parcels

WIDTH: Final = 320.0
PADDING: Final = 6.0


def _number(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def harvest_map(rows: Sequence[parcels.HeldParcel], chosen: set[str]) -> str:
    """An inline SVG of the parcels (lon/lat WKB in ``rows``), the chosen ones marked."""
    drawn = tuple((row.dkbm, row.shape_wkb) for row in rows if row.shape_wkb)
    if not drawn:
        return ""
    opening, paths = _drawn(drawn)
    parts = [opening]
    for (dkbm, _), path in zip(drawn, paths, strict=True):
        mark = " data-chosen" if dkbm in chosen else ""
        code = escape(dkbm)
        parts.append(
            f'<path d="{path}" fill-rule="evenodd" data-pick="{code}"{mark}>'
            f"<title>{code}</title></path>"
        )
    parts.append("</svg>")
    return "".join(parts)


@functools.lru_cache(maxsize=32)
def _drawn(drawn: tuple[tuple[str, bytes], ...]) -> tuple[str, tuple[str, ...]]:
    """The map's opening tag and each parcel's path, kept while the same shapes come back (a
    village's parcels change far less often than its harvest form is opened)."""
    lonlat = shapely.from_wkb([shape for _, shape in drawn])
    first = lonlat[0]
    epsg = projection.gk_epsg((first.bounds[0] + first.bounds[2]) / 2)
    shapes = projection.reproject(lonlat, projection.LONLAT_EPSG, epsg)
    min_x, min_y, max_x, max_y = shapely.total_bounds(shapes)
    scale = (WIDTH - 2 * PADDING) / max(max_x - min_x, (max_y - min_y) / 0.9, 1.0)
    height = (max_y - min_y) * scale + 2 * PADDING
    opening = (
        f'<svg class="map pickmap" viewBox="0 0 {_number(WIDTH)} {_number(height)}" role="group"'
        ' xmlns="http://www.w3.org/2000/svg">'
    )
    paths = []
    for shape in shapes:
        rings = []
        for polygon in getattr(shape, "geoms", [shape]):
            for ring in [polygon.exterior, *polygon.interiors]:
                coords = shapely.get_coordinates(ring)[:-1]
                xs = PADDING + (coords[:, 0] - min_x) * scale
                ys = PADDING + (max_y - coords[:, 1]) * scale
                points = zip(xs, ys, strict=True)
                rings.append("M" + " L".join(f"{_number(x)} {_number(y)}" for x, y in points) + "Z")
        paths.append("".join(rings))
    return opening, tuple(paths)
