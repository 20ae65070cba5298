"""The parcel routes: GeoJSON out, clear problems in, no personal data in public answers."""

from __future__ import annotations

import io
from typing import Any

import zxingcpp
from fastapi.testclient import TestClient
from PIL import Image
from pypdf import PdfReader
from shapely.geometry import mapping

from digital_village.parcels import render
from tests.conftest import World
from tests.factories import GROUP, VILLAGE
from tests.parcels.conftest import ORIGIN_E, ORIGIN_N, field, gk_box


def _register(client: TestClient, world: World, geometry: Any, **extra: Any) -> Any:
    body = {"fbfbm": GROUP, "geometry": mapping(geometry), "land_use": "0101", **extra}
    return client.post("/api/v1/parcels", json=body, headers=world.auth("admin"))


def test_register_then_get_as_a_feature_without_personal_data(
    client: TestClient, world: World
) -> None:
    made = _register(
        client,
        world,
        field(0, 0),
        contractor_household_id=world.household_a,
        crops=[{"season": "2026-winter", "crop": "油菜"}],
    )
    assert made.status_code == 201, made.text
    dkbm = made.json()["properties"]["dkbm"]
    response = client.get(f"/api/v1/parcels/{dkbm}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/geo+json")
    feature = response.json()
    assert feature["type"] == "Feature" and feature["geometry"]["type"] == "Polygon"
    props = feature["properties"]
    assert props["dkbm"] == dkbm == f"{GROUP}00001"
    assert props["area_m2"] == 2500.0 and props["area_mu"] == 3.75
    assert props["contractor"]["name"] == "王**"
    assert "王建国" not in response.text and "13808380001" not in response.text
    # 6 decimals at most.
    ring = feature["geometry"]["coordinates"][0]
    assert all(len(str(c).split(".")[1]) <= 6 for point in ring for c in point)


def test_bad_geometry_is_a_422_naming_the_problem(client: TestClient, world: World) -> None:
    bowtie = {
        "type": "Polygon",
        "coordinates": [
            [
                [104.27, 31.25],
                [104.271, 31.251],
                [104.271, 31.25],
                [104.27, 31.251],
                [104.27, 31.25],
            ]
        ],
    }
    response = client.post(
        "/api/v1/parcels",
        json={"fbfbm": GROUP, "geometry": bowtie, "land_use": "0101"},
        headers=world.auth("admin"),
    )
    assert response.status_code == 422
    assert "Self-intersection" in response.json()["detail"]
    swapped = {
        "type": "Polygon",
        "coordinates": [[[31.25, 104.27], [31.25, 104.271], [31.251, 104.271], [31.25, 104.27]]],
    }
    response = client.post(
        "/api/v1/parcels",
        json={"fbfbm": GROUP, "geometry": swapped, "land_use": "0101"},
        headers=world.auth("admin"),
    )
    assert response.status_code == 422 and "swapped" in response.json()["detail"]
    overlap = _register(client, world, field(0, 0))
    assert overlap.status_code == 201
    again = _register(client, world, gk_box(10, 10, 60, 60))
    assert again.status_code == 409 and f"{GROUP}00001" in again.json()["detail"]


def test_locate_in_projected_crs_and_404_outside(client: TestClient, world: World) -> None:
    assert _register(client, world, field(0, 0)).status_code == 201
    found = client.get(
        "/api/v1/parcels/locate",
        params={"x": ORIGIN_E + 10, "y": ORIGIN_N + 10, "crs": "EPSG:4544"},
    )
    assert found.status_code == 200 and found.json()["properties"]["dkbm"] == f"{GROUP}00001"
    missing = client.get("/api/v1/parcels/locate", params={"x": 104.0, "y": 31.0})
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    bad_crs = client.get("/api/v1/parcels/locate", params={"x": 1, "y": 2, "crs": "EPSG:99999"})
    assert bad_crs.status_code == 422 and "CRS" in bad_crs.json()["detail"]


