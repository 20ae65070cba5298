"""HTTP routes of the net: devices, telemetry, LoRaWAN integrations, readings, seals, alerts.

The telemetry and integration routes read the raw body themselves (JSON, NDJSON, CSV or a
multipart upload), so they are not on a JSON-only router; everything else takes JSON only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse

from digital_village.api.deps import JSON_BODY, SessionDep
from digital_village.auth.dependencies import ActorDep
from digital_village.errors import Invalid, UnsupportedMediaType
from digital_village.iot import (
    adapters,
    alerts,
    devices,
    ingest,
    integrations,
    metrics,
    queries,
    seal,
    shapes,
)
from digital_village.iot.schemas import (
    AlertOut,
    AlertRuleIn,
    AlertRuleOut,
    DeviceIn,
    DeviceOut,
    DeviceRegistered,
    IgnoredEvent,
    IngestOut,
    InstallationOut,
    MetricOut,
    MoveIn,
    RevokedOut,
    SealOut,
    TokenOut,
)
from digital_village.ledger.dependencies import LedgerDep

router = APIRouter(prefix="/api/v1", tags=["iot"])

JSON_TYPES = ("application/json",)
NDJSON_TYPES = (
    "application/x-ndjson",
    "application/ndjson",
    "application/jsonl",
    "application/x-jsonlines",
)
CSV_TYPES = ("text/csv", "application/csv")
TELEMETRY_TYPES = [*JSON_TYPES, *NDJSON_TYPES, *CSV_TYPES, "multipart/form-data"]


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _kind_of(media_type: str, filename: str | None = None) -> str | None:
    if media_type in JSON_TYPES or media_type.endswith("+json"):
        return "json"
    if media_type in NDJSON_TYPES:
        return "ndjson"
    if media_type in CSV_TYPES:
        return "csv"
    if filename:
        lowered = filename.lower()
        if lowered.endswith(".csv"):
            return "csv"
        if lowered.endswith((".ndjson", ".jsonl")):
            return "ndjson"
        if lowered.endswith(".json"):
            return "json"
    return None


class Upload:
    """A telemetry body: its bytes and how to read them."""

    def __init__(self, kind: str, body: bytes) -> None:
        self.kind = kind
        self.body = body


async def read_upload(request: Request) -> Upload:
    """The request body and its kind; 415 for a type the route does not take."""
    media_type = _media_type(request)
    if media_type == "multipart/form-data":
        form = await request.form()
        part = form.get("file")
        if part is None or isinstance(part, str):
            raise Invalid('a multipart upload needs one file in the field named "file"')
        part_type = (part.content_type or "").split(";", 1)[0].strip().lower()
        kind = _kind_of(part_type, part.filename)
        if kind is None:
            raise UnsupportedMediaType(
                f"the uploaded file {part.filename!r} ({part_type or 'no type'}) "
                "is not CSV or NDJSON",
                accepted=TELEMETRY_TYPES,
            )
        return Upload(kind, await part.read())
    kind = _kind_of(media_type) if media_type else "json"
    if kind is None:
        raise UnsupportedMediaType(
            f"this route takes JSON, NDJSON, CSV or a multipart upload, not {media_type}",
            accepted=TELEMETRY_TYPES,
        )
    return Upload(kind, await request.body())


async def read_json_body(request: Request) -> bytes:
    """A JSON body, raw (the integrations parse it themselves); 415 otherwise."""
    media_type = _media_type(request)
    if media_type and media_type not in JSON_TYPES and not media_type.endswith("+json"):
        raise UnsupportedMediaType(
            f"this route takes application/json, not {media_type} "
            "(set the network server's payload encoding to JSON)",
            accepted=list(JSON_TYPES),
        )
    return await request.body()


UploadDep = Annotated[Upload, Depends(read_upload)]
JsonBytesDep = Annotated[bytes, Depends(read_json_body)]


def _checked(
    upload: Upload,
    now_ms: int,
    device_id: int,
    policies: Mapping[str, metrics.OutOfRangePolicy] | None,
) -> shapes.Checked:
    try:
        if upload.kind == "ndjson":
            return shapes.check_ndjson(
                upload.body, now_ms=now_ms, device_id=device_id, policies=policies
            )
        if upload.kind == "csv":
            return shapes.check_csv(
                upload.body, now_ms=now_ms, device_id=device_id, policies=policies
            )
        payload = shapes.parse_json_bytes(upload.body)
        return shapes.check_json(payload, now_ms=now_ms, device_id=device_id, policies=policies)
    except shapes.PayloadError as error:
        raise ingest.payload_invalid(error) from None


_READING = {
    "type": "object",
    "required": ["metric", "time", "value"],
    "additionalProperties": False,
    "properties": {
        "metric": {"type": "string", "examples": ["soil_moisture"]},
        "time": {
            "oneOf": [
                {"type": "string", "format": "date-time"},
                {"type": "integer", "description": "milliseconds since 1970-01-01T00:00:00Z"},
            ]
        },
        "value": {"type": "number"},
    },
}
_THINGSBOARD = {
    "type": "object",
    "required": ["values"],
    "additionalProperties": False,
    "properties": {
        "ts": {"type": "integer", "description": "milliseconds since 1970 (default: now)"},
        "values": {"type": "object", "additionalProperties": {"type": "number"}},
    },
}
TELEMETRY_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {
                            "title": "bulk",
                            "type": "object",
                            "required": ["readings"],
                            "additionalProperties": False,
                            "properties": {
                                "device_id": {"type": "integer"},
                                "readings": {"type": "array", "items": _READING, "minItems": 1},
                            },
                        },
                        {"title": "ThingsBoard", **_THINGSBOARD},
                        {"title": "ThingsBoard array", "type": "array", "items": _THINGSBOARD},
                        {
                            "title": "flat, server time",
                            "type": "object",
                            "additionalProperties": {"type": "number"},
                        },
                    ]
                },
                "example": {
                    "readings": [
                        {
                            "metric": "soil_moisture",
                            "time": "2026-05-01T08:00:00+08:00",
                            "value": 31.2,
                        }
                    ]
                },
            },
            "application/x-ndjson": {
                "schema": {"type": "string", "description": "one reading per line"}
            },
            "text/csv": {
                "schema": {"type": "string", "description": "time,metric,value or time,<metric>,…"}
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            },
        },
    }
}


@router.post("/telemetry", response_model=IngestOut, openapi_extra=TELEMETRY_BODY)
def post_telemetry(
    upload: UploadDep,
    session: SessionDep,
    actor: ActorDep,
    device_id: Annotated[
        int | None, Query(description="the device (manager, admin); a device token writes its own")
    ] = None,
) -> JSONResponse:
    """Store a device's readings: bulk JSON, ThingsBoard shapes, flat values, NDJSON or CSV.

    The same reading (device, metric, time) sent again is counted as a duplicate, never stored
    twice. A malformed payload is refused whole (422, each problem named); a reading outside
    its metric's plausible range is rejected on its own, with its reason.
    """
    device = ingest.target_device(session=session, actor=actor, device_id=device_id)
    with shapes.gc_paused():
        policies = ingest.metric_policies(session=session)
        checked = _checked(upload, ingest.now_ms(), device.id, policies)
        result = ingest.ingest_checked(session=session, device=device, checked=checked)
        # Free the batch while the collector still sleeps: freed objects leave the count that
        # sets it off, so the batch's rows do not start a collection when it wakes.
        del checked
    return JSONResponse(result.as_dict())


@router.post(
    "/integrations/chirpstack",
    response_model=IngestOut | IgnoredEvent,
    tags=["integrations"],
)
def chirpstack_event(
    body: JsonBytesDep,
    session: SessionDep,
    event: Annotated[str, Query(description="ChirpStack event type: up, join, status, ...")],
    secret: Annotated[
        str | None, Header(alias=integrations.HEADER, description="from `dv integrations add`")
    ] = None,
) -> JSONResponse:
    """ChirpStack v4 HTTP integration (JSON encoding): ``up`` events are stored; others ignored."""
    integration = integrations.authenticate(
        session=session, kind=adapters.CHIRPSTACK, presented=secret
    )
    if event != "up":
        return JSONResponse({"ignored": event})
    try:
        uplink = adapters.parse_chirpstack_up(shapes.parse_json_bytes(body))
    except shapes.PayloadError as error:
        raise ingest.payload_invalid(error) from None
    result = integrations.ingest_uplink(session=session, integration=integration, uplink=uplink)
    return JSONResponse(result.as_dict())


@router.post("/integrations/ttn", response_model=IngestOut | IgnoredEvent, tags=["integrations"])
def ttn_webhook(
    body: JsonBytesDep,
    session: SessionDep,
    secret: Annotated[
        str | None, Header(alias=integrations.HEADER, description="from `dv integrations add`")
    ] = None,
) -> JSONResponse:
    """The Things Stack v3 webhook: uplink messages are stored; other messages ignored."""
    integration = integrations.authenticate(session=session, kind=adapters.TTN, presented=secret)
    try:
        payload = shapes.parse_json_bytes(body)
        message = adapters.ttn_message_type(payload)
        if message != "uplink_message":
            return JSONResponse({"ignored": message or "unknown message"})
        uplink = adapters.parse_ttn_uplink(payload)
    except shapes.PayloadError as error:
        raise ingest.payload_invalid(error) from None
    result = integrations.ingest_uplink(session=session, integration=integration, uplink=uplink)
    return JSONResponse(result.as_dict())


# --- devices ---------------------------------------------------------------------------------


def _device_out(session: Any, device_id: int) -> DeviceOut:
    device = devices.get_device(session=session, device_id=device_id)
    rows = list(devices.installations(session=session, device_id=device.id))
    return DeviceOut.build(device, rows)


@router.post("/devices", response_model=DeviceRegistered, status_code=201, dependencies=JSON_BODY)
def register_device(
    body: DeviceIn, session: SessionDep, actor: ActorDep, ledger: LedgerDep
) -> DeviceRegistered:
    """Register a device on a parcel (manager of its cooperative, admin); its token, once."""
    made = devices.register_device(
        session=session,
        ledger=ledger,
        actor=actor,
        model=body.model,
        parcel=body.parcel,
        lon=body.lon,
        lat=body.lat,
        dev_eui=body.dev_eui,
        name=body.name,
        metric_names=body.metrics,
        cooperative=body.cooperative,
        installed_at=body.installed_at,
    )
    out = DeviceOut.build(made.device, [made.installation])
    return DeviceRegistered(**out.model_dump(), device_id=made.device.id, token=made.token)


@router.get("/devices", response_model=list[DeviceOut])
def list_devices(session: SessionDep, actor: ActorDep) -> list[DeviceOut]:
    """Devices: all for an admin, its cooperative's for a manager."""
    return [
        DeviceOut.build(device, list(devices.installations(session=session, device_id=device.id)))
        for device in devices.list_devices(session=session, actor=actor)
    ]


