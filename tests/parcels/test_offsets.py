"""GCJ-02 and BD-09 offsets against published reference points, and their round trips."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Geod
from shapely.geometry import Point, Polygon

from digital_village.parcels.geometry import (
    MapDatum,
    bd09_to_wgs84,
    gcj02_to_wgs84,
    prepare_parcel,
    shift_geometry,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)

DEYANG = (104.40, 31.13)
GEOD = Geod(ellps="GRS80")


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    return float(GEOD.inv(a[0], a[1], b[0], b[1])[2])


# googollee/eviltransform, python/test.py (TESTS): (wgs lat, wgs lng, gcj lat, gcj lng).
EVILTRANSFORM = [
    (31.1774276, 121.5272106, 31.17530398364597, 121.531541859215),
    (22.543847, 113.912316, 22.540796131694766, 113.9171764808363),
    (39.911954, 116.377817, 39.91334545536069, 116.38404722455657),
]


@pytest.mark.parametrize(("wgs_lat", "wgs_lon", "gcj_lat", "gcj_lon"), EVILTRANSFORM)
def test_gcj02_matches_eviltransform(
    wgs_lat: float, wgs_lon: float, gcj_lat: float, gcj_lon: float
) -> None:
    assert wgs84_to_gcj02(wgs_lon, wgs_lat) == pytest.approx((gcj_lon, gcj_lat), abs=1e-9)
    assert distance_m(gcj02_to_wgs84(gcj_lon, gcj_lat), (wgs_lon, wgs_lat)) < 1e-4


def test_wandergis_coordtransform_reference() -> None:
    # wandergis/coordtransform, test/app.js, all on (116.404, 39.915). Its inverses are the
    # one-step approximations, so ours (exact to ~1e-12°) differ from them by centimetres.
    here = (116.404, 39.915)
    assert wgs84_to_gcj02(*here) == pytest.approx(
        (116.41024449916938, 39.91640428150164), abs=1e-12
    )
    to_bd = shift_geometry(Point(here), source="gcj02", target="bd09")
    assert (to_bd.x, to_bd.y) == pytest.approx((116.41036949371029, 39.92133699351021), abs=1e-11)
    to_gcj = shift_geometry(Point(here), source="bd09", target="gcj02")
    assert distance_m((to_gcj.x, to_gcj.y), (116.39762729119315, 39.90865673957631)) < 0.05
    assert distance_m(gcj02_to_wgs84(*here), (116.39775550083061, 39.91359571849836)) < 0.10


# hujiulong/gcoord, test/fixtures/china-cities.json: the Sichuan cities around Deyang
# (成都 to the south, 绵阳 to the north, 资阳). Values are rounded to 1e-7°; their GCJ02 -> BD09
# pairs match the formula to that rounding, their WGS84 -> GCJ02 pairs to ~0.7 m (the fixture's
# WGS84 side is not the exact inverse), hence the looser bound there.
GCOORD = [
    ((104.0640437, 30.5747262), (104.0665489, 30.5722732), (104.0730134, 30.5783237)),
    ((104.6763391, 31.469776), (104.6789518, 31.4674992), (104.6855135, 31.473363)),
    ((104.6252411, 30.1317508), (104.6276449, 30.1289052), (104.6340814, 30.1351581)),
]


@pytest.mark.parametrize(("wgs", "gcj", "bd"), GCOORD)
def test_sichuan_reference_points_from_gcoord(
    wgs: tuple[float, float], gcj: tuple[float, float], bd: tuple[float, float]
) -> None:
    assert distance_m(wgs84_to_gcj02(*wgs), gcj) < 1.0
    to_bd = shift_geometry(Point(gcj), source="gcj02", target="bd09")
    assert (to_bd.x, to_bd.y) == pytest.approx(bd, abs=1.5e-7)
    assert distance_m(bd09_to_wgs84(*wgs84_to_bd09(*wgs)), wgs) < 1e-3


def test_deyang_offsets_and_round_trips() -> None:
    gcj, bd = wgs84_to_gcj02(*DEYANG), wgs84_to_bd09(*DEYANG)
    assert distance_m(DEYANG, gcj) == pytest.approx(349, abs=1)
    assert distance_m(DEYANG, bd) == pytest.approx(984, abs=1)
    assert distance_m(gcj02_to_wgs84(*gcj), DEYANG) < 1e-6  # measured ~1e-9 m
    assert distance_m(bd09_to_wgs84(*bd), DEYANG) < 1e-6


def test_outside_china_is_left_alone() -> None:
    assert wgs84_to_gcj02(2.35, 48.85) == (2.35, 48.85)
    assert gcj02_to_wgs84(2.35, 48.85) == (2.35, 48.85)


@settings(max_examples=200, deadline=None)  # the machine is shared: timings vary
@given(st.floats(103.5, 105.5), st.floats(30.5, 31.8))
def test_offset_round_trips_below_a_millimetre(lon: float, lat: float) -> None:
    assert distance_m(gcj02_to_wgs84(*wgs84_to_gcj02(lon, lat)), (lon, lat)) < 1e-3
    assert distance_m(bd09_to_wgs84(*wgs84_to_bd09(lon, lat)), (lon, lat)) < 1e-3


# Around Deyang, computed independently of this code base with two other implementations:
# PRCoords 1.0.2 (Artoria2e5, public domain: wgs_gcj, wgs_bd) and the eviltransform 0.1.1
# package from PyPI (wgs2gcj). Each row: WGS84, PRCoords GCJ-02, PRCoords BD-09, eviltransform
# GCJ-02, all (lon, lat). The two GCJ-02 columns differ by ~5 mm from each other.
DEYANG_REFERENCES = [
    (
        (104.4, 31.13),  # 旌阳区
        (104.402683765458, 31.127860982682396),
        (104.4091026800833, 31.134174495794095),
        (104.40268381090178, 31.12786094646275),
    ),
    (
        (104.27, 31.26),  # 孝泉镇
        (104.2724180065252, 31.25774344558988),
        (104.27883378409597, 31.26403261130253),
        (104.27241804746893, 31.257743407379994),
    ),
    (
        (104.5, 31.22),  # 黄许镇
        (104.50254012633413, 31.217721542197996),
        (104.5089982952442, 31.223917497393405),
        (104.50254016934569, 31.217721503617227),
    ),
    (
        (104.35, 31.05),  # 德新镇
        (104.35259320285596, 31.04776614180294),
        (104.35914778196175, 31.053513044824253),
        (104.35259324676626, 31.047766103977366),
    ),
    (
        (104.55, 31.15),
        (104.55241990784675, 31.14755382064516),
        (104.55892433097866, 31.153511984541836),
        (104.55241994882267, 31.14755377922439),
    ),
]
HALF_METRE = 0.5  # the bound for GCJ-02 / BD-09 input converted to WGS84


@pytest.mark.parametrize(("wgs", "gcj", "bd", "gcj_evil"), DEYANG_REFERENCES)
def test_deyang_points_of_independent_implementations_convert_back_within_half_a_metre(
    wgs: tuple[float, float],
    gcj: tuple[float, float],
    bd: tuple[float, float],
    gcj_evil: tuple[float, float],
) -> None:
    assert distance_m(gcj02_to_wgs84(*gcj), wgs) < HALF_METRE
    assert distance_m(gcj02_to_wgs84(*gcj_evil), wgs) < HALF_METRE
    assert distance_m(bd09_to_wgs84(*bd), wgs) < HALF_METRE
    # Measured: ours agrees with PRCoords to ~1e-9 m and with eviltransform to ~5 mm.
    assert distance_m(gcj02_to_wgs84(*gcj), wgs) < 0.001
    assert distance_m(bd09_to_wgs84(*bd), wgs) < 0.001
    assert distance_m(wgs84_to_gcj02(*wgs), gcj_evil) < 0.01


# A 60 m field near Deyang: its corners in WGS84 and as PRCoords puts them on GCJ-02 and BD-09
# maps (高德/腾讯 and 百度), i.e. what a clerk copies from those maps.
FIELD_WGS84 = [(104.4, 31.13), (104.40063, 31.13), (104.40063, 31.13054), (104.4, 31.13054)]
FIELD_GCJ02 = [
    (104.402683765458, 31.127860982682396),
    (104.40331419647535, 31.127861038673792),
    (104.40331422266357, 31.128401321380903),
    (104.40268379164341, 31.128401265389204),
]
FIELD_BD09 = [
    (104.4091026800833, 31.134174495794095),
    (104.40973359309469, 31.13417293689476),
    (104.40973317688302, 31.134713088150797),
    (104.40910226385746, 31.134714647063387),
]


@pytest.mark.parametrize(("datum", "corners"), [("gcj02", FIELD_GCJ02), ("bd09", FIELD_BD09)])
def test_a_field_copied_from_a_consumer_map_is_registered_where_it_is(
    datum: MapDatum, corners: list[tuple[float, float]]
) -> None:
    shape = prepare_parcel(Polygon(corners), datum=datum)
    truth = prepare_parcel(Polygon(FIELD_WGS84))
    for corner in FIELD_WGS84:
        nearest = min(distance_m(corner, vertex) for vertex in shape.geometry.exterior.coords)
        assert nearest < HALF_METRE
        assert nearest < 0.01  # the 1 cm snap is all that moves it
    assert shape.area_m2 == pytest.approx(truth.area_m2, rel=1e-5)
