"""QR codes and label sheets over HTTP: ``/api/v1/labels/...``, and what ``dv labels`` prints.

* ``GET /api/v1/labels/{gtin}.png|svg`` — the product's QR code (public);
* ``GET /api/v1/labels/{gtin}/{lot}.png|svg`` — a lot's (public);
* ``GET /api/v1/labels/{gtin}/{lot}/{serial}.png|svg`` — one recorded serialised item's (public:
  the URI is printed on the item anyway);
* ``GET /api/v1/labels/parcels/{dkbm}.png|svg`` — a parcel sign's QR code (public);
* ``GET /api/v1/labels/{gtin}/{lot}/sheet.pdf?serials=0001-0024`` — a PDF sheet of labels
  for serials of the lot (a manager of the product's cooperative, or an admin): the serials
  named, or without ``serials`` the lot's recorded serials (``count`` caps either).

Each code carries the canonical GS1 Digital Link URI on ``DV_PUBLIC_BASE_URL`` (parcels:
``…/p/<DKBM>``), made by ``labels.qr``; sheets come from ``labels.sheet``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from digital_village.api import paths  # noqa: F401  (routes use {lot:part})
from digital_village.api.deps import SessionDep, SettingsDep
from digital_village.auth.actor import Actor
from digital_village.auth.dependencies import ActorDep
from digital_village.errors import Invalid, NotFound
from digital_village.gs1.keys import DigitalLinkError
from digital_village.labels import qr, sheet
from digital_village.parcels import service as parcels
from digital_village.parcels.codes import CodeError, parse_dkbm
from digital_village.trace import lineage, products
from digital_village.web import pages
from digital_village.web.history import CHINA

router = APIRouter(prefix="/api/v1/labels", tags=["labels"])
page_router = APIRouter(tags=["pages"])

MAX_SHEET_LABELS: Final = 5000
Format = Literal["png", "svg"]
SizeMm = Annotated[
    float | None, Query(gt=0, le=300, description="printed width in mm (quiet zone included)")
]
Dpi = Annotated[int, Query(ge=72, le=1200, description="PNG resolution")]
# A PNG wider than this many pixels is refused (300 mm at 1200 dpi would be 14,000).
MAX_PNG_PIXELS: Final = 6000
IMAGES: Final[dict[int | str, dict[str, Any]]] = {
    200: {"description": "The QR code", "content": {"image/png": {}, "image/svg+xml": {}}}
}


def _image(data: bytes, fmt: str, filename: str) -> Response:
    media = "image/png" if fmt == "png" else "image/svg+xml"
    return Response(
        data,
        media_type=media,
        headers={
            "Content-Disposition": f'inline; filename="{filename}.{fmt}"',
            "Cache-Control": "public, max-age=86400",
        },
    )


def _code(
    uri: str, fmt: Format, *, size_mm: float, dpi: int, error_correction: qr.ErrorCorrection
) -> bytes:
    if fmt == "png" and size_mm / qr.MM_PER_INCH * dpi > MAX_PNG_PIXELS:
        raise Invalid(
            f"a {size_mm:g} mm code at {dpi} dpi would be over {MAX_PNG_PIXELS} pixels wide; "
            "ask for the SVG, which prints sharp at any size",
            field="size_mm",
        )
    try:
        if fmt == "png":
            return qr.png(uri, size_mm=size_mm, dpi=dpi, error_correction=error_correction)
        return qr.svg(uri, size_mm=size_mm, error_correction=error_correction)
    except qr.QRError as error:
        raise Invalid(str(error), field="size_mm") from None


def _label_code(
    base_url: str,
    fmt: Format,
    size_mm: float | None,
    dpi: int,
    gtin: str,
    lot: str | None = None,
    serial: str | None = None,
) -> Response:
    """The GS1 Digital Link QR code of a product, lot or serialised item (error correction Q)."""
    uri = qr.label_uri(base_url, gtin, lot, serial)
    data = _code(
        uri, fmt, size_mm=size_mm or 25.0, dpi=dpi, error_correction=qr.LABEL_ERROR_CORRECTION
    )
    return _image(data, fmt, "-".join(part for part in (gtin, lot, serial) if part is not None))


@router.get(
    "/parcels/{dkbm}.{fmt}",
    summary="QR code of a parcel sign",
    response_class=Response,
    responses=IMAGES,
)
def parcel_code(
    dkbm: str,
    fmt: Format,
    session: SessionDep,
    settings: SettingsDep,
    size_mm: SizeMm = None,
    dpi: Dpi = 300,
) -> Response:
    """The QR code a parcel sign carries (``…/p/<DKBM>``, error correction H)."""
    try:
        code = parse_dkbm(dkbm).code
    except CodeError as error:
        raise Invalid(f"not a parcel code: {error}", field="dkbm") from None
    parcels.get_parcel(session=session, dkbm=code)
    uri = qr.parcel_uri(settings.public_base_url, code)
    data = _code(
        uri, fmt, size_mm=size_mm or 60.0, dpi=dpi, error_correction=qr.SIGN_ERROR_CORRECTION
    )
    return _image(data, fmt, f"parcel-{code}")


@router.get(
    "/{gtin}.{fmt}", summary="QR code of a product", response_class=Response, responses=IMAGES
)
def product_code(
    gtin: str,
    fmt: Format,
    session: SessionDep,
    settings: SettingsDep,
    size_mm: SizeMm = None,
    dpi: Dpi = 300,
) -> Response:
    """The product's GS1 Digital Link QR code (``…/01/<GTIN>``, error correction Q)."""
    product = products.get_product(session=session, gtin=gtin)
    return _label_code(settings.public_base_url, fmt, size_mm, dpi, product.gtin)


