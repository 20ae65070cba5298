"""HTTP routes of the EPCIS 2.0 interface (GS1's REST binding, rooted at ``/api/v1/epcis``):
capture (JSON-LD or XML) and its jobs, the event query with every standard parameter, the
top-level resources, named queries with webhook and WebSocket subscriptions, and OPTIONS
discovery. Parse → service → schema; the request commits once."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from sqlalchemy.orm import Session
from starlette.requests import HTTPConnection
from starlette.routing import compile_path

from digital_village.api.deps import (
    SessionDep,
    SettingsDep,
    SideReaderDep,
    commit_now,
    get_settings,
    require_json,
)
from digital_village.api.problems import problem
from digital_village.auth.actor import Actor
from digital_village.auth.dependencies import ActorDep
from digital_village.db import utcnow
from digital_village.errors import (
    DomainError,
    NotFound,
    NotReady,
    UnsupportedMediaType,
)
from digital_village.ledger.dependencies import LedgerDep
from digital_village.trace import (
    capture,
    epcis_answers,
    epcis_query,
    epcis_query_run,
    epcis_xml,
    jobs,
    store,
)
from digital_village.trace.epcis import default_context
from digital_village.trace.epcis_query import SimpleEventQuery
from digital_village.trace.schemas import CaptureAccepted, CapturedEventOut, CaptureJobOut
from digital_village.trace.subscriptions import delivery
from digital_village.trace.vocab import DV_PREFIX, DV_VOCAB

ROOT = "/api/v1/epcis"
# The versions every EPCIS answer says it speaks, and the extension namespaces it writes
# (the EPCIS 2.0 REST binding's headers).
EPCIS_HEADERS = {
    "GS1-EPCIS-Version": "2.0",
    "GS1-CBV-Version": "2.0",
    "GS1-Extensions": f"{DV_PREFIX}={DV_VOCAB}",
}


class VersionNotSupported(DomainError):
    """The client asks for an EPCIS or CBV version other than 2.0 (406)."""

    status = 406
    title = "Not acceptable"


def _version(text: str) -> tuple[int, ...] | None:
    try:
        return tuple(int(part) for part in text.strip().split("."))[:2]
    except ValueError:
        return None


def _speaks_2_0(headers: Mapping[str, str], *, capture: bool) -> None:
    """Refuse a request that needs another EPCIS or CBV version than the 2.0 this server
    speaks (the binding's GS1-EPCIS-Version/-Min/-Max and GS1-CBV-… request headers); a
    capture may be EPCIS 1.2 (XML, converted)."""
    for standard in ("EPCIS", "CBV"):
        oldest = (1, 2) if capture and standard == "EPCIS" else (2, 0)
        for bound in ("Version", "Min", "Max"):
            name = f"GS1-{standard}-{bound}"
            value = headers.get(name)
            if value is None:
                continue
            version = _version(value)
            if (
                version is None
                or (bound == "Version" and not oldest <= version <= (2, 0))
                or (bound == "Min" and version > (2, 0))
                or (bound == "Max" and version < oldest)
            ):
                raise VersionNotSupported(
                    f"{name}: {value!r}; this server speaks {standard} 2.0",
                    type="epcisException:ImplementationException",
                    header=name,
                )


def json_or_xml(request: HTTPConnection) -> None:
    """EPCIS routes take JSON(-LD) and, where they say so, EPCIS XML (415 for anything else),
    from clients that accept EPCIS and CBV 2.0 (406 otherwise)."""
    capturing = request.url.path.endswith("/capture")
    _speaks_2_0(request.headers, capture=capturing)
    if not isinstance(request, Request):
        return  # a WebSocket upgrade has no body
    if epcis_xml.is_xml(request.headers.get("content-type", "")):
        if capturing and request.method == "POST":
            return
        raise UnsupportedMediaType(
            "this route takes application/json", accepted=["application/json"]
        )
    require_json(request)


epcis_router = APIRouter(prefix=ROOT, tags=["epcis"], dependencies=[Depends(json_or_xml)])


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
    reader: SideReaderDep,
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
        reader=reader,
    )
    commit_now(session)
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


# --- the query interface (EPCIS 2.0 REST binding) -----------------------------------------------


def _page_key(request: Request) -> bytes:
    """The HMAC key of page tokens, derived once from the server's signing key."""
    key: bytes | None = getattr(request.app.state, "epcis_page_key", None)
    if key is None:
        path = get_settings(request).effective_ledger_key_path
        try:
            secret = path.read_bytes()
        except OSError as error:
            raise NotReady(
                f"the server's signing key is missing at {path}; run `dv init`"
            ) from error
        key = request.app.state.epcis_page_key = epcis_query_run.token_key(secret)
    return key


PageKeyDep = Annotated[bytes, Depends(_page_key)]
# Paging of the lists (named queries, top-level resources), as the event query pages.
PerPage = Annotated[int, Query(alias="perPage", ge=1, le=epcis_query.MAX_PER_PAGE)]
PageToken = Annotated[str | None, Query(alias="nextPageToken")]

EVENTS_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "An EPCISQueryDocument; the next page's URL in the Link header",
        "content": {"application/xml": {"schema": {"type": "string"}}},
    },
    400: {"description": "an unknown or malformed query parameter, named in the problem"},
    413: {"description": "more events match than maxEventCount"},
}
_QUERY_DOC = (
    "Every EPCIS 2.0 SimpleEventQuery parameter: `eventType`; `GE_`/`GT_`/`LE_`/`LT_` on "
    "`eventTime` and `recordTime`; `EQ_action`, `EQ_bizStep`, `EQ_disposition`, `EQ_readPoint`, "
    "`WD_readPoint`, `EQ_bizLocation`, `WD_bizLocation`, `EQ_eventID`, `EQ_transformationID`, "
    "`EQ_persistentDisposition_set`/`_unset`; `MATCH_epc`, `MATCH_parentID`, `MATCH_inputEPC`, "
    "`MATCH_outputEPC`, `MATCH_anyEPC`, `MATCH_epcClass`, `MATCH_inputEPCClass`, "
    "`MATCH_outputEPCClass`, `MATCH_anyEPCClass`; `EQ_`/`GT_`/`GE_`/`LT_`/`LE_quantity[_UOM]`; "
    "`EQ_bizTransaction_<type>`, `EQ_source_<type>`, `EQ_destination_<type>`; "
    "`EXISTS_errorDeclaration`, `GE_`/`LT_errorDeclarationTime`, `EQ_errorReason`, "
    "`EQ_correctiveEventID`; the sensor parameters (`EXISTS_sensorElementList`, `EQ_type`, "
    "`GE_time`, `EQ_deviceID`, `GE_value_<UOM>`, `LT_maxValue_<UOM>`, …); extensions: "
    "`EQ_`/`GT_`/`GE_`/`LT_`/`LE_`/`EXISTS_` with `<prefix>:<name>`, `INNER_`, `ILMD_`, "
    "`ERROR_DECLARATION_`, `readPoint_`, `bizLocation_` (prefixes from the event's @context "
    "or the GS1-Extensions header); `EXISTS_<field>`; `orderBy` (eventTime, recordTime), "
    "`orderDirection`, `eventCountLimit`, `maxEventCount`, `perPage`, `nextPageToken`. "
    "Lists: repeat the parameter or separate values with `|`. An unknown parameter is 400."
)


