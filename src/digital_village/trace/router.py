"""HTTP routes of the chain: products, events, the EPCIS 2.0 capture and query interface, lots,
承诺达标合格证 and trace graphs. Parse → service → schema; the request commits once."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BeforeValidator

from digital_village.api import paths  # noqa: F401  (routes use {lot:part})
from digital_village.api.deps import JSON_BODY, SessionDep, SettingsDep, require_json
from digital_village.api.problems import problem
from digital_village.auth.dependencies import ActorDep
from digital_village.db import utcnow
from digital_village.errors import Invalid, UnsupportedMediaType
from digital_village.labels import qr
from digital_village.ledger.dependencies import LedgerDep
from digital_village.trace import audit as trace_audit
from digital_village.trace import capture, epcis_xml, jobs, products, store, tracing
from digital_village.trace.epcis import (
    EPCISParseError,
    EventModel,
    default_context,
    parse_event,
)
from digital_village.trace.identifiers import lot_uri
from digital_village.trace.schemas import (
    CaptureAccepted,
    CapturedEventOut,
    CaptureJobOut,
    CertificateIn,
    CertificateOut,
    IssuedCertificateOut,
    LotOut,
    PlausibilityIn,
    ProductIn,
    ProductOut,
)

router = APIRouter(prefix="/api/v1", tags=["trace"], dependencies=JSON_BODY)


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

EPCIS_HEADERS = {"GS1-EPCIS-Version": "2.0", "GS1-CBV-Version": "2.0"}
# A certificate never changes once issued, nor does its code.
QR_HEADERS = {"Cache-Control": "public, max-age=86400"}
TraceDirection = Annotated[
    tracing.Direction, Query(description="backward to the fields, or forward (recall)")
]


def _capture_headers(max_body_bytes: int) -> dict[str, str]:
    return {
        **EPCIS_HEADERS,
        "GS1-CAPTURE-limit": str(capture.CAPTURE_EVENT_LIMIT),
        "GS1-CAPTURE-file-size-limit": str(max_body_bytes),
    }


# --- products ---------------------------------------------------------------------------------


@router.post("/products", response_model=ProductOut, status_code=201)
def register_product(
    body: ProductIn, session: SessionDep, actor: ActorDep, ledger: LedgerDep
) -> ProductOut:
    """Register a product under its GTIN (admin, or the manager of its cooperative)."""
    cooperative_id = (
        body.cooperative_id if body.cooperative_id is not None else actor.cooperative_id
    )
    if cooperative_id is None:
        raise Invalid(
            "cooperative_id is needed: which cooperative owns the product", field="cooperative_id"
        )
    product = products.register_product(
        session=session,
        ledger=ledger,
        actor=actor,
        gtin=body.gtin,
        name=body.name,
        category=body.category,
        cooperative_id=cooperative_id,
        unit=body.unit,
        net_quantity=body.net_quantity,
        net_unit=body.net_unit,
        yield_per_mu=body.yield_per_mu.pair() if body.yield_per_mu else None,
        ratio=body.ratio.pair() if body.ratio else None,
    )
    return ProductOut.of(product)


@router.get("/products", response_model=list[ProductOut])
def list_products(session: SessionDep, cooperative_id: int | None = None) -> list[ProductOut]:
    """Registered products (public)."""
    rows = products.list_products(session=session, cooperative_id=cooperative_id)
    return [ProductOut.of(row) for row in rows]


@router.get("/products/{gtin}", response_model=ProductOut)
def get_product(gtin: str, session: SessionDep) -> ProductOut:
    """One product by GTIN (public)."""
    return ProductOut.of(products.get_product(session=session, gtin=gtin))


@router.patch("/products/{gtin}", response_model=ProductOut)
def update_plausibility(
    gtin: str, body: PlausibilityIn, session: SessionDep, actor: ActorDep
) -> ProductOut:
    """Change the ranges behind the plausibility flags (admin, or the product's manager)."""
    product = products.update_plausibility(
        session=session,
        actor=actor,
        gtin=gtin,
        yield_per_mu=body.yield_per_mu.pair() if body.yield_per_mu else None,
        ratio=body.ratio.pair() if body.ratio else None,
    )
    return ProductOut.of(product)


# --- events -----------------------------------------------------------------------------------


@router.post(
    "/events", response_model=CapturedEventOut, status_code=201, response_model_by_alias=True
)
def record_event(
    event: Annotated[
        dict[str, Any],
        Body(description="one EPCIS 2.0 event (ObjectEvent, TransformationEvent, ...)"),
    ],
    session: SessionDep,
    actor: ActorDep,
    ledger: LedgerDep,
    settings: SettingsDep,
) -> CapturedEventOut:
    """Record one EPCIS event: field work by a farmer, processing by a manager.

    The answer carries the event's eventID (its CBV 2.0 hash), its ledger index and the URL
    of its inclusion proof.
    """
    try:
        model: EventModel = parse_event(event)
    except EPCISParseError as error:
        raise jobs.parse_errors(error) from None
    result = capture.capture(
        session=session,
        ledger=ledger,
        actor=actor,
        events=[model],
        base_url=settings.public_base_url,
        context=model.context or default_context(),
        pointer=None,
        strict_hash=settings.epcis_strict_hash,
        max_quantity=settings.max_quantity,
    )
    return CapturedEventOut.of(result.events[0])


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
        xml = epcis_xml.query_document(
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


# --- lots, certificates -----------------------------------------------------------------------


@router.get("/lots/{gtin}/{lot:part}", response_model=LotOut)
def get_lot(gtin: str, lot: str, session: SessionDep, settings: SettingsDep) -> LotOut:
    """A lot: what was made, what is left, its items and certificates (public)."""
    row = products.get_lot(session=session, gtin=gtin, lot=lot)
    product = products.get_product(session=session, gtin=row.gtin)
    certificates = products.certificates_of_lot(session=session, lot_id=row.id)
    return LotOut(
        gtin=row.gtin,
        lot=row.lot,
        uri=lot_uri(settings.public_base_url, row.gtin, row.lot),
        product=product.name,
        category=product.category,
        origin=row.origin,
        quantity=row.produced,
        remaining=products.remaining(row),
        unit=product.unit,
        produced_at=row.produced_at,
        cooperative_id=row.cooperative_id,
        items=products.count_units(session=session, lot_id=row.id),
        certificates=[c.number for c in certificates],
        trace=f"/api/v1/trace/{row.gtin}/{quote(row.lot, safe='')}",
        epcis=f"/api/v1/lots/{row.gtin}/{quote(row.lot, safe='')}/epcis",
    )


@router.get("/lots/{gtin}/{lot:part}/verify")
def verify_lot(gtin: str, lot: str, session: SessionDep) -> dict[str, Any]:
    """Whether what the pages show of a lot agrees with the ledger: its product, its totals,
    its events, harvests and certificates, each row against the entry that records it
    (``problems`` names each difference by the entry's index, first first)."""
    found = trace_audit.check_lot(session=session, gtin=gtin, lot=lot)
    return {
        "gtin": products.normalise_gtin(gtin),
        "lot": lot,
        "ok": not found,
        "problems": trace_audit.problems_json(found),
    }


@router.get("/lots/{gtin}/{lot:part}/epcis")
def export_lot(gtin: str, lot: str, session: SessionDep, settings: SettingsDep) -> JSONResponse:
    """The lot's history as an EPCIS 2.0 EPCISDocument: every event of its backward trace,
    corrections included (public)."""
    document = tracing.lot_document(
        session=session, gtin=gtin, lot=lot, base_url=settings.public_base_url
    )
    return JSONResponse(document, media_type="application/ld+json", headers=EPCIS_HEADERS)


@router.post(
    "/lots/{gtin}/{lot:part}/certificates", response_model=IssuedCertificateOut, status_code=201
)
def issue_certificate(
    gtin: str,
    lot: str,
    body: CertificateIn,
    session: SessionDep,
    actor: ActorDep,
    ledger: LedgerDep,
    settings: SettingsDep,
) -> IssuedCertificateOut:
    """Issue a 承诺达标合格证 for the lot (admin, or the manager of its cooperative)."""
    row = products.get_lot(session=session, gtin=gtin, lot=lot)
    actor.require_cooperative(row.cooperative_id)
    origin = body.origin or tracing.origin_of_lot(session=session, lot=row)
    certificate = products.issue_certificate(
        session=session,
        ledger=ledger,
        actor=actor,
        gtin=gtin,
        lot=lot,
        contact=body.contact,
        basis=body.basis,
        origin=origin,
        issued_on=body.issued_on or tracing.china_today(),
        quantity=body.quantity,
        issuer=body.issuer,
    )
    public = CertificateOut.of(
        certificate,
        row,
        base_url=settings.public_base_url,
        lot_uri=lot_uri(settings.public_base_url, row.gtin, row.lot),
    )
    return IssuedCertificateOut(**public.model_dump(), contact=certificate.contact)


@router.get("/certificates/{number}", response_model=CertificateOut)
def get_certificate(number: str, session: SessionDep, settings: SettingsDep) -> CertificateOut:
    """A 承诺达标合格证 as printed (public: what its QR code opens)."""
    certificate = products.get_certificate(session=session, number=number)
    row = products.lots_by_id(session=session, ids=[certificate.lot_id])[certificate.lot_id]
    return CertificateOut.of(
        certificate,
        row,
        base_url=settings.public_base_url,
        lot_uri=lot_uri(settings.public_base_url, row.gtin, row.lot),
    )


@router.get("/certificates/{number}/verify")
def verify_certificate(number: str, session: SessionDep) -> dict[str, Any]:
    """Whether the certificate as stored is the one its issue entry records."""
    found = trace_audit.check_certificate(session=session, number=number)
    return {"number": number, "ok": not found, "problems": trace_audit.problems_json(found)}


@router.get(
    "/certificates/{number}/qr.{fmt}",
    response_class=Response,
    responses={
        200: {"description": "The QR code", "content": {"image/png": {}, "image/svg+xml": {}}}
    },
)
def certificate_qr(
    number: str, fmt: Literal["png", "svg"], session: SessionDep, settings: SettingsDep
) -> Response:
    """The QR code printed on a 承诺达标合格证, 25 mm wide: it opens the certificate (public)."""
    certificate = products.get_certificate(session=session, number=number)
    uri = products.certificate_uri(settings.public_base_url, certificate.number)
    if fmt == "png":
        return Response(qr.png(uri), media_type="image/png", headers=QR_HEADERS)
    return Response(qr.svg(uri), media_type="image/svg+xml", headers=QR_HEADERS)


# --- trace ------------------------------------------------------------------------------------


@router.get("/trace/parcels/{dkbm}")
def trace_parcel(dkbm: str, session: SessionDep, settings: SettingsDep) -> dict[str, Any]:
    """Forward from a parcel: every lot harvested on it and all made from them (public)."""
    return tracing.trace_parcel(session=session, dkbm=dkbm, base_url=settings.public_base_url)


@router.get("/trace/{gtin}/{lot:part}")
def trace_lot(
    gtin: str,
    lot: str,
    session: SessionDep,
    settings: SettingsDep,
    direction: TraceDirection = "backward",
) -> dict[str, Any]:
    """The trace graph of a lot: backward to parcels and households, or forward to every lot
    and item made from it (public; households by code with masked names)."""
    return tracing.trace_lot(
        session=session, gtin=gtin, lot=lot, direction=direction, base_url=settings.public_base_url
    )


@router.get("/trace/{gtin}/{lot:part}/{serial:part}")
def trace_item(
    gtin: str,
    lot: str,
    serial: str,
    session: SessionDep,
    settings: SettingsDep,
    direction: TraceDirection = "backward",
) -> dict[str, Any]:
    """The trace graph of one serialised item (a bottle) (public)."""
    return tracing.trace_unit(
        session=session,
        gtin=gtin,
        serial=serial,
        lot=lot,
        direction=direction,
        base_url=settings.public_base_url,
    )
