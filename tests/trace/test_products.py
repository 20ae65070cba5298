"""Products under their GTINs, lot pages, and the 承诺达标合格证 of a lot."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from tests.conftest import World
from tests.trace.conftest import OIL, RAPESEED, Chain, capture_doc, season


def register(client: TestClient, world: World, role: str = "manager", **body: Any) -> Any:
    payload = {"gtin": "96385074", "name": "菜籽饼", "category": "other", **body}
    return client.post("/api/v1/products", json=payload, headers=world.auth(role))


@pytest.mark.parametrize(
    ("gtin", "stored"),
    [
        ("96385074", "00000096385074"),  # GTIN-8
        ("614141000036", "00614141000036"),  # GTIN-12 (UPC-A)
        ("6901234500011", "06901234500011"),  # GTIN-13
        ("16901234500018", "16901234500018"),  # GTIN-14
    ],
)
def test_gtins_of_every_length_are_stored_as_gtin_14(
    client: TestClient, world: World, gtin: str, stored: str
) -> None:
    response = register(client, world, gtin=gtin)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["gtin"] == stored and body["cooperative_id"] == world.coop_a
    assert client.get(f"/api/v1/products/{gtin}").json()["gtin"] == stored
    entry = orjson.loads(client.get(f"/api/v1/ledger/entries/{body['ledger_seq']}").content)
    assert entry["kind"] == "trace.product.registered" and entry["data"]["gtin"] == stored


@pytest.mark.parametrize(
    ("gtin", "message"),
    [
        ("6901234500012", "check digit should be 1, got 2"),
        ("690123450001", "check digit"),
        ("6901234", "must be 8, 12, 13 or 14 digits"),
        ("69012345OOO11", "only digits"),
    ],
)
def test_bad_gtins_are_refused_naming_the_fault(
    client: TestClient, world: World, gtin: str, message: str
) -> None:
    response = register(client, world, gtin=gtin)
    assert response.status_code == 422
    assert message in response.json()["detail"]


def test_product_rules(client: TestClient, world: World) -> None:
    assert register(client, world).status_code == 201
    again = register(client, world)
    assert again.status_code == 409
    unknown = register(client, world, gtin="16901234500018", category="snacks")
    assert "unknown product category" in unknown.json()["detail"]
    net = register(client, world, gtin="16901234500018", unit="KGM", net_quantity=5, net_unit="LTR")
    assert "counted in pieces" in net.json()["detail"]
    bottle = register(
        client,
        world,
        gtin="16901234500018",
        category="packaged",
        net_quantity=5,
        net_unit="LTR",
        name="天府菜油 5 L",
    )
    body = bottle.json()
    assert (body["unit"], body["net_quantity"], body["ratio"]) == (
        "H87",
        5.0,
        {"min": 0.9, "max": 1.01},
    )
    assert register(client, world, "admin", cooperative_id=world.coop_b).status_code == 409
    admin = client.post(
        "/api/v1/products",
        json={"gtin": "614141000036", "name": "x", "category": "other"},
        headers=world.auth("admin"),
    )
    assert admin.status_code == 422 and "cooperative_id is needed" in admin.text


def test_lot_page(client: TestClient, world: World, chain: Chain) -> None:
    assert capture_doc(client, world, "manager", season(chain)).status_code == 202
    lot = client.get(f"/api/v1/lots/{RAPESEED}/RS-2025-001").json()
    assert lot["product"] == "油菜籽" and lot["origin"] == "harvest"
    assert (lot["quantity"], lot["remaining"], lot["unit"]) == (1800.0, 800.0, "KGM")
    assert lot["uri"] == f"https://dv.test/01/{RAPESEED}/10/RS-2025-001"
    assert lot["trace"] == f"/api/v1/trace/{RAPESEED}/RS-2025-001"
    assert client.get(f"/api/v1/lots/{RAPESEED}/NOPE").status_code == 404


def test_a_certificate_for_a_lot(client: TestClient, world: World, chain: Chain) -> None:
    assert capture_doc(client, world, "manager", season(chain)).status_code == 202
    response = client.post(
        f"/api/v1/lots/{OIL}/OIL-2025-007/certificates",
        json={
            "contact": "0838-6200001",
            "basis": ["self_testing", "commissioned_testing"],
            "issued_on": "2025-06-05",
        },
        headers=world.auth("manager"),
    )
    assert response.status_code == 201, response.text
    certificate = response.json()
    assert certificate["product"] == "天府菜油"
    assert (certificate["quantity"], certificate["unit"]) == (360.0, "LTR")
    # 产地 from the parcels the oil came from, through the rapeseed lot.
    assert certificate["origin"] == "旌阳区孝泉镇民安村"
    assert certificate["issuer"] == "民安油菜专业合作社"
    assert [b["label"] for b in certificate["basis"]] == ["委托检测", "自我检测"]
    assert [c["label"] for c in certificate["commitments"]] == [
        "不使用禁用农药兽药",
        "不使用停用兽药和非法添加物",
        "常规农药兽药残留不超标",
    ]
    assert certificate["number"].endswith("-20250605-0001")
    assert certificate["qr_uri"] == f"https://dv.test/api/v1/certificates/{certificate['number']}"
    png = client.get(certificate["qr_code"])
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG")
    svg = client.get(certificate["qr_code"].removesuffix(".png") + ".svg")
    assert svg.status_code == 200 and b'width="25mm"' in svg.content
    assert client.get("/api/v1/certificates/NOPE/qr.png").status_code == 404
    # The issuer sees the contact it gave; the public certificate (its QR code's answer) omits
    # the phone number, as the consumer page and the linkset do.
    assert certificate["contact"] == "0838-6200001"
    shown = client.get(f"/api/v1/certificates/{certificate['number']}")
    assert shown.status_code == 200
    assert shown.json() == {k: v for k, v in certificate.items() if k != "contact"}
    assert "6200001" not in shown.text
    entry = orjson.loads(client.get(f"/api/v1/ledger/entries/{certificate['ledger_seq']}").content)
    assert entry["chain"]["key"] == f"lot:{OIL}/OIL-2025-007"
    assert entry["data"]["number"] == certificate["number"]
    lot = client.get(f"/api/v1/lots/{OIL}/OIL-2025-007").json()
    assert lot["certificates"] == [certificate["number"]]


def test_certificate_input_is_checked(client: TestClient, world: World, chain: Chain) -> None:
    assert capture_doc(client, world, "manager", season(chain)).status_code == 202
    url = f"/api/v1/lots/{OIL}/OIL-2025-007/certificates"
    headers = world.auth("manager")
    bad_basis = client.post(url, json={"contact": "1", "basis": ["vibes"]}, headers=headers)
    assert bad_basis.status_code == 422 and "basis must name" in bad_basis.text
    too_much = client.post(
        url, json={"contact": "1", "basis": ["self_testing"], "quantity": 400}, headers=headers
    )
    assert too_much.status_code == 422 and "more than lot OIL-2025-007 ever held" in too_much.text
    missing = client.post(
        f"/api/v1/lots/{OIL}/NOPE/certificates",
        json={"contact": "1", "basis": ["self_testing"]},
        headers=headers,
    )
    assert missing.status_code == 404