@router.get("/devices/{device_id}", response_model=DeviceOut)
def get_device(device_id: int, session: SessionDep) -> DeviceOut:
    """One device with its installation history (public: where sensors stand is no secret)."""
    return _device_out(session, device_id)


@router.post(
    "/devices/{device_id}/moves",
    response_model=InstallationOut,
    status_code=201,
    dependencies=JSON_BODY,
)
def move_device(
    device_id: int, body: MoveIn, session: SessionDep, actor: ActorDep, ledger: LedgerDep
) -> InstallationOut:
    """Move a device; its earlier readings stay on the parcel they were taken on."""
    installation = devices.move_device(
        session=session,
        ledger=ledger,
        actor=actor,
        device_id=device_id,
        parcel=body.parcel,
        lon=body.lon,
        lat=body.lat,
        at=body.at,
    )
    return InstallationOut.model_validate(installation)


@router.post(
    "/devices/{device_id}/token", response_model=TokenOut, status_code=201, dependencies=JSON_BODY
)
def rotate_token(device_id: int, session: SessionDep, actor: ActorDep) -> TokenOut:
    """Revoke the device's tokens and issue a new one (shown once)."""
    token = devices.rotate_token(session=session, actor=actor, device_id=device_id)
    return TokenOut(device_id=device_id, token=token)