@router.get(
    "/{gtin}/{lot:part}.{fmt}",
    summary="QR code of a lot",
    response_class=Response,
    responses=IMAGES,
)
def lot_code(
    gtin: str,
    lot: str,
    fmt: Format,
    session: SessionDep,
    settings: SettingsDep,
    size_mm: SizeMm = None,
    dpi: Dpi = 300,
) -> Response:
    """A lot's GS1 Digital Link QR code (``…/01/<GTIN>/10/<lot>``)."""
    row = products.get_lot(session=session, gtin=gtin, lot=lot)
    return _label_code(settings.public_base_url, fmt, size_mm, dpi, row.gtin, row.lot)


@router.get(
    "/{gtin}/{lot:part}/sheet.pdf",
    summary="Label sheet for serials of a lot",
    response_class=Response,
    responses={200: {"description": "The labels", "content": {"application/pdf": {}}}},
)
def label_sheet(
    gtin: str,
    lot: str,
    session: SessionDep,
    settings: SettingsDep,
    actor: ActorDep,
    serials: Annotated[
        str | None,
        Query(description="serials and ranges, e.g. 0001-0024,0100; default: the lot's"),
    ] = None,
    count: Annotated[int | None, Query(ge=1, le=MAX_SHEET_LABELS)] = None,
    start_position: Annotated[int, Query(ge=0, description="labels to skip on sheet 1")] = 0,
    outlines: bool = False,
) -> Response:
    """A PDF of labels (A4, 3 × 8) for serials of a lot: QR code, product, lot, harvest date,
    serial and short code (the product's cooperative, or an admin)."""
    made = make_sheet(
        session=session,
        actor=actor,
        base_url=settings.public_base_url,
        gtin=gtin,
        lot=lot,
        serials=serials,
        count=count,
        start_position=start_position,
        outlines=outlines,
    )
    return Response(
        made.pdf,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="labels-{made.gtin}-{lot}.pdf"',
            "X-Label-Count": str(len(made.serials)),
        },
    )