def query_of(request: Request, extra: Sequence[tuple[str, str]] = ()) -> SimpleEventQuery:
    namespaces = epcis_query.parse_extensions_header(request.headers.get("GS1-Extensions"))
    return epcis_query.parse([*extra, *request.query_params.multi_items()], namespaces=namespaces)


def next_link(request: Request, token: str | None, headers: dict[str, str]) -> None:
    if token is not None:
        next_url = request.url.include_query_params(nextPageToken=token)
        headers["Link"] = f'<{next_url}>; rel="next"'


def events_answer(
    request: Request,
    session: Session,
    actor: Actor,
    key: bytes,
    query: SimpleEventQuery,
    *,
    query_name: str = "SimpleEventQuery",
) -> Response:
    """One page of a query's events as an EPCISQueryDocument (JSON-LD, or XML on request)."""
    page = epcis_query_run.run(
        session=session, query=query, scope=epcis_query_run.ReadScope.of(actor), key=key
    )
    headers = dict(EPCIS_HEADERS)
    next_link(request, page.next_token, headers)
    if _wants_xml(request.headers.get("accept", "")):
        xml = epcis_answers.query_document(
            page.bodies,
            creation_date=_rfc3339(utcnow()),
            context=default_context(),
            query_name=query_name,
        )
        return Response(xml, media_type="application/xml", headers=headers)
    document = delivery.query_document(
        events=page.bodies,
        query_name=query_name,
        subscription_id=None,
        document_id=None,
        created=utcnow(),
    )
    return JSONResponse(document, headers=headers)


@epcis_router.get("/events", responses=EVENTS_RESPONSES, description=_QUERY_DOC)
def query_events(
    request: Request, session: SessionDep, actor: ActorDep, key: PageKeyDep
) -> Response:
    """EPCIS 2.0 SimpleEventQuery: an EPCISQueryDocument, paged by ``nextPageToken``.

    Admins see every event, managers their cooperative's, farmers their household's.
    """
    return events_answer(request, session, actor, key, query_of(request))


