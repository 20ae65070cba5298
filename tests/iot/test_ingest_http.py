"""POST /api/v1/telemetry: every accepted shape, idempotence, and every kind of bad input."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from digital_village.db import Database
from digital_village.iot.models import Reading
from tests.conftest import World
from tests.iot.conftest import Farm, iso, recent

URL = "/api/v1/telemetry"


def stored(db: Database, device_id: int | None = None) -> int:
    with db.session() as session:
        query = select(func.count()).select_from(Reading)
        if device_id is not None:
            query = query.where(Reading.device_id == device_id)
        return int(session.scalar(query) or 0)


def bulk(
    count: int, *, start: dt.datetime | None = None, metric: str = "soil_moisture"
) -> dict[str, Any]:
    first = start or recent(count + 10)
    return {
        "readings": [
            {"metric": metric, "time": iso(first + dt.timedelta(minutes=n)), "value": 20 + n % 10}
            for n in range(count)
        ]
    }


def test_bulk_json_is_stored_once_and_the_repeat_is_all_duplicates(
    client: TestClient, farm: Farm, db: Database
) -> None:
    payload = bulk(500)
    first = client.post(URL, json=payload, headers=farm.auth())
    assert first.status_code == 200, first.text
    assert first.json() == {
        "accepted": 500,
        "duplicates": 0,
        "rejected": 0,
        "flagged": 0,
        "rejections": [],
    }
    again = client.post(URL, json=payload, headers=farm.auth())
    assert again.status_code == 200
    assert again.json()["accepted"] == 0
    assert again.json()["duplicates"] == 500
    assert stored(db, farm.device_id) == 500


def test_a_repeat_inside_one_batch_is_a_duplicate(client: TestClient, farm: Farm) -> None:
    at = iso(recent(3))
    item = {"metric": "soil_temperature", "time": at, "value": 12.5}
    same_ms = {"metric": "soil_temperature", "time": at.replace("Z", "+00:00"), "value": 13.0}
    body = client.post(URL, json={"readings": [item, same_ms]}, headers=farm.auth()).json()
    assert (body["accepted"], body["duplicates"]) == (1, 1)


def test_thingsboard_object_array_and_flat_shapes(
    client: TestClient, farm: Farm, db: Database
) -> None:
    ts = int(recent(5).timestamp() * 1000)
    one = {"ts": ts, "values": {"soil_moisture": 31.5, "soil_temperature": 14.25}}
    assert client.post(URL, json=one, headers=farm.auth()).json()["accepted"] == 2
    many = [
        {"ts": ts + 60_000 * n, "values": {"soil_moisture": 30 + n, "battery": 3.6}}
        for n in range(1, 4)
    ]
    assert client.post(URL, json=many, headers=farm.auth()).json()["accepted"] == 6
    flat = client.post(URL, json={"soil_moisture": 29.0}, headers=farm.auth())
    assert flat.json()["accepted"] == 1
    assert stored(db, farm.device_id) == 9
    latest = client.get(f"/api/v1/devices/{farm.device_id}/latest", headers=farm.reader).json()[
        "latest"
    ]
    assert latest["soil_moisture"]["value"] == 29.0  # the flat one, stamped with server time


def test_integer_millisecond_times_in_bulk_json(client: TestClient, farm: Farm) -> None:
    ts = int(recent(2).timestamp() * 1000)
    payload = {"readings": [{"metric": "soil_moisture", "time": ts, "value": 22}]}
    assert client.post(URL, json=payload, headers=farm.auth()).json()["accepted"] == 1
    got = client.get(
        f"/api/v1/devices/{farm.device_id}/readings",
        params={"metric": "soil_moisture", "from": ts, "to": ts + 1},
        headers=farm.reader,
    ).json()
    assert got["readings"] == [
        {
            "time": dt.datetime.fromtimestamp(ts / 1000, dt.UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "value": 22.0,
        }
    ]


def test_ndjson_offline_buffer(client: TestClient, farm: Farm) -> None:
    start = recent(600)
    lines = [
        json.dumps(
            {"metric": "soil_moisture", "time": iso(start + dt.timedelta(hours=n)), "value": 25 + n}
        )
        for n in range(5)
    ]
    lines.insert(2, "")  # blank lines are skipped
    lines.append(json.dumps({"ts": int(start.timestamp() * 1000), "values": {"battery": 3.5}}))
    response = client.post(
        URL,
        content="\n".join(lines).encode(),
        headers={**farm.auth(), "Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 6


def test_csv_long_and_wide(client: TestClient, farm: Farm) -> None:
    start = recent(300)
    long = "time,metric,value\n" + "".join(
        f"{iso(start + dt.timedelta(minutes=10 * n))},soil_temperature,{15 + n / 10}\n"
        for n in range(4)
    )
    response = client.post(
        URL, content=long.encode(), headers={**farm.auth(), "Content-Type": "text/csv"}
    )
    assert response.json()["accepted"] == 4, response.text
    ts = int(start.timestamp() * 1000)
    wide = f"ts,soil_moisture,battery\n{ts},21.5,3.61\n{ts + 60000},,3.60\n"
    response = client.post(
        URL,
        content=wide.encode(),
        headers={**farm.auth(), "Content-Type": "text/csv; charset=utf-8"},
    )
    assert response.json()["accepted"] == 3, response.text


def test_multipart_upload_of_a_buffer_file(client: TestClient, farm: Farm) -> None:
    at = iso(recent(30))
    files = {"file": ("buffer.csv", f"time,soil_moisture\n{at},18.5\n".encode(), "text/csv")}
    response = client.post(URL, files=files, headers=farm.auth())
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 1
    files = {
        "file": (
            "buffer.jsonl",
            json.dumps({"metric": "battery", "time": at, "value": 3.3}).encode(),
            "application/octet-stream",
        )
    }
    assert client.post(URL, files=files, headers=farm.auth()).json()["accepted"] == 1


def test_unknown_content_types_get_415(client: TestClient, farm: Farm) -> None:
    response = client.post(
        URL, content=b"soil_moisture=20", headers={**farm.auth(), "Content-Type": "text/plain"}
    )
    assert response.status_code == 415
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "text/plain" in response.json()["detail"]
    files = {"file": ("notes.txt", b"hello", "text/plain")}
    assert client.post(URL, files=files, headers=farm.auth()).status_code == 415


def test_out_of_range_is_rejected_or_flagged_per_metric(
    client: TestClient, farm: Farm, db: Database
) -> None:
    at = iso(recent(4))
    payload = {
        "readings": [
            {"metric": "soil_moisture", "time": at, "value": 120},  # reject policy
            {"metric": "soil_temperature", "time": at, "value": 95},  # flag policy
            {"metric": "battery", "time": at, "value": 3.6},
        ]
    }
    body = client.post(URL, json=payload, headers=farm.auth()).json()
    assert body["accepted"] == 2
    assert body["rejected"] == 1
    assert body["flagged"] == 1
    rejection = body["rejections"][0]
    assert rejection["item"] == "readings[0]"
    assert rejection["metric"] == "soil_moisture"
    assert "above the plausible range" in rejection["reason"]
    flagged = client.get(
        f"/api/v1/devices/{farm.device_id}/readings",
        params={"metric": "soil_temperature"},
        headers=farm.reader,
    ).json()["readings"]
    assert flagged == [{"time": at.replace("Z", ".000Z"), "value": 95.0, "flagged": True}]
    assert stored(db, farm.device_id) == 2


def test_metric_the_device_does_not_report_is_rejected(client: TestClient, farm: Farm) -> None:
    payload = {"readings": [{"metric": "soil_ec", "time": iso(recent(1)), "value": 0.4}]}
    body = client.post(URL, json=payload, headers=farm.auth()).json()
    assert body["rejected"] == 1
    assert "not registered to report soil_ec" in body["rejections"][0]["reason"]
    # a generic device takes any catalogue metric
    generic = client.post(URL, json=payload, headers=farm.auth(farm.generic_token)).json()
    assert generic["accepted"] == 1


def test_readings_before_installation_are_rejected_late_ones_accepted(
    client: TestClient, farm: Farm
) -> None:
    payload = {
        "readings": [
            {"metric": "soil_moisture", "time": "2025-12-31T23:59:00Z", "value": 20},
            {"metric": "soil_moisture", "time": "2026-01-02T08:00:00+08:00", "value": 21},
        ]
    }
    body = client.post(URL, json=payload, headers=farm.auth()).json()
    assert (body["accepted"], body["rejected"]) == (1, 1)
    assert "stood on no parcel" in body["rejections"][0]["reason"]


BAD_BATCHES = [
    (
        {"metric": "soil_wetness", "value": 1},
        "unknown metric 'soil_wetness'; known metrics: soil_moisture",
    ),
    ({"metric": "soil_moisture", "value": "wet"}, "soil_moisture value 'wet' is not a number"),
    ({"metric": "soil_moisture", "value": True}, "is not a number"),
    ({"metric": "soil_moisture", "value": None}, "is not a number"),
    ({"metric": "soil_moisture", "time": "1999-12-31T23:59:59Z", "value": 1}, "before 2000-01-01"),
    ({"metric": "soil_moisture", "time": "2026-05-01T08:00:00", "value": 1}, "has no UTC offset"),
    ({"metric": "soil_moisture", "time": "yesterday", "value": 1}, "not an RFC 3339 date-time"),
    ({"metric": "soil_moisture", "time": 1.5e12, "value": 1}, "integer milliseconds"),
    ({"metric": "soil_moisture", "value": 1, "unit": "%"}, "unknown field(s) unit"),
    ({"metric": "soil_moisture"}, "missing value"),
]


def test_a_malformed_item_refuses_the_whole_batch(
    client: TestClient, farm: Farm, db: Database
) -> None:
    good = bulk(20)["readings"]
    for item, message in BAD_BATCHES:
        bad = {"time": iso(recent(1)), **item}
        response = client.post(URL, json={"readings": [*good, bad]}, headers=farm.auth())
        assert response.status_code == 422, (item, response.text)
        problem = response.json()
        assert response.headers["content-type"].startswith("application/problem+json")
        assert problem["detail"].startswith("nothing was stored: readings[20]: "), item
        assert message in problem["detail"], (item, problem["detail"])
        assert problem["errors"][0]["item"] == "readings[20]"
        assert stored(db, farm.device_id) == 0


def test_future_readings_beyond_five_minutes_are_refused(
    client: TestClient, farm: Farm, db: Database
) -> None:
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=3)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=7)
    ok = client.post(
        URL,
        json={"readings": [{"metric": "battery", "time": iso(soon), "value": 3.6}]},
        headers=farm.auth(),
    )
    assert ok.status_code == 200
    refused = client.post(
        URL,
        json={"readings": [{"metric": "battery", "time": iso(later), "value": 3.6}]},
        headers=farm.auth(),
    )
    assert refused.status_code == 422
    assert "more than 5 minutes in the future" in refused.json()["detail"]
    assert stored(db, farm.device_id) == 1


MALFORMED = [
    (
        b'{"readings": [{"metric": "soil_moisture", "time": 1, "value": NaN}]}',
        "NaN and Infinity are not JSON",
    ),
    (b'{"readings": [{"metric": "soil_moisture", "time": 1, "value": 1e999}]}', "infinity"),
    (b'{"readings": [', "not valid JSON"),
    (b'"soil_moisture"', "expected"),
    (b"[]", "empty array"),
    (b'{"readings": []}', "readings is empty"),
    (b'{"readings": {}}', "readings must be an array"),
    (b'{"ts": 1700000000000, "values": {}}', "values must be a non-empty object"),
    (b'{"ts": "now", "values": {"battery": 3}}', "integer milliseconds"),
    (b'{"soil_moisture": "20%"}', "is not a number"),
]


def test_malformed_payloads_get_422(client: TestClient, farm: Farm) -> None:
    for raw, message in MALFORMED:
        response = client.post(
            URL, content=raw, headers={**farm.auth(), "Content-Type": "application/json"}
        )
        assert response.status_code == 422, (raw, response.text)
        assert message in response.json()["detail"], (raw, response.json()["detail"])


def test_nan_in_csv_is_refused(client: TestClient, farm: Farm, db: Database) -> None:
    body = (
        f"time,metric,value\n{iso(recent(2))},soil_moisture,20\n"
        f"{iso(recent(1))},soil_moisture,nan\n"
    )
    response = client.post(
        URL, content=body.encode(), headers={**farm.auth(), "Content-Type": "text/csv"}
    )
    assert response.status_code == 422
    assert "line 3" in response.json()["detail"]
    assert "not a finite number" in response.json()["detail"]
    assert stored(db, farm.device_id) == 0


def test_csv_with_an_unknown_column_names_it(client: TestClient, farm: Farm) -> None:
    response = client.post(
        URL,
        content=b"time,soil_moisture,rssi\n",
        headers={**farm.auth(), "Content-Type": "text/csv"},
    )
    assert response.status_code == 422
    assert "'rssi'" in response.json()["detail"]


def test_oversize_body_gets_413_and_nothing_is_stored(
    client: TestClient, farm: Farm, db: Database
) -> None:
    payload = bulk(2000)  # about 140 kB; the test limit is 64 kB
    response = client.post(URL, json=payload, headers=farm.auth())
    assert response.status_code == 413
    assert stored(db, farm.device_id) == 0


def test_revoked_and_rotated_tokens_stop_working(
    client: TestClient, farm: Farm, world: World
) -> None:
    payload = {"battery": 3.6}
    rotated = client.post(f"/api/v1/devices/{farm.device_id}/token", headers=world.auth("admin"))
    assert rotated.status_code == 201, rotated.text
    new_token = rotated.json()["token"]
    old = client.post(URL, json=payload, headers=farm.auth())
    assert old.status_code == 401
    assert "revoked" in old.json()["detail"]
    assert client.post(URL, json=payload, headers=farm.auth(new_token)).status_code == 200
    revoked = client.delete(f"/api/v1/devices/{farm.device_id}/token", headers=world.auth("admin"))
    assert revoked.json() == {"device_id": farm.device_id, "revoked": 1}
    assert client.post(URL, json=payload, headers=farm.auth(new_token)).status_code == 401


def test_one_device_may_not_write_for_another(client: TestClient, farm: Farm, db: Database) -> None:
    as_query = client.post(
        URL, params={"device_id": farm.generic_id}, json={"battery": 3.6}, headers=farm.auth()
    )
    assert as_query.status_code == 403
    in_body = client.post(URL, json={"device_id": farm.generic_id, **bulk(2)}, headers=farm.auth())
    assert in_body.status_code == 403
    assert stored(db) == 0
    own = client.post(URL, json={"device_id": farm.device_id, **bulk(2)}, headers=farm.auth())
    assert own.status_code == 200


def test_managers_upload_for_their_own_devices_only(
    client: TestClient, farm: Farm, world: World
) -> None:
    payload = {"battery": 3.6}
    mine = client.post(
        URL, params={"device_id": farm.device_id}, json=payload, headers=world.auth("manager")
    )
    assert mine.status_code == 200, mine.text
    unknown = client.post(
        URL, params={"device_id": 999_999}, json=payload, headers=world.auth("admin")
    )
    assert unknown.status_code == 404
    assert "no device with id 999999" in unknown.json()["detail"]
    unnamed = client.post(URL, json=payload, headers=world.auth("admin"))
    assert unnamed.status_code == 422
    assert client.post(URL, json=payload, headers=world.auth("farmer")).status_code == 403
    assert client.post(URL, json=payload).status_code == 401


def test_retired_device_takes_no_readings(client: TestClient, farm: Farm, world: World) -> None:
    retired = client.delete(f"/api/v1/devices/{farm.generic_id}", headers=world.auth("manager"))
    assert retired.status_code == 200, retired.text
    assert retired.json()["retired_at"] is not None
    response = client.post(
        URL,
        params={"device_id": farm.generic_id},
        json={"battery": 3.6},
        headers=world.auth("admin"),
    )
    assert response.status_code == 403
    assert "retired" in response.json()["detail"]


def test_a_deployment_sets_a_metrics_policy(client: TestClient, farm: Farm, db: Database) -> None:
    from digital_village.auth.actor import Actor
    from digital_village.auth.models import Role
    from digital_village.errors import Forbidden
    from digital_village.iot import ingest

    hot = {"readings": [{"metric": "soil_temperature", "time": iso(recent(3)), "value": 95}]}
    with db.transaction() as session:
        ingest.set_metric_policy(
            session=session, actor=Actor.operator(), metric="soil_temperature", policy="reject"
        )
    body = client.post(URL, json=hot, headers=farm.auth()).json()
    assert (body["accepted"], body["rejected"]) == (0, 1)
    policies = {m["name"]: m["policy"] for m in client.get("/api/v1/metrics").json()}
    assert policies["soil_temperature"] == "reject"
    with db.transaction() as session:
        ingest.set_metric_policy(
            session=session, actor=Actor.operator(), metric="soil_temperature", policy="default"
        )
    body = client.post(URL, json=hot, headers=farm.auth()).json()
    assert (body["accepted"], body["flagged"]) == (1, 1)
    manager = Actor(role=Role.MANAGER, cooperative_id=1)
    with db.transaction() as session, pytest.raises(Forbidden):
        ingest.set_metric_policy(session=session, actor=manager, metric="battery", policy="reject")