@router.get(
    "/{gtin}/{lot:part}/{serial:part}.{fmt}",
    summary="QR code of a serialised item",
    response_class=Response,
    responses=IMAGES,
)
def serial_code(
    gtin: str,
    lot: str,
    serial: str,
    fmt: Format,
    session: SessionDep,
    settings: SettingsDep,
    size_mm: SizeMm = None,
    dpi: Dpi = 300,
) -> Response:
    """One recorded item's QR code (``…/01/<GTIN>/10/<lot>/21/<serial>``)."""
    unit = products.get_unit(session=session, gtin=gtin, serial=serial)
    row = products.lots_by_id(session=session, ids=[unit.lot_id])[unit.lot_id]
    if row.lot != lot:
        raise NotFound(f"serial {serial!r} of GTIN {unit.gtin} is not in lot {lot!r}")
    return _label_code(settings.public_base_url, fmt, size_mm, dpi, unit.gtin, row.lot, unit.serial)


@page_router.get(
    "/labels",
    summary="Managers' label page",
    response_class=Response,
    responses={200: {"description": "The page", "content": {"text/html": {}}}},
)
def labels_page(request: Request, session: SessionDep) -> Response:
    """A page for managers to download a lot's label sheet (the sheet route needs a token)."""
    language = pages.language_of(request)
    return pages.page(
        request,
        "labels.html",
        language=language,
        headers={"Cache-Control": "no-cache"},
        products=products.list_products(session=session),
    )


@dataclass(frozen=True)
class Sheet:
    gtin: str
    serials: list[str]
    pdf: bytes


def harvest_day(*, session: Session, lot_id: int) -> dt.date | None:
    """When what went into the lot was harvested (the earliest harvest upstream), China time."""
    closure = lineage.lot_closure(session=session, lot_ids=[lot_id], upstream=True)
    lot_ids = {lot_id} | {source for source, _, _ in closure}
    harvests = lineage.lot_parcels_of(session=session, lot_ids=sorted(lot_ids))
    times = [row.harvested_at for row in harvests]
    return min(times).astimezone(CHINA).date() if times else None


def _recorded_serials(session: Session, lot_id: int) -> list[str]:
    return [unit.serial for unit in lineage.units_of_lots(session=session, lot_ids=[lot_id])]


def make_sheet(
    *,
    session: Session,
    actor: Actor,
    base_url: str,
    gtin: str,
    lot: str,
    serials: str | None = None,
    count: int | None = None,
    start_position: int = 0,
    outlines: bool = False,
    harvest: dt.date | None = None,
) -> Sheet:
    """Labels for serials of a lot of a product of the actor's cooperative.

    The lot must be recorded (a sheet for a lot nobody recorded is a 404); ``serials`` may name
    serials not commissioned yet. Without ``serials``, the lot's recorded serials.
    """
    product = products.get_product(session=session, gtin=gtin)
    actor.require_cooperative(product.cooperative_id)
    found = products.lots_by_key(session=session, keys=[(product.gtin, lot)]).get(
        (product.gtin, lot)
    )
    if found is None:
        raise NotFound(
            f"no lot {lot!r} of GTIN {product.gtin} is recorded; its labels are printed once "
            "its harvest or processing event is"
        )
    try:
        if serials is not None:
            chosen: Sequence[str] = sheet.expand_serials(serials, limit=MAX_SHEET_LABELS)
        elif found is not None:
            chosen = _recorded_serials(session, found.id)
            if not chosen:
                raise Invalid(f"lot {lot} has no serialised items; name them with serials=")
        else:
            raise NotFound(f"no lot {lot!r} of GTIN {product.gtin}; name its serials to print")
        chosen = list(chosen[:count] if count else chosen)
        if len(chosen) > MAX_SHEET_LABELS:
            raise Invalid(f"at most {MAX_SHEET_LABELS} labels at a time, asked for {len(chosen)}")
        when = harvest or (harvest_day(session=session, lot_id=found.id) if found else None)
        pdf = sheet.label_sheet(
            base_url=base_url,
            product_name=product.name,
            gtin=product.gtin,
            lot=lot,
            serials=chosen,
            harvest_date=when,
            start_position=start_position,
            outlines=outlines,
        )
    # A lot or serial that cannot be a GS1 AI value (characters, length) fails in its URI.
    except (sheet.LabelError, DigitalLinkError, qr.QRError) as error:
        raise Invalid(str(error)) from None
    return Sheet(gtin=product.gtin, serials=list(chosen), pdf=pdf)
