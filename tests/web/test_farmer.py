"""The parcel page a sign opens: public facts, read-only without a token, and the field-work
form's event going through the capture path onto the ledger."""

from __future__ import annotations

import datetime as dt
import re

from fastapi.testclient import TestClient

from digital_village.demo import oil_season as seasons
from digital_village.trace.vocab import DV_BIZSTEP
from tests.web.conftest import BASE, PERSONAL, Pages, html_of


def test_the_parcel_page_shows_the_parcel_read_only(
    pages_client: TestClient, pages_db: Pages
) -> None:
    dkbm = pages_db.season.parcels[0]
    html = html_of(pages_client, f"/p/{dkbm}")
    assert '<html lang="zh-CN">' in html
    assert "地块 00001" in html and "孝泉镇民安村一组" in html
    assert "5.88 亩" in html and "旱地" in html
    assert re.search(rf"<dd data-dkbm><span data-fact=\"\d+\"[^>]*>{dkbm}</span></dd>", html)
    assert '<svg class="map"' in html and "00002" in html  # the neighbour, greyed
    assert 'data-farmer-form data-state="signed-out"' in html
    assert "只读" in html
    assert f'data-parcel-uri="{BASE}/p/{dkbm}"' in html
    # The season's field work on this parcel, newest first.
    steps = re.findall(r'data-step="(step_\w+)"', html)
    assert steps[:2] == ["step_harvesting", "step_spraying"]
    assert "吡虫啉 10% 可湿性粉剂" in html
    for secret in PERSONAL:
        assert secret not in html
    english = html_of(pages_client, f"/p/{dkbm}?lang=en")
    assert "Parcel 00001" in english and "dry land" in english and "Read only" in english


def test_the_harvest_form_offers_the_cooperatives_crops(
    pages_client: TestClient, pages_db: Pages
) -> None:
    html = html_of(pages_client, f"/p/{pages_db.season.parcels[0]}")
    options = re.findall(r'<option value="(\d{14})">([^<]+)</option>', html)
    assert options == [(seasons.RAPESEED, "油菜籽")]
    other = html_of(pages_client, f"/p/{pages_db.other_parcel}")
    assert re.findall(r'<option value="(\d{14})">', other) == []


def form_event(dkbm: str, work: str, **extensions: object) -> dict[str, object]:
    """The event static/farmer.js builds for field work (kept in step with buildEvent)."""
    uri = f"{BASE}/p/{dkbm}"
    return {
        "type": "ObjectEvent",
        "eventTime": dt.datetime.now(dt.timezone(dt.timedelta(hours=8)))
        .replace(microsecond=0)
        .isoformat(),
        "eventTimeZoneOffset": "+08:00",
        "bizStep": f"{DV_BIZSTEP}{work}",
        "readPoint": {"id": uri},
        "action": "OBSERVE",
        "epcList": [],
        "bizLocation": {"id": uri},
        **extensions,
    }


def test_the_forms_event_is_recorded_on_the_ledger_and_shown(
    pages_client: TestClient, pages_db: Pages
) -> None:
    dkbm = pages_db.parcels[2]
    event = form_event(
        dkbm,
        "spraying",
        **{
            "dv:pesticideName": "吡唑醚菌酯 25% 悬浮剂",
            "dv:dose": {"dv:quantity": 30, "dv:uom": "MLT"},
            "dv:preHarvestIntervalDays": 21,
            "dv:note": "东边一半",
        },
    )
    response = pages_client.post(
        "/api/v1/events", json=event, headers=pages_db.world.auth("farmer")
    )
    assert response.status_code == 201, response.text
    seq = response.json()["ledgerSeq"]
    html = html_of(pages_client, f"/p/{dkbm}")
    assert re.findall(r'data-step="(step_\w+)"', html)[0] == "step_spraying"
    assert "吡唑醚菌酯 25% 悬浮剂" in html and "30 mL" in html and "东边一半" in html
    assert f'href="/api/v1/ledger/entries/{seq}/proof"' in html
    # A farmer of another household may not record work on this parcel.
    other = form_event(pages_db.other_parcel, "irrigating")
    refused = pages_client.post("/api/v1/events", json=other, headers=pages_db.world.auth("farmer"))
    assert refused.status_code == 403


def test_bad_and_unknown_parcel_codes(pages_client: TestClient, pages_db: Pages) -> None:
    bad = pages_client.get("/p/12345", headers={"Accept": "text/html"})
    # In the reader's language: the Chinese page in Chinese, the English one with the detail.
    assert bad.status_code == 400 and "链接格式有误" in bad.text
    assert "DKBM must be 19 digits" not in bad.text
    english = pages_client.get("/p/12345", headers={"Accept": "text/html", "Accept-Language": "en"})
    assert "DKBM must be 19 digits" in english.text
    client = pages_client.get("/p/12345", headers={"Accept": "application/json"})
    assert client.status_code == 400
    assert client.headers["content-type"] == "application/problem+json"
    unknown = pages_client.get("/p/5106031012010199999", headers={"Accept": "text/html"})
    assert unknown.status_code == 404 and "没有找到" in unknown.text
    moved = pages_client.get(
        f"/p/{pages_db.parcels[0]}",
        headers={"Accept": "application/json"},
        follow_redirects=False,
    )
    assert moved.status_code == 303
    assert moved.headers["location"] == f"/api/v1/parcels/{pages_db.parcels[0]}"


def test_the_parcels_a_token_may_record_on_by_role(
    pages_client: TestClient, pages_db: Pages
) -> None:
    """GET /api/v1/farmer/parcels: a farmer's household's parcels, a manager's members', any
    for an admin; nothing without a token, and nothing for a device."""
    world = pages_db.world
    path = "/api/v1/farmer/parcels"
    assert pages_client.get(path).status_code == 401
    assert pages_client.get(path, headers=world.auth("device")).status_code == 403
    farmer = pages_client.get(path, headers=world.auth("farmer")).json()
    assert farmer["role"] == "farmer" and farmer["household"].startswith("5106")
    assert pages_db.parcels[0] in farmer["parcels"]
    assert pages_db.other_parcel not in farmer["parcels"]
    assert farmer["parcels"] == sorted(farmer["parcels"]) and not farmer["any_parcel"]
    manager = pages_client.get(path, headers=world.auth("manager")).json()
    assert set(farmer["parcels"]) <= set(manager["parcels"]) and manager["household"] is None
    admin = pages_client.get(path, headers=world.auth("admin")).json()
    assert admin["any_parcel"] is True and admin["parcels"] == []
