"""LoRaWAN network-server webhooks: ChirpStack v4 ``up`` events and The Things Stack v3 uplinks.

The payloads follow the servers' published shapes: ChirpStack's Protobuf JSON mapping of
``integration.UplinkEvent`` (chirpstack/chirpstack api/proto/integration/integration.proto) and
TTS's webhook JSON (thethingsindustries.com/docs, "Data formats": ``end_device_ids``,
``uplink_message`` with ``session_key_id``, ``f_cnt``, ``frm_payload``, ``decoded_payload``).
The frames are the vendors' example uplinks used in test_decoders.py.
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from digital_village.auth.actor import Actor
from digital_village.db import Database
from digital_village.iot import devices, integrations
from digital_village.ledger.log import Ledger
from tests.conftest import World
from tests.iot.conftest import INSTALLED, Farm, iso, recent

CHIRPSTACK = "/api/v1/integrations/chirpstack"
TTN = "/api/v1/integrations/ttn"
DL_5TM_FULL = bytes.fromhex("02023b0003003702710c60")
EM500_README = bytes.fromhex("017564036719010468730" + "57FF000")
# The TTN example with byte 10 = 0x10 (MOD 0: calibrated values), as in test_decoders.py.
LSE01_FRAME = bytes([0xCE, 0x29, 0x00, 0xF1, 0x07, 0xA5, 0x09, 0x9B, 0x6E, 0x28, 0x10])


@dataclass
class Lorawan:
    farm: Farm
    chirpstack: dict[str, str]
    ttn: dict[str, str]
    em500: int
    lse01: int


@pytest.fixture
def lorawan(db: Database, farm: Farm, world: World, ledger: Ledger) -> Lorawan:
    with db.transaction() as session:
        chirpstack = integrations.create_integration(
            session=session, actor=Actor.operator(), kind="chirpstack"
        )
        ttn = integrations.create_integration(session=session, actor=Actor.operator(), kind="ttn")
        made = [
            devices.register_device(
                session=session,
                ledger=ledger,
                actor=Actor.operator(),
                model=model,
                parcel=farm.parcels[1],
                dev_eui=eui,
                cooperative=str(world.coop_a),
                installed_at=INSTALLED,
            )
            for model, eui in (("EM500-SMTC", "24E124126B000001"), ("LSE01", "A84041000181C4E1"))
        ]
        return Lorawan(
            farm,
            {chirpstack.header: chirpstack.secret},
            {ttn.header: ttn.secret},
            made[0].device.id,
            made[1].device.id,
        )


def chirpstack_up(
    dev_eui: str, frame: bytes | None, *, fport: int = 1, obj: dict[str, Any] | None = None
) -> dict[str, Any]:
    at = recent(1)
    event: dict[str, Any] = {
        "deduplicationId": str(uuid.uuid4()),
        "time": iso(at),
        "deviceInfo": {
            "tenantId": "52f14cd4-c6f1-4fbd-8f87-4025e1d49242",
            "tenantName": "ChirpStack",
            "applicationId": "17c82e96-be03-4f38-aef3-f83d48582d97",
            "applicationName": "soil",
            "deviceProfileId": "14855bf7-d10d-4aee-b618-ebfcb64dc7ad",
            "deviceProfileName": "soil probe",
            "deviceName": "probe-1",
            "devEui": dev_eui.lower(),
            "deviceClassEnabled": "CLASS_A",
            "tags": {},
        },
        "devAddr": "00189440",
        "adr": True,
        "dr": 5,
        "fCnt": 7,
        "fPort": fport,
        "confirmed": False,
        "rxInfo": [
            {
                "gatewayId": "0016c001f153a14c",
                "uplinkId": 4217106255,
                "gwTime": iso(at),
                "nsTime": iso(at),
                "rssi": -36,
                "snr": 10.5,
                "channel": 2,
                "context": "EFwMtA==",
                "metadata": {"region_config_id": "cn470_10", "region_common_name": "CN470"},
                "crcStatus": "CRC_OK",
            }
        ],
        "txInfo": {
            "frequency": 471900000,
            "modulation": {
                "lora": {"bandwidth": 125000, "spreadingFactor": 7, "codeRate": "CR_4_5"}
            },
        },
    }
    if frame is not None:
        event["data"] = base64.b64encode(frame).decode()
    if obj is not None:
        event["object"] = obj
    return event


def ttn_uplink(
    dev_eui: str,
    frame: bytes | None,
    *,
    fport: int = 2,
    f_cnt: int = 1834,
    decoded: dict[str, Any] | None = None,
) -> dict[str, Any]:
    at = iso(recent(1)).replace("Z", ".412345678Z")  # TTS writes nanoseconds
    message: dict[str, Any] = {
        "session_key_id": "AWNbm/4zfqx0jZ5q1NlBmw==",
        "f_port": fport,
        "f_cnt": f_cnt,
        "rx_metadata": [
            {
                "gateway_ids": {"gateway_id": "eui-aa555a0000000101", "eui": "AA555A0000000101"},
                "time": at,
                "timestamp": 3895211423,
                "rssi": -68,
                "channel_rssi": -68,
                "snr": 9.2,
            }
        ],
        "settings": {
            "data_rate": {"lora": {"bandwidth": 125000, "spreading_factor": 7}},
            "coding_rate": "4/5",
            "frequency": "471900000",
        },
        "received_at": at,
        "consumed_airtime": "0.061696s",
    }
    if frame is not None:
        message["frm_payload"] = base64.b64encode(frame).decode()
    if decoded is not None:
        message["decoded_payload"] = decoded
    return {
        "end_device_ids": {
            "device_id": "lse01-field-3",
            "application_ids": {"application_id": "jingyang-soil"},
            "dev_eui": dev_eui,
            "join_eui": "A840410000000101",
            "dev_addr": "260BABCD",
        },
        "correlation_ids": ["as:up:01HX6YGQ7E0V83YRZ7K4S5J4ZN"],
        "received_at": at,
        "uplink_message": message,
    }


def readings_of(
    client: TestClient, device_id: int, metric: str, reader: dict[str, str]
) -> list[dict[str, Any]]:
    body = client.get(
        f"/api/v1/devices/{device_id}/readings", params={"metric": metric}, headers=reader
    ).json()
    return list(body["readings"])


def test_chirpstack_raw_frame_decoded_with_the_device_model_and_deduplicated(
    client: TestClient, lorawan: Lorawan
) -> None:
    event = chirpstack_up("70B3D57BA0000001", DL_5TM_FULL)
    first = client.post(CHIRPSTACK, params={"event": "up"}, json=event, headers=lorawan.chirpstack)
    assert first.status_code == 200, first.text
    body = first.json()
    # The vendor's example was taken in air: ε 1.1 gives -2.15 % moisture, which the
    # catalogue rejects; temperature and battery are stored.
    assert (body["accepted"], body["rejected"], body["duplicates"]) == (2, 1, 0)
    assert "below the plausible range" in body["rejections"][0]["reason"]
    again = client.post(CHIRPSTACK, params={"event": "up"}, json=event, headers=lorawan.chirpstack)
    assert (again.json()["accepted"], again.json()["duplicates"]) == (0, 3)
    temperature = readings_of(
        client, lorawan.farm.device_id, "soil_temperature", lorawan.farm.reader
    )
    assert len(temperature) == 1
    assert temperature[0]["value"] == pytest.approx(22.5)  # (625 - 400) / 10
    assert temperature[0]["time"] == event["time"].replace("Z", ".000Z")
    assert (
        readings_of(client, lorawan.farm.device_id, "battery", lorawan.farm.reader)[0]["value"]
        == 3.168
    )


def test_chirpstack_decoded_object_is_used_when_it_names_catalogue_metrics(
    client: TestClient, lorawan: Lorawan
) -> None:
    obj = {"soil_moisture": 41.5, "soil_temperature": {"value": 18.2, "unit": "°C"}, "rssi": -60}
    event = chirpstack_up("24E124126B000001", EM500_README, fport=85, obj=obj)
    body = client.post(
        CHIRPSTACK, params={"event": "up"}, json=event, headers=lorawan.chirpstack
    ).json()
    assert body["accepted"] == 2
    assert body["ignored"] == ["rssi"]
    assert (
        readings_of(client, lorawan.em500, "soil_moisture", lorawan.farm.reader)[0]["value"] == 41.5
    )


def test_chirpstack_vendor_codec_output_falls_back_to_our_decoder(
    client: TestClient, lorawan: Lorawan
) -> None:
    # Milesight's own codec names differ from the catalogue; the raw frame is decoded instead.
    obj = {"battery": 100, "temperature": 28.1, "moisture": 57.5, "ec": 240}
    event = chirpstack_up("24E124126B000001", EM500_README, fport=85, obj=obj)
    body = client.post(
        CHIRPSTACK, params={"event": "up"}, json=event, headers=lorawan.chirpstack
    ).json()
    assert body["accepted"] == 3
    assert readings_of(client, lorawan.em500, "soil_ec", lorawan.farm.reader)[0][
        "value"
    ] == pytest.approx(0.24)


def test_chirpstack_other_events_are_acknowledged_and_ignored(
    client: TestClient, lorawan: Lorawan
) -> None:
    for event in ("join", "status", "ack", "txack", "log", "location", "integration"):
        response = client.post(
            CHIRPSTACK,
            params={"event": event},
            json={"deduplicationId": "x"},
            headers=lorawan.chirpstack,
        )
        assert response.status_code == 200
        assert response.json() == {"ignored": event}


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "needs the X-DV-Integration-Secret header"),
        ({"X-DV-Integration-Secret": "secret"}, "malformed"),
        ({"X-DV-Integration-Secret": "dvi_000000000000_nope"}, "invalid"),
    ],
)
def test_chirpstack_needs_its_secret(
    client: TestClient, lorawan: Lorawan, headers: dict[str, str], message: str
) -> None:
    event = chirpstack_up("70B3D57BA0000001", DL_5TM_FULL)
    response = client.post(CHIRPSTACK, params={"event": "up"}, json=event, headers=headers)
    assert response.status_code == 401
    assert message in response.json()["detail"]


def test_a_secret_works_only_for_its_own_kind_and_until_revoked(
    client: TestClient, lorawan: Lorawan, db: Database
) -> None:
    event = chirpstack_up("70B3D57BA0000001", DL_5TM_FULL)
    wrong_kind = client.post(CHIRPSTACK, params={"event": "up"}, json=event, headers=lorawan.ttn)
    assert wrong_kind.status_code == 401
    assert "belongs to a ttn integration" in wrong_kind.json()["detail"]
    public_id = next(iter(lorawan.chirpstack.values())).split("_")[1]
    with db.transaction() as session:
        integrations.revoke_integration(
            session=session, actor=Actor.operator(), public_id=public_id
        )
    revoked = client.post(
        CHIRPSTACK, params={"event": "up"}, json=event, headers=lorawan.chirpstack
    )
    assert revoked.status_code == 401
    assert "revoked" in revoked.json()["detail"]


def test_chirpstack_bad_uplinks_get_clear_4xx(client: TestClient, lorawan: Lorawan) -> None:
    headers = lorawan.chirpstack
    unknown = client.post(
        CHIRPSTACK,
        params={"event": "up"},
        json=chirpstack_up("0102030405060708", DL_5TM_FULL),
        headers=headers,
    )
    assert unknown.status_code == 404
    assert "no device with DevEUI 0102030405060708" in unknown.json()["detail"]
    garbled = client.post(
        CHIRPSTACK,
        params={"event": "up"},
        json=chirpstack_up("70B3D57BA0000001", b"\x07\x01"),
        headers=headers,
    )
    assert garbled.status_code == 422
    assert "cannot decode the DL-5TM frame" in garbled.json()["detail"]
    no_id = chirpstack_up("70B3D57BA0000001", DL_5TM_FULL)
    del no_id["deduplicationId"]
    missing = client.post(CHIRPSTACK, params={"event": "up"}, json=no_id, headers=headers)
    assert missing.status_code == 422
    assert "deduplicationId" in missing.json()["detail"]
    bad_b64 = {**chirpstack_up("70B3D57BA0000001", None), "data": "!!not base64!!"}
    assert (
        client.post(CHIRPSTACK, params={"event": "up"}, json=bad_b64, headers=headers).status_code
        == 422
    )
    protobuf = client.post(
        CHIRPSTACK,
        params={"event": "up"},
        content=b"\x0a\x24",
        headers={**headers, "Content-Type": "application/octet-stream"},
    )
    assert protobuf.status_code == 415
    assert "JSON" in protobuf.json()["detail"]


def test_generic_device_without_decoded_metrics_is_refused(
    client: TestClient, lorawan: Lorawan, db: Database, ledger: Ledger, world: World
) -> None:
    with db.transaction() as session:
        devices.register_device(
            session=session,
            ledger=ledger,
            actor=Actor.operator(),
            model="generic",
            parcel=lorawan.farm.parcels[0],
            dev_eui="0000000000000042",
            cooperative=str(world.coop_a),
            installed_at=INSTALLED,
        )
    event = chirpstack_up("0000000000000042", b"\x01\x02")
    response = client.post(
        CHIRPSTACK, params={"event": "up"}, json=event, headers=lorawan.chirpstack
    )
    assert response.status_code == 422
    assert "generic (no decoder)" in response.json()["detail"]


def test_an_integration_limited_to_a_cooperative(
    client: TestClient, lorawan: Lorawan, db: Database, world: World
) -> None:
    with db.transaction() as session:
        other = integrations.create_integration(
            session=session,
            actor=Actor.operator(),
            kind="chirpstack",
            cooperative=str(world.coop_b),
        )
    event = chirpstack_up("70B3D57BA0000001", DL_5TM_FULL)
    response = client.post(
        CHIRPSTACK, params={"event": "up"}, json=event, headers={other.header: other.secret}
    )
    assert response.status_code == 403


def test_ttn_decoded_payload_and_dedup_by_session_and_frame_counter(
    client: TestClient, lorawan: Lorawan
) -> None:
    decoded = {
        "soil_moisture": 19.89,
        "soil_temperature": 24.6,
        "soil_ec": 0.2,
        "battery": 3.625,
        "Mod": 0,
    }
    uplink = ttn_uplink("A84041000181C4E1", LSE01_FRAME, decoded=decoded)
    first = client.post(TTN, json=uplink, headers=lorawan.ttn)
    assert first.status_code == 200, first.text
    assert first.json()["accepted"] == 4
    assert first.json()["ignored"] == ["Mod"]
    # The same frame counter in the same session, even re-timed, is the same uplink.
    again = ttn_uplink("A84041000181C4E1", LSE01_FRAME, decoded=decoded)
    again["uplink_message"]["received_at"] = iso(recent(0.5))
    assert client.post(TTN, json=again, headers=lorawan.ttn).json()["duplicates"] == 4
    later = ttn_uplink("A84041000181C4E1", LSE01_FRAME, decoded=decoded, f_cnt=1835)
    later["uplink_message"]["received_at"] = iso(recent(0.2))
    assert client.post(TTN, json=later, headers=lorawan.ttn).json()["accepted"] == 4


def test_ttn_raw_frame_decoded_when_no_payload_formatter(
    client: TestClient, lorawan: Lorawan
) -> None:
    uplink = ttn_uplink("A84041000181C4E1", LSE01_FRAME)
    body = client.post(TTN, json=uplink, headers=lorawan.ttn).json()
    assert body["accepted"] == 4
    assert body["flagged"] == 1  # 28.2 mS/cm: saline beyond the plausible 20, kept for review
    moisture = readings_of(client, lorawan.lse01, "soil_moisture", lorawan.farm.reader)
    assert moisture[0]["value"] == pytest.approx(19.57)  # 0x07A5 / 100, the vendor example
    assert moisture[0]["time"].startswith(uplink["received_at"][:19])


def test_ttn_other_messages_are_ignored(client: TestClient, lorawan: Lorawan) -> None:
    join = {
        "end_device_ids": {"device_id": "d", "dev_eui": "A84041000181C4E1"},
        "received_at": iso(dt.datetime.now(dt.UTC)),
        "join_accept": {
            "session_key_id": "AXBSH1Pk6Z0G166RlH16CQ==",
            "received_at": iso(recent(0)),
        },
    }
    response = client.post(TTN, json=join, headers=lorawan.ttn)
    assert response.json() == {"ignored": "join_accept"}
    assert client.post(TTN, json={"something": 1}, headers=lorawan.ttn).json() == {
        "ignored": "unknown message"
    }


def test_ttn_uplink_without_session_key_is_invalid(client: TestClient, lorawan: Lorawan) -> None:
    uplink = ttn_uplink("A84041000181C4E1", LSE01_FRAME)
    del uplink["uplink_message"]["session_key_id"]
    response = client.post(TTN, json=uplink, headers=lorawan.ttn)
    assert response.status_code == 422
    assert "session_key_id" in response.json()["detail"]
