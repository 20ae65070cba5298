"""Who may change a parcel's holders, and that recorded history is not rewritten by accident.

The attack these tests replay: a manager of one cooperative hands itself a parcel that a member
household of another cooperative of the same village contracts, from a day before harvests
already recorded on it, then harvests it while the real household is refused.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from fastapi.testclient import TestClient
from shapely.geometry import mapping

from digital_village.trace import builders
from tests.conftest import World
from tests.factories import GROUP, VILLAGE, make_uscc
from tests.parcels.conftest import field

BASE = "https://dv.test"
RAPESEED = "06901234500011"


def _post(client: TestClient, path: str, body: Any, headers: dict[str, str]) -> Any:
    response = client.post(path, json=body, headers=headers)
    assert response.status_code < 300, response.text
    return response.json()


def _neighbours(client: TestClient, world: World) -> dict[str, Any]:
    """Cooperative C of the same village as A, its member household, and that household's
    parcel with a planting on 2025-03-01 and a harvest on 2025-05-20."""
    admin = world.auth("admin")
    coop = _post(
        client,
        "/api/v1/cooperatives",
        {"uscc": make_uscc(3), "name": "民安粮油合作社", "region_code": VILLAGE},
        admin,
    )["id"]
    household = _post(
        client,
        "/api/v1/households",
        {"region_code": GROUP, "name": "陈德明", "cooperative_id": coop},
        admin,
    )["id"]
    farmer = _post(
        client, "/api/v1/tokens", {"role": "farmer", "household": str(household)}, admin
    )["token"]
    parcel = _post(
        client,
        "/api/v1/parcels",
        {
            "fbfbm": GROUP,
            "geometry": mapping(field(0, 0)),
            "land_use": "0101",
            "valid_from": "2024-01-01",
            "contractor_household_id": household,
        },
        admin,
    )["properties"]["dkbm"]
    _post(
        client,
        "/api/v1/products",
        {"gtin": RAPESEED, "name": "油菜籽", "category": "rapeseed", "cooperative_id": coop},
        admin,
    )
    farmer_auth = {"Authorization": f"Bearer {farmer}"}
    planting = builders.field_work("planting", dkbm=parcel, when=_at(2025, 3, 1), base_url=BASE)
    _post(client, "/api/v1/events", planting, farmer_auth)
    harvest = builders.harvest(
        gtin=RAPESEED,
        lot="CH-1",
        kilograms=900.0,
        dkbms=[parcel],
        when=_at(2025, 5, 20),
        base_url=BASE,
    )
    _post(client, "/api/v1/events", harvest, admin)
    return {"coop": coop, "household": household, "farmer": farmer_auth, "parcel": parcel}


def _at(year: int, month: int, day: int) -> dt.datetime:
    return dt.datetime(year, month, day, 9, tzinfo=builders.CHINA)


def test_a_manager_cannot_take_over_and_backdate_another_cooperatives_parcel(
    client: TestClient, world: World
) -> None:
    c = _neighbours(client, world)
    takeover = client.post(
        f"/api/v1/parcels/{c['parcel']}/changes",
        json={
            "valid_from": "2025-01-01",
            "contractor_household_id": world.household_a,
            "operator_cooperative_id": world.coop_a,
        },
        headers=world.auth("manager"),
    )
    assert takeover.status_code == 403, takeover.text
    assert takeover.headers["content-type"].startswith("application/problem+json")
    assert c["parcel"] in takeover.json()["detail"]
    history = client.get(f"/api/v1/parcels/{c['parcel']}/history").json()
    assert [h["valid_to"] for h in history["holdings"]] == [None]
    # The manager's own household may not harvest it; the real household still works it.
    stolen = builders.harvest(
        gtin=RAPESEED,
        lot="CH-2",
        kilograms=500.0,
        dkbms=[c["parcel"]],
        when=_at(2025, 6, 1),
        base_url=BASE,
    )
    assert client.post("/api/v1/events", json=stolen, headers=world.auth("farmer")).status_code == (
        403
    )
    irrigating = builders.field_work(
        "irrigating", dkbm=c["parcel"], when=_at(2025, 6, 2), base_url=BASE
    )
    work = client.post("/api/v1/events", json=irrigating, headers=c["farmer"])
    assert work.status_code == 201, work.text


def test_holders_change_only_after_recorded_events_unless_an_admin_corrects_history(
    client: TestClient, world: World
) -> None:
    c = _neighbours(client, world)
    path = f"/api/v1/parcels/{c['parcel']}/changes"
    lease = {"valid_from": "2025-05-20", "operator_cooperative_id": c["coop"]}
    manager_c = _post(
        client,
        "/api/v1/tokens",
        {"role": "manager", "cooperative": make_uscc(3)},
        world.auth("admin"),
    )["token"]
    as_c = {"Authorization": f"Bearer {manager_c}"}
    for headers in (world.auth("admin"), as_c):
        refused = client.post(path, json=lease, headers=headers)
        assert refused.status_code == 409, refused.text
        assert "up to 2025-05-20" in refused.json()["detail"]
    # Correcting history is the admin's, even for the household's own cooperative.
    correction = {**lease, "valid_from": "2025-01-01", "correction": "合同 2024-12-20, 登记晚了"}
    assert client.post(path, json=correction, headers=as_c).status_code == 403
    fixed = client.post(path, json=correction, headers=world.auth("admin"))
    assert fixed.status_code == 200, fixed.text
    history = client.get(f"/api/v1/parcels/{c['parcel']}/history").json()
    assert [(h["valid_from"], h["valid_to"]) for h in history["holdings"]] == [
        ("2024-01-01", "2025-01-01"),
        ("2025-01-01", None),
    ]
    entry = client.get(f"/api/v1/ledger/entries/{history['holdings'][-1]['ledger_seq']}")
    data = json.loads(entry.content)["data"]
    assert data["correction"] == correction["correction"]
    assert data["valid_from"] == "2025-01-01" and data["operator"] == make_uscc(3)
    # The day after the last recorded event is open to the cooperative's manager.
    after = client.post(
        path, json={"valid_from": "2025-05-21", "operator_cooperative_id": None}, headers=as_c
    )
    assert after.status_code == 200, after.text
