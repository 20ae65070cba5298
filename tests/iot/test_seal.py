"""Readings committed to the chain: daily Merkle roots per parcel, proofs checked offline."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from digital_village.auth.actor import Actor
from digital_village.config import Settings
from digital_village.db import Database
from digital_village.errors import Invalid
from digital_village.iot import devices, readings, seal
from digital_village.iot.proof import verify_reading_proof
from digital_village.iot.sealer import BackgroundSealer, seal_finished_days
from digital_village.ledger import merkle
from digital_village.ledger.log import EntryIn, Ledger, get_entry
from digital_village.ledger.verify import VerificationError
from digital_village.trace.epcis import SensorElement
from tests.iot.conftest import Farm

URL = "/api/v1/telemetry"


def day_ago(days: int) -> dt.date:
    return seal.today() - dt.timedelta(days=days)


def at(day: dt.date, hour: int, minute: int = 0) -> str:
    """A China Standard Time moment on that day, as RFC 3339."""
    return dt.datetime(
        day.year, day.month, day.day, hour, minute, tzinfo=readings.CHINA_TIME
    ).isoformat()


def send(
    client: TestClient, farm: Farm, items: list[tuple[str, str, float]], token: str | None = None
) -> dict[str, Any]:
    payload = {"readings": [{"metric": m, "time": t, "value": v} for m, t, v in items]}
    response = client.post(URL, json=payload, headers=farm.auth(token))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def a_day_of_readings(day: dt.date) -> list[tuple[str, str, float]]:
    return [
        (metric, at(day, hour), base + hour / 10)
        for hour in range(0, 24, 3)
        for metric, base in (("soil_moisture", 30.0), ("soil_temperature", 15.0))
    ]


def a_day_on_two_parcels(client: TestClient, farm: Farm) -> dt.date:
    """Sixteen readings on the first parcel and a battery reading on the second, two days ago."""
    day = day_ago(2)
    send(client, farm, a_day_of_readings(day))
    send(client, farm, [("battery", at(day, 12), 3.6)], token=farm.generic_token)
    return day


def test_sealing_a_day_appends_one_root_per_parcel(
    client: TestClient, farm: Farm, db: Database, ledger: Ledger
) -> None:
    day = a_day_on_two_parcels(client, farm)
    send(client, farm, [("soil_moisture", at(day_ago(3), 6), 29.0)])
    with db.transaction() as session:
        made = seal.seal_days(session=session, ledger=ledger)
    assert [(m.parcel, m.day, m.part, m.count) for m in made] == [
        (farm.parcels[0], day_ago(3), 1, 1),
        (farm.parcels[0], day, 1, 16),
        (farm.parcels[1], day, 1, 1),
    ]
    with db.session() as session:
        entry = json.loads(get_entry(session, made[1].ledger_seq).body)
        assert entry["kind"] == "iot.readings.sealed"
        data = entry["data"]
        assert data["root"] == made[1].root_hash.hex()
        assert (data["parcel"], data["day"], data["count"]) == (
            farm.parcels[0],
            day.isoformat(),
            16,
        )
        assert entry["chain"]["key"] == f"parcel-readings:{farm.parcels[0]}"
        # The EPCIS sensorElementList summary is valid EPCIS 2.0.
        elements = [SensorElement.model_validate(item) for item in data["sensorElementList"]]
        moisture = elements[0].sensor_report[0]
        assert (moisture.type, moisture.uom) == ("VolumeFraction", "P1")
        assert moisture.min_value == 30.0
        assert moisture.max_value == pytest.approx(32.1)
        # Recomputing the root from the readings stored now gives the sealed root.
        for made_seal in seal.seals_of(session=session, dkbm=farm.parcels[0]):
            assert seal.check_seal(session=session, seal=made_seal).ok
    # Nothing is pending any more: sealing again appends nothing.
    with db.transaction() as session:
        assert seal.seal_days(session=session, ledger=ledger) == []


def test_leaves_are_canonical_json_of_the_reading() -> None:
    leaf = seal.leaf_bytes(7, 1, 1_767_225_600_000, 31.0)
    assert leaf == (
        b'{"device":7,"metric":"soil_moisture","time":"2026-01-01T00:00:00.000Z",'
        b'"unit":"%","value":31}'
    )
    assert merkle.root_of([merkle.hash_leaf(leaf)]) == merkle.hash_leaf(leaf)


def test_unfinished_days_are_not_sealed(db: Database, ledger: Ledger, farm: Farm) -> None:
    with db.transaction() as session, pytest.raises(Invalid, match="not over yet"):
        seal.seal_days(session=session, ledger=ledger, day=seal.today())


def test_late_readings_go_into_a_supplementary_seal_and_the_first_root_stands(
    client: TestClient, farm: Farm, db: Database, ledger: Ledger
) -> None:
    day = day_ago(2)
    send(client, farm, a_day_of_readings(day))
    with db.transaction() as session:
        (first,) = seal.seal_days(session=session, ledger=ledger, day=day)
    late = send(client, farm, [("soil_moisture", at(day, 23, 59), 33.3)])
    assert late["accepted"] == 1
    with db.transaction() as session:
        (second,) = seal.seal_days(session=session, ledger=ledger)
    assert (second.day, second.part, second.count) == (day, 2, 1)
    with db.session() as session:
        parts = seal.seals_of(session=session, dkbm=farm.parcels[0], day=day)
        assert [p.part for p in parts] == [1, 2]
        assert parts[0].root_hash == first.root_hash
        assert all(seal.check_seal(session=session, seal=p).ok for p in parts)


def test_a_reading_proof_verifies_offline_and_catches_tampering(
    client: TestClient, farm: Farm, db: Database, ledger: Ledger
) -> None:
    day = day_ago(2)
    send(client, farm, a_day_of_readings(day))
    with db.transaction() as session:
        seal.seal_days(session=session, ledger=ledger)
    response = client.get(
        f"/api/v1/devices/{farm.device_id}/readings/proof",
        params={"metric": "soil_temperature", "time": at(day, 9)},
        headers=farm.reader,
    )
    assert response.status_code == 200, response.text
    proof = response.json()
    assert proof["reading"]["value"] == pytest.approx(15.9)
    verified = verify_reading_proof(json.dumps(proof).encode(), ledger.vkey)
    assert (verified.parcel, verified.day, verified.part) == (farm.parcels[0], day.isoformat(), 1)

    forged = json.loads(json.dumps(proof))
    forged["reading"]["value"] = 12.0
    forged["leaf"] = forged["leaf"].replace("15.9", "12")
    with pytest.raises(VerificationError, match="not in the sealed day's tree"):
        verify_reading_proof(forged, ledger.vkey)
    claimed = json.loads(json.dumps(proof))
    claimed["reading"]["value"] = 12.0
    with pytest.raises(VerificationError, match="differs from the reading"):
        verify_reading_proof(claimed, ledger.vkey)
    rooted = json.loads(json.dumps(proof))
    rooted["root"] = "00" * 32
    with pytest.raises(VerificationError):
        verify_reading_proof(rooted, ledger.vkey)
    with pytest.raises(VerificationError):  # a verifier key that did not sign the checkpoint
        verify_reading_proof(
            proof, "someone+00000000+AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
        )


def test_a_changed_stored_reading_no_longer_matches_its_seal(
    client: TestClient, farm: Farm, db: Database, ledger: Ledger, backend: str
) -> None:
    day = day_ago(2)
    send(client, farm, a_day_of_readings(day))
    with db.transaction() as session:
        seal.seal_days(session=session, ledger=ledger)
    with db.transaction() as session:
        session.execute(
            text("UPDATE reading SET value = 99.0 WHERE device_id = :d AND value > 31.5"),
            {"d": farm.device_id},
        )
    sealed = client.get(f"/api/v1/parcels/{farm.parcels[0]}/seals").json()
    assert [item["verified"] for item in sealed] == [False]
    proof = client.get(
        f"/api/v1/devices/{farm.device_id}/readings/proof",
        params={"metric": "soil_moisture", "time": at(day, 0)},
        headers=farm.reader,
    )
    assert proof.status_code == 409
    assert "changed after sealing" in proof.json()["detail"]


def test_unsealed_and_missing_readings_have_no_proof(client: TestClient, farm: Farm) -> None:
    send(client, farm, [("soil_moisture", at(day_ago(1), 8), 30.0)])
    unsealed = client.get(
        f"/api/v1/devices/{farm.device_id}/readings/proof",
        params={"metric": "soil_moisture", "time": at(day_ago(1), 8)},
        headers=farm.reader,
    )
    assert unsealed.status_code == 404
    assert "not sealed yet" in unsealed.json()["detail"]
    missing = client.get(
        f"/api/v1/devices/{farm.device_id}/readings/proof",
        params={"metric": "soil_moisture", "time": at(day_ago(1), 9)},
        headers=farm.reader,
    )
    assert missing.status_code == 404


def test_a_moved_device_keeps_its_old_readings_on_the_old_parcel(
    client: TestClient, farm: Farm, db: Database, ledger: Ledger
) -> None:
    day = day_ago(2)
    move_at = dt.datetime(day.year, day.month, day.day, 12, tzinfo=readings.CHINA_TIME)
    send(client, farm, [("soil_moisture", at(day, 6), 30.0), ("soil_moisture", at(day, 11), 31.0)])
    with db.transaction() as session:
        devices.move_device(
            session=session,
            ledger=ledger,
            actor=Actor.operator(),
            device_id=farm.device_id,
            parcel=farm.parcels[1],
            at=move_at,
        )
    send(client, farm, [("soil_moisture", at(day, 15), 40.0)])
    with db.transaction() as session:
        made = seal.seal_days(session=session, ledger=ledger)
    assert sorted((m.parcel, m.count) for m in made) == [(farm.parcels[0], 2), (farm.parcels[1], 1)]
    old = client.get(
        f"/api/v1/parcels/{farm.parcels[0]}/conditions",
        params={"from": day.isoformat(), "to": day.isoformat()},
    ).json()
    new = client.get(
        f"/api/v1/parcels/{farm.parcels[1]}/conditions",
        params={"from": day.isoformat(), "to": day.isoformat()},
    ).json()
    assert old["days"][0]["soil_moisture"] == {"min": 30.0, "mean": 30.5, "max": 31.0, "count": 2}
    assert new["days"][0]["soil_moisture"]["count"] == 1
    assert new["days"][0]["seals"][0]["count"] == 1
    device = client.get(f"/api/v1/devices/{farm.device_id}").json()
    assert device["parcel"] == farm.parcels[1]
    assert [i["parcel_dkbm"] for i in device["installations"]] == farm.parcels[:2]
    # A later move may not be back-dated into a sealed day.
    with db.transaction() as session, pytest.raises(Invalid, match="sealed"):
        devices.move_device(
            session=session,
            ledger=ledger,
            actor=Actor.operator(),
            device_id=farm.device_id,
            parcel=farm.parcels[0],
            at=move_at + dt.timedelta(hours=1),
        )


def test_the_background_sealer_seals_finished_days(
    client: TestClient, farm: Farm, db: Database, ledger: Ledger
) -> None:
    send(client, farm, [("soil_moisture", at(day_ago(4), 10), 28.0)])
    send(client, farm, [("soil_moisture", at(seal.today(), 0, 1), 28.5)])
    made = seal_finished_days(db, ledger)
    assert [(m.day, m.count) for m in made] == [(day_ago(4), 1)]


def test_the_server_seals_in_a_background_thread(
    client: TestClient, farm: Farm, db: Database, ledger: Ledger, settings: Settings
) -> None:
    send(client, farm, [("soil_moisture", at(day_ago(5), 10), 27.0)])
    sealer = BackgroundSealer(db, settings, interval=0.05).start()
    time.sleep(1.0)  # the test does not touch the database while the thread may
    sealer.stop()
    sealed = client.get(f"/api/v1/parcels/{farm.parcels[0]}/seals").json()
    assert [(item["day"], item["count"], item["verified"]) for item in sealed] == [
        (day_ago(5).isoformat(), 1, True)
    ]


def sealed_once_each(db: Database, farm: Farm, day: dt.date) -> list[tuple[int, int, bool]]:
    """(part, count, verified) of the first parcel's seals of ``day``; and every reading of
    that day is covered by exactly one of them."""
    with db.session() as session:
        parts = seal.seals_of(session=session, dkbm=farm.parcels[0], day=day)
        start, end = readings.day_bounds_ms(day)
        unsealed = readings.count_unsealed(
            session, device_id=farm.device_id, metric_ids=seal.ALL_METRICS, start_ms=start,
            end_ms=end,
        )  # fmt: skip
        assert unsealed == 0
        covered = sum(len(readings.sealed_by(session, p.id)) for p in parts)
        assert covered == sum(p.count for p in parts)
        return [(p.part, p.count, seal.check_seal(session=session, seal=p).ok) for p in parts]


def planned_day(client: TestClient, farm: Farm, db: Database) -> tuple[dt.date, seal.SealPlan]:
    """A day of readings sent, and the sealer's plan for it, read in a read transaction."""
    day = day_ago(2)
    send(client, farm, a_day_of_readings(day))
    with db.transaction(write=False) as session:  # no writer held
        return day, seal.plan_seals(session)


