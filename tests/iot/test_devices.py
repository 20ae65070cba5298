"""Devices: registration on the map, positions, tokens, scopes, and the ledger record."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from digital_village.db import Database
from digital_village.ledger.log import get_entry
from digital_village.parcels import service as parcels
from tests.conftest import World
from tests.iot.conftest import Farm, iso, recent

DEVICES = "/api/v1/devices"


def test_a_manager_registers_a_device_and_its_token_writes(
    client: TestClient, farm: Farm, world: World, db: Database
) -> None:
    response = client.post(
        DEVICES,
        json={
            "model": "em500-smtc",
            "parcel": farm.parcels[0],
            "dev_eui": "24-E1-24-12-6B-00-00-09",
        },
        headers=world.auth("manager"),
    )
    assert response.status_code == 201, response.text
    made = response.json()
    assert made["model"] == "EM500-SMTC"
    assert made["dev_eui"] == "24E124126B000009"
    assert made["cooperative_id"] == world.coop_a
    assert made["metrics"] == ["soil_moisture", "soil_temperature", "soil_ec"]
    assert made["parcel"] == farm.parcels[0]
    assert made["token"].startswith("dv_")
    # The default position is a point on the parcel.
    installation = made["installations"][0]
    with db.session() as session:
        shape = parcels.parcel_geometry(parcels.get_parcel(session=session, dkbm=farm.parcels[0]))
        assert shape.contains(__import__("shapely").Point(installation["lon"], installation["lat"]))
        entry = json.loads(get_entry(session, installation["ledger_seq"]).body)
    assert entry["kind"] == "iot.device.installed"
    assert entry["data"]["parcel"] == farm.parcels[0]
    assert entry["data"]["device"] == made["device_id"]
    written = client.post(
        "/api/v1/telemetry",
        json={"soil_ec": 0.31},
        headers={"Authorization": f"Bearer {made['token']}"},
    )
    assert written.json()["accepted"] == 1
    listed = client.get(DEVICES, headers=world.auth("manager")).json()
    assert made["device_id"] in [device["id"] for device in listed]
    assert client.get(DEVICES, headers=world.auth("device")).status_code == 403


def test_the_position_must_lie_on_the_parcel(
    client: TestClient, farm: Farm, world: World, db: Database
) -> None:
    with db.session() as session:
        first = parcels.parcel_geometry(parcels.get_parcel(session=session, dkbm=farm.parcels[0]))
        second = parcels.parcel_geometry(parcels.get_parcel(session=session, dkbm=farm.parcels[1]))
    inside = first.representative_point()
    elsewhere = second.representative_point()
    ok = client.post(
        DEVICES,
        json={"model": "generic", "parcel": farm.parcels[0], "lon": inside.x, "lat": inside.y},
        headers=world.auth("manager"),
    )
    assert ok.status_code == 201, ok.text
    outside = client.post(
        DEVICES,
        json={
            "model": "generic",
            "parcel": farm.parcels[0],
            "lon": elsewhere.x,
            "lat": elsewhere.y,
        },
        headers=world.auth("manager"),
    )
    assert outside.status_code == 422
    assert f"is not on parcel {farm.parcels[0]}" in outside.json()["detail"]
    assert "m outside it" in outside.json()["detail"]
    located = client.post(
        DEVICES,
        json={"model": "generic", "lon": elsewhere.x, "lat": elsewhere.y},
        headers=world.auth("manager"),
    )
    assert located.status_code == 201
    assert located.json()["parcel"] == farm.parcels[1]
    nowhere = client.post(
        DEVICES, json={"model": "generic", "lon": 104.0, "lat": 31.0}, headers=world.auth("manager")
    )
    assert nowhere.status_code == 422
    assert "no active parcel" in nowhere.json()["detail"]


def test_registration_refuses_bad_input_with_reasons(
    client: TestClient, farm: Farm, world: World
) -> None:
    manager = world.auth("manager")
    cases = [
        (
            {"model": "SenseCAP S2105", "parcel": farm.parcels[0]},
            422,
            "known models: DL-5TM, EM500-SMTC, LSE01, generic",
        ),
        (
            {"model": "generic", "parcel": farm.parcels[0], "metrics": ["soil_wetness"]},
            422,
            "known metrics: soil_moisture",
        ),
        ({"model": "generic", "parcel": farm.parcels[0], "dev_eui": "xyz"}, 422, "16 hex digits"),
        ({"model": "generic", "parcel": "5106031012010199999"}, 404, "no parcel"),
        ({"model": "generic"}, 422, "say where the device is"),
        ({"model": "generic", "parcel": farm.parcels[0], "lon": 104.2}, 422, "both lon and lat"),
        (
            {"model": "generic", "parcel": farm.parcels[0], "installed_at": "2030-01-01T00:00:00Z"},
            422,
            "future",
        ),
    ]
    for body, status, message in cases:
        response = client.post(DEVICES, json=body, headers=manager)
        assert response.status_code == status, (body, response.text)
        assert message in response.json()["detail"], response.json()["detail"]
    taken = client.post(
        DEVICES,
        json={"model": "DL-5TM", "parcel": farm.parcels[0], "dev_eui": "70b3d57ba0000001"},
        headers=manager,
    )
    assert taken.status_code == 409
    assert f"already registered to device {farm.device_id}" in taken.json()["detail"]


def test_a_manager_installs_only_on_land_its_cooperative_holds(
    client: TestClient, farm: Farm, world: World
) -> None:
    # The third field is operated by cooperative B.
    response = client.post(
        DEVICES, json={"model": "generic", "parcel": farm.parcels[2]}, headers=world.auth("manager")
    )
    assert response.status_code == 403
    detail = response.json()["detail"]
    assert f"parcel {farm.parcels[2]} is held neither by 民安油菜专业合作社 (" in detail
    assert f"cooperative {world.coop_a}" not in detail
    admin = client.post(
        DEVICES, json={"model": "generic", "parcel": farm.parcels[2]}, headers=world.auth("admin")
    )
    assert admin.status_code == 201
    assert admin.json()["cooperative_id"] == world.coop_b  # the parcel's operator


def test_moves_and_token_rotation_through_the_api(
    client: TestClient, farm: Farm, world: World
) -> None:
    moved = client.post(
        f"{DEVICES}/{farm.device_id}/moves",
        json={"parcel": farm.parcels[1]},
        headers=world.auth("manager"),
    )
    assert moved.status_code == 201, moved.text
    assert moved.json()["parcel_dkbm"] == farm.parcels[1]
    back_then = client.post(
        f"{DEVICES}/{farm.device_id}/moves",
        json={"parcel": farm.parcels[0], "at": "2025-06-01T00:00:00Z"},
        headers=world.auth("manager"),
    )
    assert back_then.status_code == 422
    assert "a move must come after that" in back_then.json()["detail"]
    # A reading before the move belongs to the first installation and is still accepted.
    earlier = client.post(
        "/api/v1/telemetry",
        json={"readings": [{"metric": "battery", "time": iso(recent(60 * 24)), "value": 3.6}]},
        headers=farm.auth(),
    )
    assert earlier.json()["accepted"] == 1
    history = client.get(f"{DEVICES}/{farm.device_id}").json()["installations"]
    assert [row["parcel_dkbm"] for row in history] == farm.parcels[:2]
    assert history[0]["removed_at"] is not None
