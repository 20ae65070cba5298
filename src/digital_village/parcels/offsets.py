"""Chinese consumer-map offsets: GCJ-02 (高德, 腾讯) and BD-09 (百度) to and from WGS84.

GCJ-02 is WGS84 plus a smooth, published pseudo-random shift computed on the Krasovsky 1940
ellipsoid; BD-09 adds Baidu's polar shift on top of GCJ-02. Forward formulas are closed-form;
the inverses solve forward(p) = q by fixed-point iteration, which converges because the
shift changes by less than 2 % per degree: a few rounds reach 1e-12° (~0.1 µm).
Pure: numpy and shapely only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal, TypeAlias

import numpy as np
from shapely.geometry.base import BaseGeometry

from digital_village.parcels.projection import Floats, GeometryError, LonLat, apply_xy

MapDatum: TypeAlias = Literal["wgs84", "gcj02", "bd09"]
Shift: TypeAlias = Callable[[Floats, Floats], tuple[Floats, Floats]]

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
        geom = apply_xy(geom, _TO_WGS84[source])
    return geom if target == "wgs84" else apply_xy(geom, _FROM_WGS84[target])