@router.delete("/devices/{device_id}/token", response_model=RevokedOut, dependencies=JSON_BODY)
def revoke_tokens(device_id: int, session: SessionDep, actor: ActorDep) -> RevokedOut:
    """Revoke every token of the device at once."""
    count = devices.revoke_tokens(session=session, actor=actor, device_id=device_id)
    return RevokedOut(device_id=device_id, revoked=count)


@router.delete("/devices/{device_id}", response_model=DeviceOut, dependencies=JSON_BODY)
def retire_device(device_id: int, session: SessionDep, actor: ActorDep) -> DeviceOut:
    """Retire a device: tokens revoked, installation closed; its readings are kept."""
    devices.retire_device(session=session, actor=actor, device_id=device_id)
    return _device_out(session, device_id)


# --- readings ----------------------------------------------------------------------------------


@router.get("/metrics", response_model=list[MetricOut])
def list_metrics(session: SessionDep) -> list[MetricOut]:
    """The metric catalogue: names, units, plausible ranges and out-of-range policies in force."""
    overrides = ingest.metric_policies(session=session) or {}
    return [
        MetricOut(
            name=entry.name,
            code=shapes.METRIC_CODES[entry.name],
            unit=entry.unit,
            label_zh=entry.label_zh,
            label_en=entry.label_en,
            minimum=entry.minimum,
            maximum=entry.maximum,
            policy=overrides.get(entry.name, entry.policy).value,
        )
        for entry in metrics.CATALOGUE.values()
    ]


