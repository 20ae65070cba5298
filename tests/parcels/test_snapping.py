"""The 1 cm grid never makes a valid polygon invalid, and a refusal only ever blames the file.

Shapes are drawn in EPSG:4544 metres near Deyang, as surveys deliver them: random fields, and
the near-degenerate ones that rounding each vertex on its own used to fold (thin spikes,
vertices millimetres apart, a notch reaching to within millimetres of the opposite edge,
parts a few millimetres apart). Thousands of examples in all.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from shapely.geometry import MultiPolygon, Polygon

from digital_village.parcels import batch
from digital_village.parcels.geometry import (
    GeometryError,
    ParcelShape,
    prepare_parcel,
    snap,
    to_gk,
)

E0, N0 = 430_000.0, 3_459_000.0  # whole metres in CGCS2000 / GK CM 105E, near 孝泉镇
# About 2,600 drawn shapes here and 10,000 in the batch test, in about a minute.
SETTINGS = settings(
    max_examples=500, deadline=None, suppress_health_check=[HealthCheck.filter_too_much]
)


def star(cx: float, cy: float, radii: list[float], turn: float) -> Polygon:
    """A star-shaped ring around a centre: simple whenever the angles are distinct."""
    count = len(radii)
    angles = [turn + 2 * math.pi * i / count for i in range(count)]
    return Polygon(
        [(cx + r * math.cos(a), cy + r * math.sin(a)) for r, a in zip(radii, angles, strict=True)]
    )


def offset(metres: float) -> st.SearchStrategy[float]:
    """Sub-centimetre noise: where a vertex falls between grid lines matters most."""
    return st.floats(-metres, metres, allow_nan=False, allow_infinity=False)


fields = st.builds(
    star,
    cx=st.floats(E0, E0 + 5_000),
    cy=st.floats(N0, N0 + 5_000),
    radii=st.lists(st.floats(0.02, 300.0), min_size=3, max_size=40),
    turn=st.floats(0, 2 * math.pi),
)


@st.composite
def spiky(draw: st.DrawFn) -> Polygon:
    """A field with a thin spike: its two sides a fraction of a millimetre to 2 cm apart."""
    size = draw(st.floats(5.0, 200.0))
    x, y = E0 + draw(st.floats(0, 1000)), N0 + draw(st.floats(0, 1000))
    width = draw(st.floats(0.0002, 0.02))
    length = draw(st.floats(0.05, 100.0))
    at = draw(st.floats(0.1, 0.9)) * size
    jitter = draw(offset(0.005))
    return Polygon(
        [
            (x, y),
            (x + size, y),
            (x + size, y + at),
            (x + size + length, y + at + width / 2 + jitter),
            (x + size, y + at + width),
            (x + size, y + size),
            (x, y + size),
        ]
    )


@st.composite
def notched(draw: st.DrawFn) -> Polygon:
    """A notch from the top reaching to within millimetres of the bottom edge."""
    size = draw(st.floats(1.0, 150.0))
    x, y = E0 + draw(st.floats(0, 1000)), N0 + draw(st.floats(0, 1000))
    base = draw(offset(0.01))
    gap = draw(st.floats(0.0001, 0.015))
    tip = draw(st.floats(0.1, 0.9)) * size
    half = draw(st.floats(0.001, 0.3)) * size / 2
    return Polygon(
        [
            (x, y + base),
            (x + size, y + base),
            (x + size, y + size),
            (x + tip + half, y + size),
            (x + tip, y + base + gap),
            (x + tip - half, y + size),
            (x, y + size),
        ]
    )


@st.composite
def crowded(draw: st.DrawFn) -> Polygon:
    """A field whose ring has runs of vertices a few millimetres apart."""
    base = draw(fields)
    ring = list(base.exterior.coords)[:-1]
    out: list[tuple[float, float]] = []
    for px, py in ring:
        out.append((px, py))
        for _ in range(draw(st.integers(0, 3))):
            out.append((px + draw(offset(0.004)), py + draw(offset(0.004))))
    return Polygon(out)


@st.composite
def close_parts(draw: st.DrawFn) -> MultiPolygon:
    """Two fields a few millimetres apart (a ditch the survey did not draw), or with a hole."""
    size = draw(st.floats(0.5, 100.0))
    x, y = E0 + draw(st.floats(0, 1000)), N0 + draw(st.floats(0, 1000))
    gap = draw(st.floats(0.0001, 0.02))
    left = shapely.box(x, y, x + size, y + size)
    right = shapely.box(x + size + gap, y + draw(offset(0.01)), x + 2 * size, y + size)
    if draw(st.booleans()):
        hole = shapely.box(x + size / 3, y + size / 3, x + size / 3 + gap * 3, y + 2 * size / 3)
        left = left.difference(hole)
    return MultiPolygon([left, right])


def assert_kept(shape: Polygon | MultiPolygon) -> ParcelShape:
    """A shape valid in the file: prepared without complaint, valid, and not moved much."""
    assert shape.is_valid and not shape.is_empty
    prepared = prepare_parcel(shape, source_crs=4544)  # never raises for a valid shape
    assert prepared.geometry.is_valid
    gk = to_gk(prepared.geometry, 4544)
    # Snapping moves each vertex by at most √2/2 cm: the area changes by at most that times
    # the perimeter (plus whatever a spike thinner than the grid held).
    allowed = 0.0071 * shape.length + 1e-6 * shape.area + 1e-4
    assert abs(gk.area - shape.area) <= allowed
    return prepared


@SETTINGS
@given(fields)
def test_random_fields_stay_valid(shape: Polygon) -> None:
    assume(shape.is_valid)
    assert_kept(shape)


@SETTINGS
@given(spiky())
def test_thin_spikes_stay_valid(shape: Polygon) -> None:
    assume(shape.is_valid)
    assert_kept(shape)


@SETTINGS
@given(notched())
def test_notches_near_the_opposite_edge_stay_valid(shape: Polygon) -> None:
    assume(shape.is_valid)
    assert_kept(shape)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(crowded())
def test_vertices_millimetres_apart_stay_valid(shape: Polygon) -> None:
    assume(shape.is_valid)
    assert_kept(shape)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(close_parts())
def test_parts_millimetres_apart_stay_valid(shape: MultiPolygon) -> None:
    assume(shape.is_valid)
    assert_kept(shape)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(st.one_of(fields, spiky(), notched(), crowded()))
def test_snapping_is_idempotent(shape: Polygon) -> None:
    assume(shape.is_valid)
    prepared = assert_kept(shape)
    again = prepare_parcel(prepared.geometry)
    assert again.fingerprint == prepared.fingerprint
    assert snap(prepared.geometry).equals_exact(prepared.geometry, 1e-12)


def test_a_notch_that_rounding_alone_folds_is_accepted() -> None:
    # The bottom edge at 5.1 mm rounds up to 1 cm, the notch's tip 0.3 mm above it rounds down
    # to 0: rounded vertex by vertex the ring touches itself. Valid in the file, so kept.
    x, y = E0 + 12, N0 + 34
    shape = Polygon(
        [
            (x, y + 0.0051),
            (x + 20, y + 0.0051),
            (x + 20, y + 20),
            (x + 10.5, y + 20),
            (x + 10, y + 0.0054),
            (x + 9.5, y + 20),
            (x, y + 20),
        ]
    )
    rounded = shapely.transform(shape, lambda xy: np.round(xy * 100) / 100)
    assert shape.is_valid and not rounded.is_valid  # what the old snapping stored
    prepared = assert_kept(shape)
    assert prepared.warnings == ()


def test_an_invalid_shape_is_blamed_on_the_file_with_its_place() -> None:
    x, y = E0 + 100, N0 + 100
    bow_tie = Polygon([(x, y), (x + 10, y + 10), (x + 10, y), (x, y + 10)])
    with pytest.raises(GeometryError) as caught:
        prepare_parcel(bow_tie, source_crs=4544)
    assert caught.value.reason == "invalid geometry in the file: Self-intersection"
    assert caught.value.location is not None
    centre = to_gk(shapely.Point(caught.value.location), 4544)
    assert centre.distance(shapely.Point(x + 5, y + 5)) < 1e-6


def test_ten_thousand_near_degenerate_fields_in_one_batch() -> None:
    # The vectorised import path: every valid shape comes out prepared, none refused.
    rng = np.random.default_rng(2539)
    shapes = []
    for index in range(10_000):
        cx, cy = E0 + rng.uniform(0, 20_000), N0 + rng.uniform(0, 20_000)
        count = int(rng.integers(4, 24))
        radii = rng.uniform(5, 60, count)
        if index % 3 == 0:  # a spike thinner than the grid
            radii[0] = radii[1] = radii[0] + 0.001 * rng.uniform(-1, 1)
        ring = [
            (cx + r * math.cos(a), cy + r * math.sin(a))
            for r, a in zip(radii, np.linspace(0, 2 * math.pi, count, endpoint=False), strict=True)
        ]
        if index % 2 == 0:  # a vertex a few millimetres from its neighbour
            px, py = ring[0]
            ring.insert(1, (px + rng.uniform(-0.004, 0.004), py + rng.uniform(-0.004, 0.004)))
        shapes.append(Polygon(ring))
    valid = [shape for shape in shapes if shape.is_valid]
    assert len(valid) > 9_000
    prepared = batch.prepare_many(valid, source_crs=4544)
    refused = [str(p) for p in prepared if isinstance(p, GeometryError)]
    assert refused == []
    assert all(p.geometry.is_valid for p in prepared if isinstance(p, ParcelShape))
