"""HTTP routes where readings come in: telemetry from devices, LoRaWAN network servers.

They read the raw body themselves (JSON, NDJSON, CSV or a multipart upload), so they are not
on a JSON-only router. Devices, readings, seals and alerts are in ``iot.router``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse

from digital_village.api.deps import SessionDep, SideReaderDep, commit_now
from digital_village.auth.dependencies import ActorDep
from digital_village.errors import Invalid, UnsupportedMediaType
from digital_village.iot import adapters, ingest, integrations, metrics, shapes
from digital_village.iot.schemas import IgnoredEvent, IngestOut

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
    reader: SideReaderDep,
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
    # The device and the policies are read beside the writer and the payload checked before
    # it is taken: SQLite's one writer is held only to store the readings.
    source = reader if reader is not None else session
    device = ingest.target_device(session=source, actor=actor, device_id=device_id)
    with shapes.gc_paused():
        policies = ingest.metric_policies(session=source)
        context = ingest.device_context(session=source, device=device)
        if reader is not None:
            reader.close()  # its read ends here, before the write begins
        checked = _checked(upload, ingest.now_ms(), device.id, policies)
        result = ingest.store_checked(session=session, context=context, checked=checked)
        # Free the batch while the collector still sleeps: freed objects leave the count that
        # sets it off, so the batch's rows do not start a collection when it wakes.
        del checked
    commit_now(session)
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
    commit_now(session)
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
    commit_now(session)
    return JSONResponse(result.as_dict())