@router.get("/devices/{device_id}/readings")
def device_readings(
    device_id: int,
    session: SessionDep,
    metric: Annotated[str, Query(description="a catalogue metric, e.g. soil_moisture")],
    start: Annotated[str | None, Query(alias="from", description="RFC 3339 or epoch ms")] = None,
    end: Annotated[str | None, Query(alias="to", description="RFC 3339 or epoch ms")] = None,
    bucket: Annotated[str | None, Query(description="downsample: 15m, 1h, 1d ...")] = None,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_RAW_POINTS)] = 10_000,
) -> dict[str, Any]:
    """A device's readings of one metric in [from, to), raw or per bucket (min/max/mean/count).

    Day buckets are China Standard Time days.
    """
    return queries.device_readings(
        session=session,
        device_id=device_id,
        metric=metric,
        start=start,
        end=end,
        bucket=bucket,
        limit=limit,
    )


@router.get("/devices/{device_id}/latest")
def latest_values(device_id: int, session: SessionDep) -> dict[str, Any]:
    """The newest reading of each metric of a device."""
    return queries.latest_values(session=session, device_id=device_id)


@router.get("/devices/{device_id}/readings/proof")
def reading_proof(
    device_id: int,
    session: SessionDep,
    metric: str,
    time: Annotated[str, Query(description="the reading's time, RFC 3339 or epoch ms")],
) -> dict[str, Any]:
    """Proof that a sealed reading is in its day's Merkle root, and that root in the ledger.

    Check it offline with `dv iot verify-reading FILE --vkey KEY`.
    """
    instant = queries.parse_instant(time, "time")
    if instant is None:
        raise Invalid("time: give the reading's time, RFC 3339 or epoch milliseconds")
    return seal.reading_proof(session=session, device_id=device_id, metric=metric, time_ms=instant)


