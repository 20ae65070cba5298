"""Bounds on what one request may claim: quantities (a harvest of 1e300 KGM), dates of parcel
changes (a land-use change in 2099), and the features of a GIS file, refused before reading it."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from shapely.geometry import mapping

from digital_village.app import create_app
from digital_village.config import Settings
from digital_village.db import Database
from digital_village.errors import PayloadTooLarge
from digital_village.parcels import io as parcel_io
from digital_village.trace import builders
from tests.conftest import World
from tests.trace.conftest import BASE, RAPESEED, Chain, at, capture_doc, post_event


@pytest.mark.parametrize(
    ("quantity", "uom", "status", "refusal"),
    [
        (1e300, "KGM", 422, "1e+300 KGM is past the limit"),
        (1e7 + 1, "KGM", 422, "1e+07 KGM is past the limit"),
        (5000.0, "KGM", 201, None),
        # The limit holds in the base unit: 20,000 t is 2e7 kg, past 10,000 t.
        (20_000.0, "TNE", 422, "20000 TNE (2e+07 KGM) is past the limit"),
        (5.0, "TNE", 201, None),
        (9e9, "GRM", 201, None),
    ],
)
def test_a_harvest_quantity_past_the_limit_is_refused_whatever_unit_is_sent(
    client: TestClient,
    world: World,
    chain: Chain,
    quantity: float,
    uom: str,
    status: int,
    refusal: str | None,
) -> None:
    event = builders.harvest(
        gtin=RAPESEED,
        lot="RS-BIG",
        kilograms=quantity,
        dkbms=[chain.own[0]],
        when=at(5, 20),
        base_url=BASE,
    )
    event["quantityList"][0]["uom"] = uom
    answer = post_event(client, world, "manager", event)
    assert answer.status_code == status, answer.text
    if refusal is not None:
        assert refusal in answer.text
        assert "at most 10000000 KGM (DV_MAX_QUANTITY)" in answer.text
        assert answer.json()["errors"][0]["pointer"] == "/quantityList/0/quantity"


@pytest.mark.parametrize(
    ("when", "status"),
    [
        (dt.datetime(1949, 12, 31, 23, 0, tzinfo=dt.UTC), 422),
        (dt.datetime(1, 1, 1, tzinfo=dt.UTC), 422),
        (dt.datetime(3000, 1, 1, tzinfo=dt.UTC), 422),
    ],
)
def test_an_event_time_far_in_the_past_or_future_is_refused(
    client: TestClient, world: World, chain: Chain, when: dt.datetime, status: int
) -> None:
    event = builders.harvest(
        gtin=RAPESEED, lot="RS-OLD", kilograms=10, dkbms=[chain.own[0]], when=when, base_url=BASE
    )
    expected = "is in the future" if when.year > 2000 else "is before 1950-01-01"
    for answer in (
        post_event(client, world, "admin", event),
        capture_doc(client, world, "admin", [event]),
    ):
        assert answer.status_code == status, answer.text
        assert expected in answer.text
        assert answer.json()["errors"][0]["pointer"].endswith("/eventTime")


def test_parcel_changes_may_not_start_in_the_far_future(
    client: TestClient, world: World, chain: Chain
) -> None:
    path = f"/api/v1/parcels/{chain.own[0]}/changes"
    far = client.post(
        path, json={"valid_from": "2099-01-01", "land_use": "0103"}, headers=world.auth("admin")
    )
    assert far.status_code == 422, far.text
    assert "2099-01-01" in far.json()["detail"]
    old = client.post(
        path, json={"valid_from": "1900-01-01", "land_use": "0103"}, headers=world.auth("admin")
    )
    assert old.status_code == 422, old.text


def test_a_file_with_too_many_features_is_refused_before_it_is_read(tmp_path: Path) -> None:
    from tests.parcels.conftest import field

    features = [
        {"type": "Feature", "properties": {}, "geometry": mapping(field(col % 10, col // 10))}
        for col in range(120)
    ]
    path = tmp_path / "many.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    with pytest.raises(PayloadTooLarge, match="120 features; one import takes at most 100"):
        parcel_io.read_file(path, max_features=100)
    assert len(parcel_io.read_file(path, max_features=120).geometries) == 120


def test_a_parcel_with_too_many_vertices_is_refused(
    settings: Settings, db: Database, world: World
) -> None:
    import math

    from shapely.geometry import Polygon

    from tests.factories import GROUP
    from tests.parcels.conftest import field

    roomy = create_app(settings.model_copy(update={"max_body_bytes": 16 << 20}), database=db)
    centre = field(5, 5).centroid
    angles = [2 * math.pi * k / 100_000 for k in range(100_000)]
    ring = Polygon(
        [(centre.x + 0.0003 * math.cos(a), centre.y + 0.0003 * math.sin(a)) for a in angles]
    )
    vertices = len(ring.exterior.coords)
    assert vertices > 100_000
    body = {"fbfbm": GROUP, "geometry": mapping(ring), "land_use": "0101"}
    with TestClient(roomy, raise_server_exceptions=False) as client:
        refused = client.post("/api/v1/parcels", json=body, headers=world.auth("admin"))
        assert refused.status_code == 422, refused.text[:300]
        assert f"{vertices} vertices" in refused.json()["detail"]
        split = client.post(
            f"/api/v1/parcels/{GROUP}00001/split",
            json={"parts": [mapping(ring), mapping(field(5, 6))]},
            headers=world.auth("admin"),
        )
        assert split.status_code in (404, 422), split.text[:300]


def test_a_shapefile_is_read_in_batches_and_refused_once_past_the_vertex_limit(
    tmp_path: Path,
) -> None:
    import geopandas as gpd

    from tests.parcels.conftest import field

    shapes = [field(col % 10, col // 10) for col in range(30)]  # 5 vertices each
    path = tmp_path / "fields.shp"
    frame = gpd.GeoDataFrame({"n": list(range(30))}, geometry=shapes, crs="EPSG:4490")
    frame.to_file(path)
    whole = parcel_io.read_file(path)
    batched = parcel_io.read_file(path, batch_size=7, max_vertices=150)
    assert [p["n"] for p in batched.properties] == list(range(30))
    assert [g.wkb for g in batched.geometries] == [g.wkb for g in whole.geometries]
    with pytest.raises(PayloadTooLarge, match=r"more than 60 vertices \(70 in its first 14 "):
        parcel_io.read_file(path, batch_size=7, max_vertices=60)
