"""Who may read sensor readings, and whose readings an alert may carry.

Consumers see the per-day summaries of a parcel's growing conditions (what the consumer page
shows, each day sealed on the ledger); raw readings, the latest values and a single reading's
proof are for the device's own cooperative, an admin, or the device itself. An alert rule is a
cooperative's, on a parcel it or its members hold, and carries only its own devices' readings.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from fastapi.testclient import TestClient
from shapely.geometry import mapping

from tests.conftest import World
from tests.factories import GROUP, OTHER_VILLAGE
from tests.parcels.conftest import field


def _parcel(client: TestClient, world: World, col: int, **extra: Any) -> str:
    body = {
        "fbfbm": extra.pop("fbfbm", GROUP),
        "geometry": mapping(field(col, 0)),
        "land_use": "0101",
        "valid_from": "2024-01-01",
        **extra,
    }
    made = client.post("/api/v1/parcels", json=body, headers=world.auth("admin"))
    assert made.status_code == 201, made.text
    dkbm: str = made.json()["properties"]["dkbm"]
    return dkbm


def _device(client: TestClient, world: World, dkbm: str, coop: int) -> tuple[int, str]:
    body = {"model": "generic", "parcel": dkbm, "cooperative": str(coop)}
    made = client.post("/api/v1/devices", json=body, headers=world.auth("admin"))
    assert made.status_code == 201, made.text
    return made.json()["device_id"], made.json()["token"]


def _send(client: TestClient, token: str, moisture: float, ahead_s: int) -> None:
    """A reading a few seconds from now (after the probe's installation, within the 5 minutes
    ahead that ingest allows)."""
    when = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=ahead_s)).isoformat()
    body = {"readings": [{"metric": "soil_moisture", "time": when, "value": moisture}]}
    sent = client.post("/api/v1/telemetry", json=body, headers={"Authorization": f"Bearer {token}"})
    assert sent.status_code == 200 and sent.json()["accepted"] == 1, sent.text


@pytest.fixture
def field_with_two_cooperatives_probes(client: TestClient, world: World) -> dict[str, Any]:
    """A parcel of a cooperative A member with a probe of A and a probe of cooperative B."""
    dkbm = _parcel(client, world, 0, contractor_household_id=world.household_a)
    probe_a, token_a = _device(client, world, dkbm, world.coop_a)
    probe_b, token_b = _device(client, world, dkbm, world.coop_b)
    _send(client, token_a, 21.0, 30)
    _send(client, token_b, 9.0, 20)
    return {"dkbm": dkbm, "a": probe_a, "b": probe_b, "token_a": token_a, "token_b": token_b}


def test_raw_readings_need_a_token_of_the_devices_own(
    client: TestClient, world: World, field_with_two_cooperatives_probes: dict[str, Any]
) -> None:
    f = field_with_two_cooperatives_probes
    own = {"Authorization": f"Bearer {f['token_a']}"}
    routes = [
        f"/api/v1/devices/{f['a']}/readings?metric=soil_moisture",
        f"/api/v1/devices/{f['a']}/readings?metric=soil_moisture&bucket=1d",
        f"/api/v1/devices/{f['a']}/latest",
        f"/api/v1/parcels/{f['dkbm']}/readings?metric=soil_moisture",
    ]
    for path in routes:
        assert client.get(path).status_code == 401, path
        assert client.get(path, headers=world.auth("admin")).status_code == 200, path
        assert client.get(path, headers=world.auth("manager")).status_code == 200, path
        assert client.get(path, headers=world.auth("farmer")).status_code == 403, path
    for path in routes[:3]:
        assert client.get(path, headers=own).status_code == 200, path
        other = path.replace(f"/devices/{f['a']}/", f"/devices/{f['b']}/")
        assert client.get(other, headers=world.auth("manager")).status_code == 403, other
        assert client.get(other, headers=own).status_code == 403, other
    # The parcel's raw readings as cooperative A's manager: its own probe's only.
    mine = client.get(routes[3], headers=world.auth("manager")).json()["readings"]
    assert {r["device_id"] for r in mine} == {f["a"]}
    everything = client.get(routes[3], headers=world.auth("admin")).json()["readings"]
    assert {r["device_id"] for r in everything} == {f["a"], f["b"]}
    # What consumers see: the parcel's per-day summaries, public.
    day = dt.datetime.now(dt.UTC).date().isoformat()
    conditions = client.get(f"/api/v1/parcels/{f['dkbm']}/conditions?from={day}&to={day}")
    assert conditions.status_code == 200, conditions.text


def test_a_readings_proof_needs_the_same_token(
    client: TestClient, world: World, field_with_two_cooperatives_probes: dict[str, Any]
) -> None:
    f = field_with_two_cooperatives_probes
    path = f"/api/v1/devices/{f['b']}/readings/proof?metric=soil_moisture&time=1700000000000"
    assert client.get(path).status_code == 401
    assert client.get(path, headers=world.auth("manager")).status_code == 403
    # Known to its own: the reading is not sealed yet, which it may be told.
    assert client.get(path, headers=world.auth("admin")).status_code in (404, 409, 422)


def test_alert_rules_stay_within_a_cooperative(
    client: TestClient, world: World, field_with_two_cooperatives_probes: dict[str, Any]
) -> None:
    f = field_with_two_cooperatives_probes
    other = _parcel(
        client, world, 1, fbfbm=OTHER_VILLAGE + "00", contractor_household_id=world.household_b
    )
    rule = {"parcel": other, "metric": "soil_moisture", "below": 15}
    refused = client.post("/api/v1/alert-rules", json=rule, headers=world.auth("manager"))
    assert refused.status_code == 403, refused.text
    # On A's own parcel, the rule raises alerts from A's probe only, never B's readings there.
    rule = {"parcel": f["dkbm"], "metric": "soil_moisture", "below": 15}
    made = client.post("/api/v1/alert-rules", json=rule, headers=world.auth("manager"))
    assert made.status_code == 201, made.text
    _send(client, f["token_b"], 8.0, 10)
    _send(client, f["token_a"], 7.5, 5)
    raised = client.get("/api/v1/alerts", headers=world.auth("manager")).json()
    assert [(a["device_id"], a["value"]) for a in raised] == [(f["a"], 7.5)]
