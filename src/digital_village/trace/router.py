"""HTTP routes of the chain: products, single events, lots, 承诺达标合格证 and trace graphs.
The EPCIS 2.0 capture and query interface is ``trace/epcis_routes.py``. Parse → service →
schema; the request commits once."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Body, Query, Response
from fastapi.responses import JSONResponse

from digital_village.api import paths  # noqa: F401  (routes use {lot:part})
from digital_village.api.deps import JSON_BODY, SessionDep, SettingsDep, SideReaderDep, commit_now
from digital_village.auth.dependencies import ActorDep
from digital_village.errors import Invalid
from digital_village.labels import qr
from digital_village.ledger.dependencies import LedgerDep
from digital_village.trace import audit as trace_audit
from digital_village.trace import capture, graph, jobs, product_changes, products, tracing
from digital_village.trace.epcis import (
    EPCISParseError,
    EventModel,
    default_context,
    parse_event,
)
from digital_village.trace.epcis_routes import EPCIS_HEADERS
from digital_village.trace.identifiers import lot_uri
from digital_village.trace.schemas import (
    CapturedEventOut,
    CertificateIn,
    CertificateOut,
    IssuedCertificateOut,
    LotOut,
    PlausibilityIn,
    ProductIn,
    ProductOut,
)

router = APIRouter(prefix="/api/v1", tags=["trace"], dependencies=JSON_BODY)


# A certificate never changes once issued, nor does its code.
QR_HEADERS = {"Cache-Control": "public, max-age=86400"}
TraceDirection = Annotated[
    graph.Direction, Query(description="backward to the fields, or forward (recall)")
]


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


# The operationId it had when it changed only the ranges, kept for clients generated from it.
@router.patch(
    "/products/{gtin}",
    response_model=ProductOut,
    operation_id="update_plausibility_api_v1_products__gtin__patch",
)
def update_product(
    gtin: str, body: PlausibilityIn, session: SessionDep, actor: ActorDep, ledger: LedgerDep
) -> ProductOut:
    """Change a product (admin, or the product's manager): the ranges behind the plausibility
    flags, and its name, category, unit or net content — recorded on the ledger as a
    ``trace.product.changed`` entry whose index the answer names (none when nothing
    differs)."""
    product = products.update_plausibility(
        session=session,
        actor=actor,
        gtin=gtin,
        yield_per_mu=body.yield_per_mu.pair() if body.yield_per_mu else None,
        ratio=body.ratio.pair() if body.ratio else None,
    )
    if body.changes_facts():
        product = product_changes.change_product(
            session=session,
            ledger=ledger,
            actor=actor,
            gtin=product.gtin,
            name=body.name,
            category=body.category,
            unit=body.unit,
            net_quantity=body.net_quantity,
            net_unit=body.net_unit,
            clear_net_content=body.clears_net_content(),
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
    reader: SideReaderDep,
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
        reader=reader,
    )
    commit_now(session)
    return CapturedEventOut.of(result.events[0])


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