@router.get("/parcels/{dkbm}/readings")
def parcel_readings(
    dkbm: str,
    session: SessionDep,
    metric: str,
    start: Annotated[str | None, Query(alias="from")] = None,
    end: Annotated[str | None, Query(alias="to")] = None,
    bucket: str | None = None,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_RAW_POINTS)] = 10_000,
) -> dict[str, Any]:
    """One metric on a parcel, from every device installed there while it was there."""
    return queries.parcel_readings(
        session=session, dkbm=dkbm, metric=metric, start=start, end=end, bucket=bucket, limit=limit
    )


@router.get("/parcels/{dkbm}/conditions")
def parcel_conditions(
    dkbm: str,
    session: SessionDep,
    start: Annotated[dt.date | None, Query(alias="from", description="first day")] = None,
    end: Annotated[dt.date | None, Query(alias="to", description="last day")] = None,
    metric: Annotated[
        list[str] | None, Query(description="default: soil moisture, temperature")
    ] = None,
) -> dict[str, Any]:
    """Growing conditions per day (min / mean / max), with each day's seal in the ledger."""
    return queries.parcel_daily(
        session=session, dkbm=dkbm, first=start, last=end, metric_names=metric
    )


@router.get("/parcels/{dkbm}/seals", response_model=list[SealOut])
def parcel_seals(dkbm: str, session: SessionDep, day: dt.date | None = None) -> list[SealOut]:
    """The parcel's sealed days, each re-checked against the readings stored now."""
    found = []
    for made in seal.seals_of(session=session, dkbm=dkbm, day=day):
        check = seal.check_seal(session=session, seal=made)
        found.append(
            SealOut(
                parcel=made.parcel_dkbm,
                day=made.day,
                part=made.part,
                count=made.count,
                root=made.root_hash.hex(),
                ledger_seq=made.ledger_seq,
                verified=check.ok,
            )
        )
    return found


# --- alerts ------------------------------------------------------------------------------------


@router.post("/alert-rules", response_model=AlertRuleOut, status_code=201, dependencies=JSON_BODY)
def add_alert_rule(body: AlertRuleIn, session: SessionDep, actor: ActorDep) -> AlertRuleOut:
    """A threshold on a parcel's metric (manager, admin): readings past it raise alerts."""
    rule = alerts.add_rule(
        session=session,
        actor=actor,
        dkbm=body.parcel,
        metric=body.metric,
        below=body.below,
        above=body.above,
        cooperative=body.cooperative,
    )
    return AlertRuleOut.build(rule)


@router.get("/alert-rules", response_model=list[AlertRuleOut])
def list_alert_rules(session: SessionDep, actor: ActorDep) -> list[AlertRuleOut]:
    """Active alert rules of the cooperative (all for an admin)."""
    return [AlertRuleOut.build(rule) for rule in alerts.list_rules(session=session, actor=actor)]


@router.delete("/alert-rules/{rule_id}", response_model=AlertRuleOut, dependencies=JSON_BODY)
def disable_alert_rule(rule_id: int, session: SessionDep, actor: ActorDep) -> AlertRuleOut:
    """Stop a rule; the alerts it raised are kept."""
    return AlertRuleOut.build(alerts.disable_rule(session=session, actor=actor, rule_id=rule_id))


@router.get("/alerts", response_model=list[AlertOut])
def list_alerts(
    session: SessionDep,
    actor: ActorDep,
    parcel: str | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> list[AlertOut]:
    """Alerts raised for the cooperative (all for an admin), newest first."""
    rows = alerts.list_alerts(session=session, actor=actor, dkbm=parcel, limit=limit)
    return [AlertOut.build(row) for row in rows]
