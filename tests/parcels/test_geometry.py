"""Parcel geometry: validation, GK areas, CRS transforms, GCJ-02/BD-09 offsets, overlaps."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import CRS, Geod, Transformer
from shapely.affinity import rotate
from shapely.geometry import LineString, MultiPolygon, Point, Polygon, box
from shapely.geometry.base import BaseGeometry

from digital_village.parcels.geometry import (
    GeometryError,
    check_sliver,
    find_overlaps,
    fingerprint,
    gk_epsg,
    overlap_areas_m2,
    prepare_parcel,
    projected_area_m2,
    repair,
    shift_geometry,
    to_gk,
    to_lonlat,
)

DEYANG = (104.40, 31.13)
GEOD = Geod(ellps="GRS80")
TO_4544 = Transformer.from_crs(4490, 4544, always_xy=True)


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    return float(GEOD.inv(a[0], a[1], b[0], b[1])[2])


def deyang_box(width: float, height: float, dx: float = 0.0, dy: float = 0.0) -> Polygon:
    """A rectangle in EPSG:4544 metres, its corner on whole metres near Deyang."""
    x, y = (round(v) for v in TO_4544.transform(*DEYANG))
    return box(x + dx, y + dy, x + dx + width, y + dy + height)


def deyang_square(size: float = 100.0, dx: float = 0.0, dy: float = 0.0) -> Polygon:
    return deyang_box(size, size, dx, dy)


def lonlat(geom: Polygon) -> Polygon:
    return to_lonlat(geom, 4544)


# --- zones and areas (FIELD-NOTES "Coordinates around Deyang") --------------------------------


def test_gk_zone_codes_match_the_epsg_registry() -> None:
    assert gk_epsg(104.40) == 4544
    for epsg in range(4534, 4555):
        cm = 75 + 3 * (epsg - 4534)
        assert CRS.from_epsg(epsg).name == f"CGCS2000 / 3-degree Gauss-Kruger CM {cm}E"
        assert gk_epsg(cm) == gk_epsg(cm - 1.49) == gk_epsg(cm + 1.49) == epsg
    assert (gk_epsg(73.0), gk_epsg(136.0)) == (4534, 4554)


def test_field_notes_square_near_deyang() -> None:
    shape = prepare_parcel(deyang_square(), source_crs=4544)
    assert shape.epsg == 4544
    assert shape.area_m2 == pytest.approx(10000.0, abs=0.05)
    assert shape.geodesic_m2 == pytest.approx(9999.2, abs=0.05)
    assert shape.area_mu == pytest.approx(15.0, abs=1e-4)
    assert shape.area_ha == pytest.approx(1.0, abs=1e-5)
    assert abs(shape.relative_difference) < 0.001
    assert not shape.sliver.is_sliver and shape.warnings == ()


@pytest.mark.parametrize(("epsg", "expected"), [(32648, 9992.0), (4543, 10012.1)])
def test_field_notes_square_in_other_projections(epsg: int, expected: float) -> None:
    square = lonlat(deyang_square())
    assert projected_area_m2(to_gk(square, epsg), epsg) == pytest.approx(expected, abs=0.05)


@pytest.mark.parametrize("crs", [4326, 4490, "EPSG:4326", CRS.from_epsg(4490)])
def test_area_on_a_geographic_crs_is_an_error(crs: object) -> None:
    with pytest.raises(GeometryError, match="geographic CRS"):
        projected_area_m2(lonlat(deyang_square()), crs)  # type: ignore[arg-type]


def test_area_in_feet_is_an_error() -> None:
    with pytest.raises(GeometryError, match="not metres"):
        projected_area_m2(box(0, 0, 1, 1), 2263)  # NAD83 / New York Long Island (ftUS)


def test_hole_is_subtracted_and_oriented_clockwise() -> None:
    outer = deyang_square(100)
    hole = deyang_square(20, 40, 40)
    shape = prepare_parcel(Polygon(outer.exterior.coords, [hole.exterior.coords]), source_crs=4544)
    assert shape.area_m2 == pytest.approx(9600.0, abs=0.05)
    assert shape.relative_difference == pytest.approx(8.1e-5, abs=1e-5)
    assert shape.geometry.exterior.is_ccw
    assert not shape.geometry.interiors[0].is_ccw


def test_multipolygon_area_sums_its_parts() -> None:
    parts = MultiPolygon([deyang_square(50), deyang_square(30, 200, 0)])
    shape = prepare_parcel(parts, source_crs=4544)
    assert isinstance(shape.geometry, MultiPolygon)
    assert shape.area_m2 == pytest.approx(2500 + 900, abs=0.05)


# --- CRS input --------------------------------------------------------------------------------

GK_105_PROJ = "+proj=tmerc +lat_0=0 +lon_0=105 +k=1 +x_0=500000 +y_0=0 +ellps=GRS80 +units=m"


@pytest.mark.parametrize("crs", [4544, "EPSG:4544", CRS.from_epsg(4544).to_wkt(), GK_105_PROJ])
def test_any_crs_spelling_gives_the_same_lonlat(crs: object) -> None:
    reference = shapely.get_coordinates(to_lonlat(deyang_square(), 4544))
    got = shapely.get_coordinates(to_lonlat(deyang_square(), crs))  # type: ignore[arg-type]
    np.testing.assert_allclose(got, reference, atol=1e-10)
    assert reference[0] == pytest.approx(DEYANG, abs=0.01)


def test_utm_input_is_measured_in_gk() -> None:
    x, y = Transformer.from_crs(4490, 32648, always_xy=True).transform(*DEYANG)
    shape = prepare_parcel(box(x, y, x + 100, y + 100), source_crs=32648)
    assert shape.epsg == 4544
    assert shape.area_m2 == pytest.approx(10000.0**2 / 9992.0, abs=0.5)


def test_unknown_crs_is_reported() -> None:
    with pytest.raises(GeometryError, match="unknown CRS"):
        to_lonlat(deyang_square(), "EPSG:999999")


# --- rejection ----------------------------------------------------------------------------

BOW_TIE = Polygon([(104.400, 31.130), (104.401, 31.131), (104.401, 31.130), (104.400, 31.131)])


def test_bow_tie_is_rejected_with_the_self_intersection_location() -> None:
    with pytest.raises(GeometryError, match=r"Self-intersection at lon 104\.40050") as caught:
        prepare_parcel(BOW_TIE)
    assert caught.value.reason == "invalid geometry in the file: Self-intersection"
    assert caught.value.location == pytest.approx((104.4005, 31.1305), abs=1e-6)


def test_bow_tie_repaired_only_when_asked() -> None:
    shape = prepare_parcel(BOW_TIE, allow_repair=True)
    assert isinstance(shape.geometry, MultiPolygon) and shape.geometry.is_valid
    assert shape.repaired is not None
    assert shape.repaired.reason == "Self-intersection"
    assert (shape.repaired.parts_before, shape.repaired.parts_after) == (1, 2)
    # The two triangles are each a quarter of the 0.001° x 0.001° box; the crossing ring's own
    # shoelace area is ~0 because its lobes cancel.
    box_m2 = projected_area_m2(to_gk(box(104.400, 31.130, 104.401, 31.131), 4544), 4544)
    assert shape.area_m2 == pytest.approx(box_m2 / 2, abs=2.0)  # cm snapping of 450 m of edges
    assert shape.repaired.area_before_m2 == pytest.approx(0, abs=0.1)
    assert shape.repaired.area_change_m2 == pytest.approx(shape.area_m2, abs=0.5)
    (summary,) = (w for w in shape.warnings if w.startswith("repaired Self-intersection"))
    assert "at lon 104.4005000, lat 31.1305000" in summary
    assert "1 part(s) became 2" in summary and f"{shape.repaired.area_after_m2:.2f} m²" in summary


def test_repair_refuses_a_valid_geometry() -> None:
    with pytest.raises(GeometryError, match="nothing to repair"):
        repair(lonlat(deyang_square()))


def test_swapped_latitude_and_longitude() -> None:
    swapped = shapely.transform(lonlat(deyang_square()), lambda xy: xy[:, ::-1])
    with pytest.raises(GeometryError, match="latitude and longitude look swapped") as caught:
        prepare_parcel(swapped)
    assert caught.value.location == pytest.approx(DEYANG, abs=0.01)  # where it really is
    assert "came as (31.13" in caught.value.reason


def test_outside_china() -> None:
    paris = box(2.35, 48.85, 2.36, 48.86)
    with pytest.raises(GeometryError, match=r"outside China: lon must be 73\.\.136"):
        prepare_parcel(paris)


def test_projected_coordinates_without_a_crs() -> None:
    with pytest.raises(GeometryError, match=r"looks projected: name its CRS, e.g. EPSG:4544"):
        prepare_parcel(deyang_square())
    # An easting led by its zone number names that zone's CRS.
    prefixed = shapely.affinity.translate(deyang_square(), 35_000_000)
    with pytest.raises(GeometryError, match=r"e.g. EPSG:4523 \(CGCS2000 / 3-degree"):
        prepare_parcel(prefixed)


def test_lonlat_read_through_a_projected_crs_says_so() -> None:
    with pytest.raises(GeometryError, match="look like lon/lat") as caught:
        prepare_parcel(lonlat(deyang_square()), source_crs=4544)
    assert "not metres of CGCS2000 / 3-degree Gauss-Kruger CM 105E" in caught.value.reason


@pytest.mark.parametrize(
    ("offset", "crs", "expected"),
    [
        (35_000_000, 4544, "EPSG:4523"),  # 3-degree zone 35, read as the CM 105E CRS
        (18_000_000, 4544, "EPSG:4496"),  # 6-degree zone 18
    ],
)
def test_zone_prefixed_eastings_name_their_crs(offset: float, crs: int, expected: str) -> None:
    prefixed = shapely.affinity.translate(deyang_square(), offset)
    with pytest.raises(GeometryError, match=f"begins with a zone number.*{expected}"):
        prepare_parcel(prefixed, source_crs=crs)
    # Read in the CRS the message names, the same field comes out.
    right = prepare_parcel(prefixed, source_crs=expected)
    assert right.area_m2 == pytest.approx(10000.0, abs=0.5)
    assert right.geometry.centroid.distance(lonlat(deyang_square()).centroid) < 1e-6


@pytest.mark.parametrize(
    ("geom", "kind"),
    [
        (Point(*DEYANG), "Point"),
        (LineString([DEYANG, (104.41, 31.14)]), "LineString"),
        (shapely.GeometryCollection([box(104.4, 31.13, 104.41, 31.14)]), "GeometryCollection"),
    ],
)
def test_only_polygons_are_parcels(geom: BaseGeometry, kind: str) -> None:
    with pytest.raises(GeometryError, match=f"must be a Polygon or MultiPolygon, got {kind}"):
        prepare_parcel(geom)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_empty_and_nan_polygons() -> None:
    with pytest.raises(GeometryError, match="empty"):
        prepare_parcel(Polygon())
    assert shift_geometry(Polygon(), source="gcj02", target="wgs84").is_empty
    with pytest.raises(GeometryError, match="NaN"):
        prepare_parcel(Polygon([(104.4, 31.13), (math.nan, 31.14), (104.41, 31.14)]))


def test_z_is_dropped_with_a_warning() -> None:
    flat = lonlat(deyang_square())
    raised = shapely.force_3d(flat, 500.0)
    shape = prepare_parcel(raised)
    assert not shapely.has_z(shape.geometry)
    assert shape.warnings == ("Z coordinates dropped",)
    assert shape.fingerprint == prepare_parcel(flat).fingerprint


# --- orientation, snapping, fingerprints ---------------------------------------------------


def test_clockwise_input_comes_out_counter_clockwise() -> None:
    clockwise = lonlat(deyang_square()).reverse()
    assert not clockwise.exterior.is_ccw
    assert prepare_parcel(clockwise).geometry.exterior.is_ccw


def test_fingerprint_ignores_start_vertex_orientation_and_is_stable_on_reimport() -> None:
    square = lonlat(deyang_square())
    ring = list(square.exterior.coords)[:-1]
    rotated = Polygon(ring[2:] + ring[:2])
    first = prepare_parcel(square)
    assert prepare_parcel(rotated).fingerprint == first.fingerprint
    assert prepare_parcel(square.reverse()).fingerprint == first.fingerprint
    again = prepare_parcel(shapely.from_wkb(shapely.to_wkb(first.geometry)))
    assert again.fingerprint == first.fingerprint
    assert again.geometry.equals_exact(first.geometry, 0)
    assert prepare_parcel(lonlat(deyang_square(dx=0.02))).fingerprint != first.fingerprint
    assert len(first.fingerprint) == 64 and fingerprint(first.geometry) == first.fingerprint


def test_snapping_lands_on_whole_gk_centimetres() -> None:
    x, y = TO_4544.transform(104.4, 31.13)
    odd = box(x + 0.123456, y + 0.987654, x + 60.5, y + 70.25)
    gk = shapely.get_coordinates(to_gk(prepare_parcel(odd, source_crs=4544).geometry, 4544))
    np.testing.assert_allclose(gk * 100, np.round(gk * 100), atol=1e-5)


def test_a_valid_shape_narrower_than_the_grid_is_kept_unsnapped_and_flagged() -> None:
    # A 2 mm wide needle and a 4 mm square are valid in the file: the 1 cm grid would fold or
    # erase them, so they stay as they came and the sliver check says what they are.
    x, y = deyang_box(1, 1).bounds[:2]
    needle = Polygon([(x, y), (x + 50, y + 0.001), (x + 100, y), (x + 50, y - 0.001)])
    for shape in (needle, deyang_box(0.004, 0.004)):
        prepared = prepare_parcel(shape, source_crs=4544)
        assert prepared.geometry.is_valid
        assert prepared.sliver.is_sliver and "tiny" in (prepared.sliver.reason or "")
        assert to_gk(prepared.geometry, 4544).area == pytest.approx(shape.area, rel=1e-6)


# --- Chinese map offsets (point references and round trips: test_offsets.py) --------------


@pytest.mark.parametrize("datum", ["gcj02", "bd09"])
def test_parcel_drawn_on_a_consumer_map_is_moved_back(datum: str) -> None:
    truth = prepare_parcel(lonlat(deyang_square()))
    shifted = shift_geometry(truth.geometry, source="wgs84", target=datum)  # type: ignore[arg-type]
    assert shifted.centroid.distance(truth.geometry.centroid) > 0.003
    back = prepare_parcel(shifted, datum=datum)  # type: ignore[arg-type]
    assert back.area_m2 == pytest.approx(truth.area_m2, abs=0.05)
    for got, want in zip(
        back.geometry.exterior.coords, truth.geometry.exterior.coords, strict=True
    ):
        assert distance_m(got, want) < 0.01


# --- overlaps and slivers ---------------------------------------------------------------------


def test_overlap_areas() -> None:
    candidate = lonlat(deyang_square())
    others = [
        lonlat(deyang_square(100, 50, 50)),  # a quarter
        lonlat(deyang_square(100, 100, 0)),  # shares an edge only
        lonlat(deyang_square(100, 99.99, 0)),  # 1 cm strip: 1 m²
        lonlat(deyang_square(100, 5000, 0)),  # far away
    ]
    areas = overlap_areas_m2(candidate, others)
    np.testing.assert_allclose(areas, [2500.0, 0.0, 1.0, 0.0], atol=0.01)
    named = dict(zip("abcd", others, strict=True))
    assert find_overlaps(candidate, named) == {"a": pytest.approx(2500.0, abs=0.01)}
    assert list(find_overlaps(candidate, named, tolerance_m2=0.5)) == ["a", "c"]
    assert overlap_areas_m2(candidate, []).shape == (0,)


def test_vectorised_overlaps_equal_one_by_one() -> None:
    rng = np.random.default_rng(7)
    others = [lonlat(deyang_square(s, dx, dy)) for s, dx, dy in rng.uniform(-300, 300, (300, 3))]
    candidate = lonlat(deyang_square(150))
    candidate_gk = to_gk(candidate, 4544)
    expected = [candidate_gk.intersection(to_gk(other, 4544)).area for other in others]
    np.testing.assert_allclose(overlap_areas_m2(candidate, others), expected, atol=1e-6)


@pytest.mark.parametrize(
    ("width", "length", "reason"),
    [
        (0.8, 300, "Polsby-Popper"),
        (0.9, 40, "nowhere wider than 1 m"),
        (0.5, 1.5, "tiny"),
        (5, 200, None),
        (100, 100, None),
    ],
)
def test_slivers(width: float, length: float, reason: str | None) -> None:
    check = check_sliver(lonlat(deyang_box(length, width)))
    assert check.is_sliver is (reason is not None)
    assert (check.reason is None) if reason is None else (reason in (check.reason or ""))


# --- properties over random rectangles around Deyang ---------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    st.floats(103.6, 106.4),
    st.floats(30.0, 32.5),
    st.floats(5, 2000),
    st.floats(5, 2000),
    st.floats(0, 180),
)
def test_random_rectangles(
    lon: float, lat: float, width: float, height: float, angle: float
) -> None:
    x, y = TO_4544.transform(lon, lat)
    rectangle = lonlat(rotate(box(x, y, x + width, y + height), angle, origin=(x, y)))
    shape = prepare_parcel(rectangle)
    assert shape.epsg == 4544
    assert abs(shape.area_m2 - shape.geodesic_m2) / shape.geodesic_m2 < 0.001
    assert shape.area_m2 == pytest.approx(width * height, abs=0.02 * (width + height))
    assert shape.geometry.exterior.is_ccw
    before = shapely.get_coordinates(rectangle)[:-1]
    after = shapely.get_coordinates(shape.geometry)[:-1]
    assert len(after) == len(before)
    for vertex in before:
        nearest = min(distance_m(tuple(vertex), tuple(other)) for other in after)
        assert nearest <= 0.01
    assert prepare_parcel(shape.geometry).fingerprint == shape.fingerprint