def test_import_reports_every_bad_feature_and_all_or_nothing_stores_none(
    client: TestClient, world: World
) -> None:
    features = [
        {"type": "Feature", "properties": {"land_use": "0101"}, "geometry": mapping(field(0, 0))},
        {"type": "Feature", "properties": {"land_use": "0101"}, "geometry": None},
        {"type": "Feature", "properties": {"land_use": "0101"}, "geometry": mapping(field(1, 0))},
        {
            "type": "Feature",
            "properties": {"land_use": "0101"},
            "geometry": mapping(gk_box(40, 10, 60, 30)),
        },
        {
            "type": "Feature",
            "properties": {"land_use": "0101", "fbfbm": GROUP[:12] + "07"},
            "geometry": mapping(field(3, 0)),
        },
    ]
    document = {"type": "FeatureCollection", "features": features}
    refused = client.post(
        "/api/v1/parcels/import",
        params={"fbfbm": GROUP, "all_or_nothing": True},
        json=document,
        headers=world.auth("admin"),
    )
    assert refused.status_code == 422
    assert [r["feature"] for r in refused.json()["rejected"]] == [1, 3, 4]
    assert client.get("/api/v1/parcels", params={"region": GROUP}).json()["numberMatched"] == 0
    stored = client.post(
        "/api/v1/parcels/import",
        params={"fbfbm": GROUP},
        json=document,
        headers=world.auth("admin"),
    )
    assert stored.status_code == 200, stored.text
    report = stored.json()
    assert [c["feature"] for c in report["created"]] == [0, 2]
    reasons = {r["feature"]: r["reason"] for r in report["rejected"]}
    assert "empty" in reasons[1] and reasons[3].startswith("overlaps feature")
    assert "feature 0 (200.0 m²)" in reasons[3]
    assert "unknown group code 07" in reasons[4]
    again = client.post(
        "/api/v1/parcels/import",
        params={"fbfbm": GROUP},
        json=document,
        headers=world.auth("admin"),
    ).json()
    assert again["created"] == [] and again["already_imported"]["created"] == 2
    assert "already registered" in again["rejected"][0]["reason"]


def test_list_paging_map_and_export(client: TestClient, world: World) -> None:
    for col in range(3):
        assert _register(client, world, field(col, 0)).status_code == 201
    page = client.get("/api/v1/parcels", params={"region": GROUP[:12], "limit": 2}).json()
    assert page["numberMatched"] == 3 and page["numberReturned"] == 2
    assert "offset=2" in page["links"][0]["href"]
    svg = client.get(f"/api/v1/maps/{GROUP[:12]}.svg")
    assert svg.status_code == 200 and svg.headers["content-type"] == "image/svg+xml"
    assert svg.text.count("<path") == 3 and "00002" in svg.text
    png = client.get(f"/api/v1/maps/{GROUP}.png", params={"by": "land_use"})
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert client.get("/api/v1/maps/510603101202.svg").status_code == 404
    dd = client.get("/api/v1/parcels/export", params={"due_diligence": True}).json()
    assert {f["geometry"]["type"] for f in dd["features"]} == {"Point"}


def test_change_split_merge_over_http(client: TestClient, world: World) -> None:
    for col in range(2):
        assert _register(client, world, field(col, 0)).status_code == 201
    first, second = f"{GROUP}00001", f"{GROUP}00002"
    changed = client.post(
        f"/api/v1/parcels/{first}/changes",
        json={
            "operator_cooperative_id": world.coop_a,
            "crop": {"season": "2026-summer", "crop": "水稻"},
        },
        headers=world.auth("manager"),
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["properties"]["operator"]["uscc"]
    history = client.get(f"/api/v1/parcels/{first}/history").json()
    assert history["holdings"][-1]["operator_uscc"]
    merged = client.post(
        "/api/v1/parcels/merge", json={"dkbms": [first, second]}, headers=world.auth("admin")
    )
    assert merged.status_code == 422 and "different contractors" in merged.json()["detail"]
    split = client.post(
        f"/api/v1/parcels/{second}/split",
        json={"parts": [mapping(gk_box(50, 0, 75, 50)), mapping(gk_box(75, 0, 100, 50))]},
        headers=world.auth("admin"),
    )
    assert split.status_code == 201, split.text
    children = [f["properties"]["dkbm"] for f in split.json()["features"]]
    assert children == [f"{GROUP}00003", f"{GROUP}00004"]
    old = client.get(f"/api/v1/parcels/{second}").json()["properties"]
    assert old["status"] == "retired" and old["into"] == children
    assert client.get(f"/api/v1/parcels/{children[0]}/verify").json()["ok"] is True
    near = client.get(f"/api/v1/parcels/{children[0]}/neighbours").json()["features"]
    assert {f["properties"]["dkbm"] for f in near} == {first, children[1]}


def test_parcel_sign_png_pdf_and_qr(client: TestClient, world: World) -> None:
    assert _register(client, world, field(0, 0)).status_code == 201
    dkbm = f"{GROUP}00001"
    png = client.get(f"/api/v1/parcels/{dkbm}/sign.png")
    assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
    pdf = client.get(f"/api/v1/parcels/{dkbm}/sign.pdf")
    assert pdf.status_code == 200 and pdf.content[:5] == b"%PDF-"
    qr = client.get(f"/api/v1/parcels/{dkbm}/sign.svg")
    assert qr.status_code == 200 and qr.text.startswith("<svg")
    from digital_village.parcels import signs

    # The QR code holds the resolver address on the configured host.
    assert signs.qr_svg(f"https://dv.test/p/{dkbm}") == qr.content
    assert client.get(f"/api/v1/parcels/{dkbm}/sign.gif").status_code == 404
    assert client.get(f"/api/v1/parcels/{GROUP}00009/sign.png").status_code == 404
    # What a phone reads off the printed sign, and what the sign says beside the code.
    image = Image.open(io.BytesIO(png.content)).convert("L")
    (found,) = zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)
    assert found.text == f"https://dv.test/p/{dkbm}"
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
    if render.cjk_font() is not None:
        for expected in (f"{GROUP} 00001", "民安村", "一组", "3.75 亩"):
            assert expected in text, (expected, text)
    else:  # no CJK font: the card is in English, the codes stand for the names
        for expected in (f"{GROUP} 00001", VILLAGE, "01", "3.75 mu"):
            assert expected in text, (expected, text)


