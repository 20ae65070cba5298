"""HTTP routes of the EPCIS 2.0 interface: capture (JSON-LD or XML) and its jobs, and the
event query. Parse → service → schema; the request commits once."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BeforeValidator

from digital_village.api.deps import SessionDep, SettingsDep, require_json
from digital_village.api.problems import problem
from digital_village.auth.dependencies import ActorDep
from digital_village.db import utcnow
from digital_village.errors import Invalid, UnsupportedMediaType
from digital_village.ledger.dependencies import LedgerDep
from digital_village.trace import capture, epcis_answers, epcis_xml, jobs, store
from digital_village.trace.epcis import default_context
from digital_village.trace.schemas import CaptureAccepted, CapturedEventOut, CaptureJobOut

# The versions every EPCIS answer says it speaks (the EPCIS 2.0 REST binding's headers).
EPCIS_HEADERS = {"GS1-EPCIS-Version": "2.0", "GS1-CBV-Version": "2.0"}


def _json_or_xml(request: Request) -> None:
    """EPCIS routes take JSON(-LD) and, where they say so, EPCIS XML (415 for anything else)."""
    if epcis_xml.is_xml(request.headers.get("content-type", "")):
        if request.url.path.endswith("/capture") and request.method == "POST":
            return
        raise UnsupportedMediaType(
            "this route takes application/json", accepted=["application/json"]
        )
    require_json(request)


epcis_router = APIRouter(
    prefix="/api/v1/epcis", tags=["epcis"], dependencies=[Depends(_json_or_xml)]
)


def _capture_headers(max_body_bytes: int) -> dict[str, str]:
    return {
        **EPCIS_HEADERS,
        "GS1-CAPTURE-limit": str(capture.CAPTURE_EVENT_LIMIT),
        "GS1-CAPTURE-file-size-limit": str(max_body_bytes),
    }


_CAPTURE_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": {"type": "object"}},
        "application/ld+json": {"schema": {"type": "object"}},
        "application/xml": {"schema": {"type": "string", "format": "binary"}},
    },
}


async def _raw_body(request: Request) -> tuple[str, bytes]:
    return request.headers.get("content-type", ""), await request.body()


@epcis_router.post(
    "/capture",
    status_code=202,
    response_model=CaptureAccepted,
    response_model_by_alias=True,
    responses={202: {"headers": {"Location": {"description": "the capture job"}}}},
    openapi_extra={"requestBody": _CAPTURE_BODY},
)
def capture_document(
    raw: Annotated[tuple[str, bytes], Depends(_raw_body)],
    session: SessionDep,
    actor: ActorDep,
    ledger: LedgerDep,
    settings: SettingsDep,
    response: Response,
) -> CaptureAccepted | JSONResponse:
    """Capture an EPCISDocument: every event is stored, or none (the job records why).

    The body is EPCIS 2.0 JSON-LD, or EPCIS 2.0 or 1.2 XML (``Content-Type: application/xml``;
    1.2 is converted to the 2.0 model). Answers 202 with the capture job's id and its
    Location; a refused document gets a problem naming each fault by JSON pointer (XML: by
    line and element), and its job records the same errors.
    """
    job = jobs.capture_document(
        session=session,
        ledger=ledger,
        actor=actor,
        media_type=raw[0],
        body=raw[1],
        base_url=settings.public_base_url,
        strict_hash=settings.epcis_strict_hash,
        max_quantity=settings.max_quantity,
    )
    headers = _capture_headers(settings.max_body_bytes)
    location = f"/api/v1/epcis/capture/{job.capture_id}"
    if job.error is not None:
        error = job.error
        extra = {**error.extra, "errors": list(job.errors), "captureID": job.capture_id}
        return problem(
            error.status,
            error.detail,
            title=error.title,
            headers={**headers, "Location": location},
            **extra,
        )
    assert job.result is not None
    response.headers.update({**headers, "Location": location})
    return CaptureAccepted(
        capture_id=job.capture_id,
        location=location,
        event_count=len(job.result.events),
        events=[CapturedEventOut.of(event) for event in job.result.events],
    )


@epcis_router.get(
    "/capture/{capture_id}", response_model=CaptureJobOut, response_model_by_alias=True
)
def capture_job(capture_id: str, session: SessionDep, actor: ActorDep) -> CaptureJobOut:
    """A capture job's result: success, or the errors that made it roll back."""
    job = store.get_capture(session=session, capture_id=capture_id, actor=actor)
    rows = store.events_of_capture(session=session, capture_id=capture_id)
    bodies = store.event_json(session=session, events=rows, flag_hash_mismatch=True)
    return CaptureJobOut(
        capture_id=job.id,
        created_at=job.created_at,
        finished_at=job.finished_at,
        success=job.success,
        errors=json.loads(job.errors) if job.errors else [],
        event_count=job.event_count,
        events=[
            CapturedEventOut(
                event_id=row.event_id,
                event_type=row.event_type,
                biz_step=row.biz_step,
                ledger_seq=row.ledger_seq,
                proof=f"/api/v1/ledger/entries/{row.ledger_seq}/proof",
                lots=[],
                computed_event_id=body.get(store.COMPUTED_EVENT_ID),
            )
            for row, body in zip(rows, bodies, strict=True)
        ],
    )