def test_the_sealer_reads_and_hashes_before_it_takes_the_writer(
    client: TestClient, farm: Farm, db: Database, ledger: Ledger
) -> None:
    day, plan = planned_day(client, farm, db)
    assert [(p.dkbm, p.day, p.part, len(p.rows)) for p in plan.seals] == [
        (farm.parcels[0], day, 1, 16)
    ]
    with db.transaction() as session:
        (made,) = seal.store_planned(session, ledger, plan)
    assert made.root_hash == plan.seals[0].root
    assert sealed_once_each(db, farm, day) == [(1, 16, True)]
    assert seal_finished_days(db, ledger) == []  # nothing left pending


# Newcomers after the latest planned reading (23:00, planned ones end at 21:00): the span is
# marked up to that reading. Among the planned ones (01:00): fewer newcomers than planned
# readings, the span is marked at once and they are unmarked; as many or more, the planned
# readings are marked by key.
@pytest.mark.parametrize(("hour", "late"), [(23, 1), (23, 20), (1, 1), (1, 20)])
def test_readings_that_arrive_between_reading_and_storing_go_into_the_next_part(
    client: TestClient, farm: Farm, db: Database, ledger: Ledger, hour: int, late: int
) -> None:
    day, plan = planned_day(client, farm, db)
    # After the read: late readings of the same day.
    send(client, farm, [("soil_moisture", at(day, hour, minute), 33.3) for minute in range(late)])
    with db.transaction() as session:
        (made,) = seal.store_planned(session, ledger, plan)
    # The seal covers what was read, exactly; the late readings stay pending for the next pass.
    assert (made.count, made.root_hash) == (16, plan.seals[0].root)
    (next_part,) = seal_finished_days(db, ledger)
    assert (next_part.day, next_part.part, next_part.count) == (day, 2, late)
    assert sealed_once_each(db, farm, day) == [(1, 16, True), (2, late, True)]
    assert seal_finished_days(db, ledger) == []


