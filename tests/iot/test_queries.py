"""Reading queries: ranges, buckets, latest values, per-parcel daily summaries, and alerts."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from fastapi.testclient import TestClient

from digital_village.iot import readings, seal
from tests.conftest import World
from tests.iot.conftest import Farm


def china(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=readings.CHINA_TIME)


def post(
    client: TestClient, farm: Farm, items: list[tuple[str, dt.datetime, float]]
) -> dict[str, Any]:
    payload = {"readings": [{"metric": m, "time": t.isoformat(), "value": v} for m, t, v in items]}
    body: dict[str, Any] = client.post(
        "/api/v1/telemetry", json=payload, headers=farm.auth()
    ).json()
    return body


@pytest.fixture
def two_days(client: TestClient, farm: Farm) -> dt.date:
    """Every 15 minutes for two China days: moisture 20 at night, 40 by day; temperature too."""
    first = seal.today() - dt.timedelta(days=3)
    items = []
    for day in (first, first + dt.timedelta(days=1)):
        for quarter in range(96):
            moment = china(day, quarter // 4, 15 * (quarter % 4))
            daytime = 6 <= moment.hour < 18
            items.append(("soil_moisture", moment, 40.0 if daytime else 20.0))
            items.append(("soil_temperature", moment, 18.0 + moment.hour / 2))
    assert post(client, farm, items)["accepted"] == 384
    return first


def test_raw_range_is_half_open_and_ordered(
    client: TestClient, farm: Farm, two_days: dt.date
) -> None:
    start = china(two_days, 6)
    body = client.get(
        f"/api/v1/devices/{farm.device_id}/readings",
        params={
            "metric": "soil_moisture",
            "from": start.isoformat(),
            "to": (start + dt.timedelta(hours=1)).isoformat(),
        },
        headers=farm.reader,
    ).json()
    assert body["unit"] == "%"
    times = [point["time"] for point in body["readings"]]
    assert len(times) == 4 and times == sorted(times)
    assert times[0] == start.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )
    assert body["truncated"] is False
    limited = client.get(
        f"/api/v1/devices/{farm.device_id}/readings",
        params={"metric": "soil_moisture", "from": start.isoformat(), "limit": 3},
        headers=farm.reader,
    ).json()
    assert len(limited["readings"]) == 3 and limited["truncated"] is True


def test_hour_and_day_buckets(client: TestClient, farm: Farm, two_days: dt.date) -> None:
    url = f"/api/v1/devices/{farm.device_id}/readings"
    window = {
        "from": china(two_days, 0).isoformat(),
        "to": china(two_days + dt.timedelta(days=2), 0).isoformat(),
    }
    hourly = client.get(
        url, params={"metric": "soil_temperature", "bucket": "1h", **window}, headers=farm.reader
    ).json()
    assert len(hourly["buckets"]) == 48
    assert hourly["buckets"][13] == {
        "start": china(two_days, 13).astimezone(dt.UTC).isoformat().replace("+00:00", ".000Z"),
        "count": 4,
        "min": 24.5,
        "max": 24.5,
        "mean": 24.5,
    }
    daily = client.get(
        url, params={"metric": "soil_moisture", "bucket": "1d", **window}, headers=farm.reader
    ).json()
    # Day buckets start at China midnight.
    assert [b["count"] for b in daily["buckets"]] == [96, 96]
    assert daily["buckets"][0]["start"].endswith("T16:00:00.000Z")
    assert daily["buckets"][0]["mean"] == pytest.approx(30.0)
    assert (daily["buckets"][0]["min"], daily["buckets"][0]["max"]) == (20.0, 40.0)


def test_query_parameters_are_checked(client: TestClient, farm: Farm) -> None:
    url = f"/api/v1/devices/{farm.device_id}/readings"
    cases = [
        ({"metric": "soil_wetness"}, "known metrics"),
        ({"metric": "soil_moisture", "bucket": "1w"}, "15m, 1h, 6h or 1d"),
        (
            {
                "metric": "soil_moisture",
                "from": "2026-05-02T00:00:00Z",
                "to": "2026-05-01T00:00:00Z",
            },
            "before",
        ),
        ({"metric": "soil_moisture", "from": "last tuesday"}, "from:"),
    ]
    for params, message in cases:
        response = client.get(url, params=params, headers=farm.reader)
        assert response.status_code == 422, response.text
        assert message in response.json()["detail"]
    assert client.get(url, headers=farm.reader).status_code == 422  # metric is required
    assert (
        client.get(
            "/api/v1/devices/999999/readings", params={"metric": "battery"}, headers=farm.reader
        ).status_code
        == 404
    )


def test_latest_values_per_metric(client: TestClient, farm: Farm, two_days: dt.date) -> None:
    latest = client.get(f"/api/v1/devices/{farm.device_id}/latest", headers=farm.reader).json()[
        "latest"
    ]
    assert set(latest) == {"soil_moisture", "soil_temperature"}
    last = china(two_days + dt.timedelta(days=1), 23, 45)
    assert latest["soil_temperature"]["value"] == 18.0 + 23 / 2
    assert latest["soil_temperature"]["time"] == last.astimezone(dt.UTC).isoformat(
        timespec="milliseconds"
    ).replace("+00:00", "Z")


def test_parcel_daily_conditions_for_the_consumer_page(
    client: TestClient, farm: Farm, two_days: dt.date
) -> None:
    body = client.get(
        f"/api/v1/parcels/{farm.parcels[0]}/conditions",
        params={"from": two_days.isoformat(), "to": (two_days + dt.timedelta(days=1)).isoformat()},
    ).json()
    assert body["metrics"] == {"soil_moisture": "%", "soil_temperature": "°C"}
    assert [day["day"] for day in body["days"]] == [
        two_days.isoformat(),
        (two_days + dt.timedelta(days=1)).isoformat(),
    ]
    first = body["days"][0]
    assert first["soil_moisture"] == {"min": 20.0, "mean": 30.0, "max": 40.0, "count": 96}
    assert first["soil_temperature"]["min"] == 18.0
    assert first["soil_temperature"]["max"] == 18.0 + 23 / 2
    assert "seals" not in first
    other = client.get(f"/api/v1/parcels/{farm.parcels[1]}/conditions").json()
    assert other["days"] == []


def test_parcel_readings_merge_the_devices_installed_there(
    client: TestClient, farm: Farm, two_days: dt.date
) -> None:
    body = client.get(
        f"/api/v1/parcels/{farm.parcels[0]}/readings",
        params={
            "metric": "soil_moisture",
            "from": china(two_days, 0).isoformat(),
            "to": china(two_days, 2).isoformat(),
            "bucket": "1h",
        },
        headers=farm.reader,
    ).json()
    assert [b["count"] for b in body["buckets"]] == [4, 4]
    raw = client.get(
        f"/api/v1/parcels/{farm.parcels[0]}/readings",
        params={
            "metric": "soil_moisture",
            "from": china(two_days, 0).isoformat(),
            "to": china(two_days, 1).isoformat(),
        },
        headers=farm.reader,
    ).json()
    assert {point["device_id"] for point in raw["readings"]} == {farm.device_id}


def test_the_metric_catalogue_is_public(client: TestClient) -> None:
    catalogue = {m["name"]: m for m in client.get("/api/v1/metrics").json()}
    assert catalogue["soil_moisture"]["unit"] == "%"
    assert catalogue["soil_moisture"]["policy"] == "reject"
    assert catalogue["soil_temperature"]["policy"] == "flag"
    assert len({m["code"] for m in catalogue.values()}) == len(catalogue)


def test_alert_rules_raise_alerts_once_per_reading(
    client: TestClient, farm: Farm, world: World
) -> None:
    rule = client.post(
        "/api/v1/alert-rules",
        json={"parcel": farm.parcels[0], "metric": "soil_moisture", "below": 15},
        headers=world.auth("manager"),
    )
    assert rule.status_code == 201, rule.text
    day = seal.today() - dt.timedelta(days=1)
    items = [("soil_moisture", china(day, 8), 14.0), ("soil_moisture", china(day, 9), 16.0)]
    post(client, farm, items)
    post(client, farm, items)  # a repeat raises nothing new
    alerts = client.get("/api/v1/alerts", headers=world.auth("manager")).json()
    assert [(a["metric"], a["value"], a["parcel"]) for a in alerts] == [
        ("soil_moisture", 14.0, farm.parcels[0])
    ]
    assert client.get("/api/v1/alerts", headers=world.auth("farmer")).status_code == 403
    assert client.get("/api/v1/alert-rules", headers=world.auth("manager")).json()[0]["below"] == 15
    bad = client.post(
        "/api/v1/alert-rules",
        json={"parcel": farm.parcels[0], "metric": "soil_moisture", "below": 30, "above": 20},
        headers=world.auth("manager"),
    )
    assert bad.status_code == 422
    disabled = client.delete(
        f"/api/v1/alert-rules/{rule.json()['id']}", headers=world.auth("manager")
    )
    assert disabled.json()["disabled_at"] is not None
    post(client, farm, [("soil_moisture", china(day, 10), 10.0)])
    assert len(client.get("/api/v1/alerts", headers=world.auth("manager")).json()) == 1
