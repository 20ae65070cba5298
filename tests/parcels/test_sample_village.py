"""The sample village's parcels (fixtures/) are what the issue asks for: realistic fields.

Irregular small-holder fields of 0.5-10 亩 near 31.1 N 104.4 E (旌阳区, 德阳), none
overlapping, rapeseed in winter and rice in summer; and each is a parcel the registry takes.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely
from pyproj import Geod
from shapely.geometry import shape

from digital_village.parcels import batch
from digital_village.parcels.geometry import ParcelShape, to_gk

SAMPLE = Path(__file__).resolve().parents[2] / "fixtures" / "sample-parcels.geojson"
DEYANG = (104.4, 31.1)


@pytest.fixture(scope="module")
def features() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads(SAMPLE.read_text(encoding="utf-8"))["features"]
    return found


def test_every_field_is_a_valid_parcel_of_half_to_ten_mu(features: list[dict[str, Any]]) -> None:
    prepared = batch.prepare_many([shape(f["geometry"]) for f in features])
    assert all(isinstance(p, ParcelShape) for p in prepared), prepared
    shapes = [p for p in prepared if isinstance(p, ParcelShape)]
    areas = np.array([s.area_mu for s in shapes])
    assert areas.min() >= 0.5 and areas.max() <= 10, (areas.min(), areas.max())
    assert not any(s.sliver.is_sliver or s.warnings for s in shapes)
    # Small holders' fields differ in size: not one size stamped out.
    assert np.percentile(areas, 90) > 1.8 * np.percentile(areas, 10)


def test_fields_are_irregular_and_never_overlap(features: list[dict[str, Any]]) -> None:
    fields = to_gk(np.asarray([shape(f["geometry"]) for f in features], dtype=object), 4544)
    # Not axis-parallel rectangles: most fields fill their bounding box only partly.
    fill = shapely.area(fields) / shapely.area(shapely.envelope(fields))
    assert (fill < 0.99).mean() > 0.9
    tree = shapely.STRtree(fields)
    left, right = tree.query(fields, predicate="intersects")
    pairs = left < right
    shared = shapely.area(shapely.intersection(fields[left[pairs]], fields[right[pairs]]))
    assert shared.max(initial=0.0) < 0.01  # m²: fields at most touch


def test_fields_lie_near_deyang(features: list[dict[str, Any]]) -> None:
    centres = shapely.centroid([shape(f["geometry"]) for f in features])
    lon, lat = shapely.get_x(centres), shapely.get_y(centres)
    distances = Geod(ellps="GRS80").inv(
        np.full_like(lon, DEYANG[0]), np.full_like(lat, DEYANG[1]), lon, lat
    )[2]
    assert distances.max() < 30_000  # metres from 31.1 N 104.4 E: the farmland of 孝泉镇
    assert {f["properties"]["fbfbm"][:6] for f in features} == {"510603"}  # 旌阳区


def test_rapeseed_in_winter_rice_in_summer(features: list[dict[str, Any]]) -> None:
    winter = Counter(f["properties"]["crop_winter"] for f in features)
    summer = Counter(f["properties"]["crop_summer"] for f in features)
    assert winter.most_common(1)[0][0] == "油菜" and winter["油菜"] > 0.8 * len(features)
    assert summer.most_common(1)[0][0] == "水稻"
    paddies = [f for f in features if f["properties"]["land_use"] == "0101"]
    assert {f["properties"]["crop_summer"] for f in paddies} == {"水稻"}