def test_a_day_sealed_by_another_sealer_meanwhile_is_not_sealed_twice(
    client: TestClient, farm: Farm, db: Database, ledger: Ledger
) -> None:
    day, first = planned_day(client, farm, db)
    with db.transaction(write=False) as session:
        second = seal.plan_seals(session)
    with db.transaction() as session:
        assert len(seal.store_planned(session, ledger, second)) == 1
    with db.transaction() as session:
        assert seal.store_planned(session, ledger, first) == []
    assert sealed_once_each(db, farm, day) == [(1, 16, True)]


def test_a_plan_is_stored_in_parts_that_never_split_a_pair_from_its_seals() -> None:
    day = day_ago(2)

    def planned(dkbm: str) -> seal.PlannedSeal:
        return seal.PlannedSeal(dkbm, day, 1, [], b"", EntryIn(seal.SEAL_KIND, {}))

    def read(device: int, dkbm: str, count: int) -> seal.SpanRead:
        return seal.SpanRead((device, day), dkbm, (device, 0, 1), count)

    plan = seal.SealPlan(
        [planned("X"), planned("Y"), planned("Z")],
        [(1, day), (2, day), (3, day), (4, day)],
        # Two devices on parcel X; device 3 moved from Y to Z that day; device 4 sent nothing
        # unsealed.
        [read(1, "X", 5), read(2, "X", 5), read(3, "Y", 2), read(3, "Z", 3), read(4, "W", 0)],
    )
    parts = seal.split_plan(plan)
    assert sorted(
        (sorted(p.dkbm for p in part.seals), sorted(d for d, _ in part.pairs)) for part in parts
    ) == [([], [4]), (["X"], [1, 2]), (["Y", "Z"], [3])]
    assert sorted(len(part.read) for part in parts) == [1, 2, 2]


def test_the_sealer_stores_parcel_days_part_by_part(
    client: TestClient, farm: Farm, db: Database, ledger: Ledger
) -> None:
    day = a_day_on_two_parcels(client, farm)
    send(client, farm, [("soil_moisture", at(day_ago(3), 6), 29.0)])
    holds: list[float] = []
    made = seal_finished_days(db, ledger, holds)
    # A write transaction a parcel-day: a quick first one does not make the rest one chunk.
    assert len(holds) == 3
    assert sorted((m.parcel, m.day, m.count) for m in made) == [
        (farm.parcels[0], day_ago(3), 1),
        (farm.parcels[0], day, 16),
        (farm.parcels[1], day, 1),
    ]
    with db.session() as session:
        for m in made:
            (stored,) = seal.seals_of(session=session, dkbm=m.parcel, day=m.day)
            assert seal.check_seal(session=session, seal=stored).ok
            assert stored.ledger_seq == m.ledger_seq
    assert seal_finished_days(db, ledger) == []