@epcis_router.get("/events/{event_id:part}", responses={404: {"description": "no such event"}})
def get_event(event_id: str, session: SessionDep, actor: ActorDep, key: PageKeyDep) -> Response:
    """One event by its eventID (percent-encoded in the path)."""
    query = epcis_query.parse([("EQ_eventID", event_id), ("perPage", "1")])
    page = epcis_query_run.run(
        session=session, query=query, scope=epcis_query_run.ReadScope.of(actor), key=key
    )
    if not page.bodies:
        raise NotFound(f"no event {event_id} that this token may read")
    return JSONResponse(page.bodies[0], headers=EPCIS_HEADERS)


# --- named queries ----------------------------------------------------------------------------

_PAGING_ONLY = frozenset({"perPage", "nextPageToken"})


def only_paging(request: Request) -> None:
    for name in request.query_params:
        if name not in _PAGING_ONLY:
            raise epcis_query.QueryParameterError(
                name,
                f"unknown query parameter {name!r}: this resource takes perPage, nextPageToken",
            )


_TOP_LEVEL: dict[str, str] = {
    "eventTypes": "eventType",
    "epcs": "epcs",
    "bizSteps": "EQ_bizStep",
    "bizLocations": "EQ_bizLocation",
    "readPoints": "EQ_readPoint",
    "dispositions": "EQ_disposition",
}


def _values_route(resource: str) -> Callable[..., Response]:
    def list_values(
        request: Request,
        session: SessionDep,
        actor: ActorDep,
        key: PageKeyDep,
        per_page: PerPage = epcis_query.DEFAULT_PER_PAGE,
        next_page_token: PageToken = None,
    ) -> Response:
        only_paging(request)
        values, token = epcis_query_run.distinct_values(
            session=session,
            resource=resource,
            scope=epcis_query_run.ReadScope.of(actor),
            per_page=per_page,
            token=next_page_token,
            key=key,
        )
        headers = dict(EPCIS_HEADERS)
        next_link(request, token, headers)
        return JSONResponse(values, headers=headers)

    list_values.__doc__ = f"The {resource} named by the events this token may read, paged."
    return list_values


def _resource_route(resource: str) -> Callable[..., Response]:
    def sub_resources(value: str, actor: ActorDep) -> Response:
        epcis_query_run.ReadScope.of(actor)
        return JSONResponse(["events"], headers=EPCIS_HEADERS)

    sub_resources.__doc__ = f"What one of the {resource} offers: its events."
    return sub_resources


def _resource_events_route(resource: str) -> Callable[..., Response]:
    def resource_events(
        value: str, request: Request, session: SessionDep, actor: ActorDep, key: PageKeyDep
    ) -> Response:
        parameter = _TOP_LEVEL[resource]
        query = query_of(request, [(parameter, value)] if parameter != "epcs" else [])
        if parameter == "epcs":
            query.matches[epcis_query_run.ANY_FIELD] = [value]
            query.params = (("epcs", value), *query.params)
        return events_answer(request, session, actor, key, query)

    resource_events.__doc__ = (
        f"The events of one of the {resource} (percent-encode URIs), with any other query "
        "parameter of /events."
    )
    return resource_events


for _resource in _TOP_LEVEL:
    epcis_router.add_api_route(f"/{_resource}", _values_route(_resource), methods=["GET"])
    epcis_router.add_api_route(
        f"/{_resource}/{{value:part}}", _resource_route(_resource), methods=["GET"]
    )
    epcis_router.add_api_route(
        f"/{_resource}/{{value:part}}/events",
        _resource_events_route(_resource),
        methods=["GET"],
        responses=EVENTS_RESPONSES,
    )


# --- discovery --------------------------------------------------------------------------------

DISCOVERY_HEADERS = {
    **EPCIS_HEADERS,
    "GS1-EPCIS-Min": "2.0",
    "GS1-EPCIS-Max": "2.0",
    "GS1-CBV-Min": "2.0",
    "GS1-CBV-Max": "2.0",
    "GS1-Vendor-Version": "digital-village",
}


@epcis_router.options("/", include_in_schema=False)
@epcis_router.options("/{path:path}", include_in_schema=False)
def discover(request: Request, settings: SettingsDep, path: str = "") -> Response:
    """OPTIONS: the EPCIS and CBV versions, extensions and methods a resource supports."""
    methods = {"OPTIONS"}
    # Every route of the interface, the named queries' router included, by its full path.
    for route in iter_route_contexts(request.app.routes):
        full = route.path or ""
        if full.startswith(ROOT) and route.methods and _path_regex(full).match(request.url.path):
            methods.update(route.methods)
    if methods == {"OPTIONS"} and path:
        raise NotFound(f"no EPCIS resource {request.url.path}")
    headers = {**DISCOVERY_HEADERS, "Allow": ", ".join(sorted(methods))}
    if path.startswith("capture"):
        headers.update(_capture_headers(settings.max_body_bytes))
    return Response(status_code=200, headers=headers)


@cache
def _path_regex(path: str) -> re.Pattern[str]:
    return compile_path(path)[0]


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