def test_malformed_codes_are_422_saying_why(client: TestClient, world: World) -> None:
    short = client.get(f"/api/v1/parcels/{GROUP}")
    assert short.status_code == 422
    assert "DKBM must be 19 digits, got 14 characters" in short.json()["detail"]
    assert client.get(f"/api/v1/parcels/{GROUP}0000x/history").status_code == 422
    assert client.get(f"/api/v1/parcels/{GROUP}00001").status_code == 404


def test_due_diligence_export_points_under_four_hectares_polygons_from_four(
    client: TestClient, world: World
) -> None:
    small = _register(client, world, gk_box(0, 0, 100, 100))  # 1 ha
    large = _register(client, world, gk_box(200, 0, 400, 200))  # 4 ha exactly
    assert small.status_code == large.status_code == 201
    document = client.get(
        "/api/v1/parcels/export", params={"region": GROUP, "due_diligence": True}
    ).json()
    kinds = {f["properties"]["dkbm"]: f["geometry"]["type"] for f in document["features"]}
    assert kinds == {f"{GROUP}00001": "Point", f"{GROUP}00002": "Polygon"}
    areas = [f["properties"]["Area"] for f in document["features"]]
    assert areas == [1.0, 4.0]
    point = document["features"][0]["geometry"]["coordinates"]
    assert all(len(str(c).split(".")[1]) <= 6 for c in point)


def test_import_keeps_the_dkbm_features_carry_unless_asked_to_assign(
    client: TestClient, world: World
) -> None:
    def document(*cells: tuple[int, str]) -> dict[str, Any]:
        return {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "properties": {"land_use": "0101", "DKBM": f"{GROUP}{number}"},
                    "geometry": mapping(field(column, 0)),
                }
                for column, number in cells
            ],
        }

    kept = client.post(
        "/api/v1/parcels/import",
        params={"fbfbm": GROUP},
        json=document((0, "00417")),
        headers=world.auth("admin"),
    )
    assert kept.status_code == 200, kept.text
    assert [c["dkbm"] for c in kept.json()["created"]] == [f"{GROUP}00417"]
    assigned = client.post(
        "/api/v1/parcels/import",
        params={"fbfbm": GROUP, "codes": "assign"},
        json=document((1, "00417"), (2, "00555")),  # codes already taken or not: both ignored
        headers=world.auth("admin"),
    )
    assert assigned.status_code == 200, assigned.text
    assert assigned.json()["rejected"] == []
    assert [c["dkbm"] for c in assigned.json()["created"]] == [f"{GROUP}00418", f"{GROUP}00419"]
    unknown = client.post(
        "/api/v1/parcels/import",
        params={"fbfbm": GROUP, "codes": "renumber"},
        json=document((3, "00600")),
        headers=world.auth("admin"),
    )
    assert unknown.status_code == 422
    assert client.get("/api/v1/parcels", params={"region": GROUP}).json()["numberMatched"] == 3
