"""Lot numbers may hold "/" (GS1 AI 10 allows it; a URI percent-encodes it as %2F): every route
that names a lot finds it, the trace route does not take its second half for a serial, and the
consumer page's language link keeps it encoded."""

from __future__ import annotations

from fastapi.testclient import TestClient

from digital_village.trace import builders
from tests.conftest import World
from tests.trace.conftest import BASE, RAPESEED, Chain, at, post_event

LOT = "RS/2025-01"
ENCODED = "RS%2F2025-01"


def _harvested(client: TestClient, world: World, chain: Chain) -> None:
    event = builders.harvest(
        gtin=RAPESEED,
        lot=LOT,
        kilograms=800.0,
        dkbms=[chain.own[0]],
        when=at(5, 20),
        base_url=BASE,
    )
    made = post_event(client, world, "manager", event)
    assert made.status_code == 201, made.text


def test_every_route_finds_a_lot_with_a_slash(
    client: TestClient, world: World, chain: Chain
) -> None:
    _harvested(client, world, chain)
    lot = client.get(f"/api/v1/lots/{RAPESEED}/{ENCODED}")
    assert lot.status_code == 200, lot.text
    assert lot.json()["lot"] == LOT
    assert client.get(f"/api/v1/lots/{RAPESEED}/{ENCODED}/epcis").status_code == 200
    trace = client.get(f"/api/v1/trace/{RAPESEED}/{ENCODED}")
    assert trace.status_code == 200, trace.text
    lots = [n for n in trace.json()["nodes"] if n.get("type") == "lot"]
    assert any(n.get("lot") == LOT for n in lots), lots
    svg = client.get(f"/api/v1/labels/{RAPESEED}/{ENCODED}.svg")
    assert svg.status_code == 200, svg.text
    certificate = client.post(
        f"/api/v1/lots/{RAPESEED}/{ENCODED}/certificates",
        json={"contact": "0838-6200000", "basis": ["self_testing"]},
        headers=world.auth("manager"),
    )
    assert certificate.status_code == 201, certificate.text
    assert certificate.json()["lot"] == LOT
    # The consumer page of the lot links to itself in English with the lot still encoded.
    page = client.get(f"/01/{RAPESEED}/10/{ENCODED}", headers={"Accept": "text/html"})
    assert page.status_code == 200, page.text[:300]
    assert f'href="/page/01/{RAPESEED}/10/{ENCODED}?lang=en"' in page.text


def test_a_label_sheet_for_a_lot_that_does_not_exist_is_404(
    client: TestClient, world: World, chain: Chain
) -> None:
    sheet = client.get(
        f"/api/v1/labels/{RAPESEED}/NO-SUCH-LOT/sheet.pdf?serials=0001-0010",
        headers=world.auth("manager"),
    )
    assert sheet.status_code == 404, sheet.text
    assert "NO-SUCH-LOT" in sheet.json()["detail"]


def test_household_names_and_villages_are_checked(client: TestClient, world: World) -> None:
    from tests.factories import GROUP, OTHER_VILLAGE

    nul = client.post(
        "/api/v1/households",
        json={"region_code": GROUP, "name": "王\x00建国", "cooperative_id": world.coop_a},
        headers=world.auth("manager"),
    )
    assert nul.status_code == 422, nul.text
    elsewhere = client.post(
        "/api/v1/households",
        json={"region_code": OTHER_VILLAGE, "name": "赵玉兰", "cooperative_id": world.coop_a},
        headers=world.auth("manager"),
    )
    assert elsewhere.status_code == 403, elsewhere.text
    assert (
        client.post(
            "/api/v1/households",
            json={"region_code": OTHER_VILLAGE, "name": "赵玉兰", "cooperative_id": world.coop_a},
            headers=world.auth("admin"),
        ).status_code
        == 201
    )
