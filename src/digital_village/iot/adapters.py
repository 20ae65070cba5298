"""LoRaWAN network-server payloads → one uplink: who sent it, when, and what it carries. Pure.

- ChirpStack v4 HTTP integration, JSON encoding (the Protobuf JSON mapping of
  ``integration.UplinkEvent``: ``deduplicationId``, ``time``, ``deviceInfo.devEui``, ``fCnt``,
  ``fPort``, ``data`` base64, ``object`` when the device profile has a codec). Proto3 JSON
  omits zero values, so a missing ``fCnt`` is 0.
- The Things Stack v3 webhook, uplink message (``end_device_ids.dev_eui``,
  ``uplink_message.{session_key_id, f_port, f_cnt, frm_payload, decoded_payload,
  received_at}``). TTS also omits empty fields.

Each gives a deduplication key: ChirpStack's ``deduplicationId`` (one per uplink however many
gateways heard it), TTS's (DevEUI, session key id, FCnt).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from digital_village.iot import metrics
from digital_village.iot.shapes import PayloadError, Problem, parse_time

CHIRPSTACK = "chirpstack"
TTN = "ttn"
INTEGRATION_KINDS = (CHIRPSTACK, TTN)


@dataclass(frozen=True)
class Uplink:
    """One uplink as a network server reported it."""

    source: str
    dev_eui: str
    dedup_key: str
    time_ms: int | None
    fport: int
    frame: bytes | None
    decoded: Mapping[str, Any] | None
    metadata: Mapping[str, Any] = field(default_factory=dict)


def _fail(where: str, reason: str) -> PayloadError:
    return PayloadError([Problem(where, reason)])


def normalize_dev_eui(value: object, where: str = "dev_eui") -> str:
    """A DevEUI as 16 upper-case hex digits (separators ``-`` and ``:`` allowed on input)."""
    if not isinstance(value, str):
        raise _fail(where, f"DevEUI {value!r} must be a string of 16 hex digits")
    cleaned = value.strip().replace("-", "").replace(":", "").upper()
    if len(cleaned) != 16 or any(c not in "0123456789ABCDEF" for c in cleaned):
        raise _fail(where, f"DevEUI {value!r} must be 16 hex digits")
    return cleaned


def _object(payload: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = payload.get(key)
    if not isinstance(value, dict):
        raise _fail(where, "missing or not an object")
    return value


def _uint(payload: Mapping[str, Any], key: str, where: str, *, default: int | None) -> int:
    value = payload.get(key, default)
    if value is None:
        raise _fail(where, "missing")
    if type(value) is not int or value < 0:
        raise _fail(where, f"{value!r} must be a non-negative integer")
    return value


def _frame(value: object, where: str) -> bytes | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _fail(where, "must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _fail(where, f"{value[:40]!r} is not valid base64") from None


def _time(value: object, where: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _fail(where, f"{value!r} must be an RFC 3339 string")
    try:
        return parse_time(value)
    except ValueError as error:
        raise _fail(where, str(error)) from None


def _decoded(value: object, where: str) -> Mapping[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _fail(where, "must be an object")
    return value


def parse_chirpstack_up(payload: object) -> Uplink:
    """A ChirpStack v4 ``up`` event (JSON encoding)."""
    if not isinstance(payload, dict):
        raise _fail("body", "a ChirpStack event must be a JSON object")
    dedup = payload.get("deduplicationId")
    if not isinstance(dedup, str) or not dedup.strip():
        raise _fail("deduplicationId", "missing: is the integration's encoding set to JSON?")
    info = _object(payload, "deviceInfo", "deviceInfo")
    dev_eui = normalize_dev_eui(info.get("devEui"), "deviceInfo.devEui")
    time_ms = _time(payload.get("time"), "time")
    if time_ms is None:
        # Older events time only the gateways' receptions.
        for index, rx in enumerate(payload.get("rxInfo") or []):
            if isinstance(rx, dict):
                time_ms = _time(rx.get("gwTime") or rx.get("nsTime"), f"rxInfo[{index}].gwTime")
                if time_ms is not None:
                    break
    return Uplink(
        source=CHIRPSTACK,
        dev_eui=dev_eui,
        dedup_key=f"{CHIRPSTACK}:{dedup.strip()}",
        time_ms=time_ms,
        fport=_uint(payload, "fPort", "fPort", default=0),
        frame=_frame(payload.get("data"), "data"),
        decoded=_decoded(payload.get("object"), "object"),
        metadata={
            "fCnt": _uint(payload, "fCnt", "fCnt", default=0),
            "deviceName": info.get("deviceName"),
            "deviceProfileName": info.get("deviceProfileName"),
        },
    )


TTN_IGNORED_MESSAGES = (
    "join_accept",
    "downlink_ack",
    "downlink_nack",
    "downlink_sent",
    "downlink_failed",
    "downlink_queued",
    "downlink_queue_invalidated",
    "location_solved",
    "service_data",
)


def ttn_message_type(payload: object) -> str | None:
    """Which message a TTS webhook carries (``uplink_message``, ``join_accept``, ...)."""
    if not isinstance(payload, dict):
        return None
    if "uplink_message" in payload:
        return "uplink_message"
    return next((name for name in TTN_IGNORED_MESSAGES if name in payload), None)


def parse_ttn_uplink(payload: object) -> Uplink:
    """A The Things Stack v3 webhook carrying ``uplink_message``."""
    if not isinstance(payload, dict):
        raise _fail("body", "a TTS webhook message must be a JSON object")
    ids = _object(payload, "end_device_ids", "end_device_ids")
    dev_eui = normalize_dev_eui(ids.get("dev_eui"), "end_device_ids.dev_eui")
    message = _object(payload, "uplink_message", "uplink_message")
    session_key_id = message.get("session_key_id")
    if not isinstance(session_key_id, str) or not session_key_id:
        raise _fail("uplink_message.session_key_id", "missing")
    f_cnt = _uint(message, "f_cnt", "uplink_message.f_cnt", default=0)
    time_ms = _time(message.get("received_at"), "uplink_message.received_at")
    if time_ms is None:
        time_ms = _time(payload.get("received_at"), "received_at")
    return Uplink(
        source=TTN,
        dev_eui=dev_eui,
        dedup_key=f"{TTN}:{dev_eui}:{session_key_id}:{f_cnt}",
        time_ms=time_ms,
        fport=_uint(message, "f_port", "uplink_message.f_port", default=0),
        frame=_frame(message.get("frm_payload"), "uplink_message.frm_payload"),
        decoded=_decoded(message.get("decoded_payload"), "uplink_message.decoded_payload"),
        metadata={"f_cnt": f_cnt, "device_id": ids.get("device_id")},
    )


def catalogue_values(decoded: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The decoded object's catalogue metrics, and the keys that are none.

    A value is taken as is, or from ``{"value": v, "unit": u}`` when ``u`` is the catalogue's
    unit (a codec reporting another unit is not silently mis-scaled: the key is ignored).
    """
    taken: dict[str, Any] = {}
    ignored: list[str] = []
    for key, value in decoded.items():
        entry = metrics.CATALOGUE.get(key)
        if entry is None:
            ignored.append(key)
            continue
        if isinstance(value, dict) and "value" in value:
            if value.get("unit", entry.unit) != entry.unit:
                ignored.append(key)
                continue
            value = value["value"]
        taken[key] = value
    return taken, ignored