def _plus_from_space(value: object) -> object:
    # An unencoded '+' of a UTC offset arrives as a space (form encoding): read it back.
    if isinstance(value, str) and " " in value:
        return re.sub(r" (\d{2}:?\d{2})$", r"+\1", value.strip())
    return value


QueryTime = Annotated[dt.datetime | None, BeforeValidator(_plus_from_space)]


def _values(raw: list[str] | None) -> list[str]:
    # EPCIS lists travel as repeated parameters or as one value with '|' between items.
    return [part for value in raw or [] for part in value.split("|") if part]


def _aware(name: str, value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        raise Invalid(f"{name} needs a UTC offset, e.g. 2026-05-01T00:00:00+08:00", field=name)
    return value


@epcis_router.get(
    "/events",
    responses={200: {"content": {"application/xml": {"schema": {"type": "string"}}}}},
)
def query_events(
    request: Request,
    session: SessionDep,
    actor: ActorDep,
    ge_event_time: Annotated[QueryTime, Query(alias="GE_eventTime")] = None,
    lt_event_time: Annotated[QueryTime, Query(alias="LT_eventTime")] = None,
    ge_record_time: Annotated[QueryTime, Query(alias="GE_recordTime")] = None,
    lt_record_time: Annotated[QueryTime, Query(alias="LT_recordTime")] = None,
    event_type: Annotated[list[str] | None, Query(alias="eventType")] = None,
    biz_step: Annotated[list[str] | None, Query(alias="EQ_bizStep")] = None,
    biz_location: Annotated[list[str] | None, Query(alias="EQ_bizLocation")] = None,
    read_point: Annotated[list[str] | None, Query(alias="EQ_readPoint")] = None,
    match_epc: Annotated[list[str] | None, Query(alias="MATCH_epc")] = None,
    match_any_epc: Annotated[list[str] | None, Query(alias="MATCH_anyEPC")] = None,
    match_epc_class: Annotated[list[str] | None, Query(alias="MATCH_epcClass")] = None,
    match_any_epc_class: Annotated[list[str] | None, Query(alias="MATCH_anyEPCClass")] = None,
    event_id: Annotated[list[str] | None, Query(alias="EQ_eventID")] = None,
    per_page: Annotated[int, Query(alias="perPage")] = store.DEFAULT_PER_PAGE,
    next_page_token: Annotated[str | None, Query(alias="nextPageToken")] = None,
) -> Response:
    """EPCIS 2.0 SimpleEventQuery: an EPCISQueryDocument, paged by ``nextPageToken``.

    JSON-LD, or EPCIS 2.0 XML when the Accept header prefers ``application/xml``.

    The next page's URL is in the ``Link`` header (rel="next"). Admins see every event,
    managers their cooperative's, farmers their household's.
    """
    query = store.EventQuery(
        ge_event_time=_aware("GE_eventTime", ge_event_time),
        lt_event_time=_aware("LT_eventTime", lt_event_time),
        ge_record_time=_aware("GE_recordTime", ge_record_time),
        lt_record_time=_aware("LT_recordTime", lt_record_time),
        event_types=_values(event_type),
        biz_steps=_values(biz_step),
        biz_locations=_values(biz_location),
        read_points=_values(read_point),
        match_epc=_values(match_epc),
        match_any_epc=_values(match_any_epc),
        match_epc_class=_values(match_epc_class),
        match_any_epc_class=_values(match_any_epc_class),
        event_ids=_values(event_id),
        per_page=per_page,
        next_page_token=next_page_token,
    )
    rows, token = store.query_events(session=session, query=query, actor=actor)
    events = store.event_json(session=session, events=rows, flag_hash_mismatch=True)
    headers = dict(EPCIS_HEADERS)
    if token is not None:
        next_url = request.url.include_query_params(nextPageToken=token)
        headers["Link"] = f'<{next_url}>; rel="next"'
    created = _rfc3339(utcnow())
    if _wants_xml(request.headers.get("accept", "")):
        xml = epcis_answers.query_document(
            events, creation_date=created, context=default_context(), query_name="SimpleEventQuery"
        )
        return Response(xml, media_type="application/xml", headers=headers)
    body = {
        "@context": default_context(),
        "type": "EPCISQueryDocument",
        "schemaVersion": "2.0",
        "creationDate": created,
        "epcisBody": {
            "queryResults": {"queryName": "SimpleEventQuery", "resultsBody": {"eventList": events}}
        },
    }
    return JSONResponse(body, headers=headers)


def _wants_xml(accept: str) -> bool:
    """Whether the Accept header prefers EPCIS XML to JSON (by q, then by order)."""
    best: tuple[float, int, bool] | None = None
    for position, entry in enumerate(accept.split(",")):
        media, *params = (part.strip() for part in entry.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        xml = epcis_xml.is_xml(media)
        if not xml and not (media.endswith("json") or media in {"*/*", "application/*"}):
            continue
        candidate = (quality, -position, xml)
        if quality > 0 and (best is None or candidate[:2] > best[:2]):
            best = candidate
    return best is not None and best[2]


def _rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
