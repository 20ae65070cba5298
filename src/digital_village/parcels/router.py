"""HTTP routes of the map: parse → service → GeoJSON. Public reads carry no personal data."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import shapely
from fastapi import APIRouter, Body, Query, Response
from fastapi.responses import JSONResponse
from shapely.geometry import shape as shape_from_geojson
from sqlalchemy.orm import Session

from digital_village.api.deps import JSON_BODY, DatabaseDep, SessionDep, SettingsDep
from digital_village.auth.dependencies import ActorDep
from digital_village.config import Settings
from digital_village.errors import Invalid, NotFound
from digital_village.ledger.dependencies import LedgerDep
from digital_village.parcels import audit as parcel_audit
from digital_village.parcels import geojson
from digital_village.parcels import io as parcel_io
from digital_village.parcels import service as parcels
from digital_village.parcels.dependencies import LastEventDep
from digital_village.parcels.models import Parcel
from digital_village.parcels.schemas import ChangeIn, ImportReportOut, MergeIn, ParcelIn, SplitIn
from digital_village.regions import service as regions
from digital_village.regions.models import Cooperative, Household

router = APIRouter(prefix="/api/v1", tags=["parcels"], dependencies=JSON_BODY)
GEOJSON = "application/geo+json"
# Land contracts in this registry start after the reforms; an earlier first day is a typo.
EARLIEST_VALID_FROM = dt.date(1950, 1, 1)


class GeoJSONResponse(JSONResponse):
    """JSON served as RFC 7946 GeoJSON, and documented so in the OpenAPI."""

    media_type = GEOJSON


def _geojson(document: dict[str, Any], status_code: int = 200) -> JSONResponse:
    return JSONResponse(document, status_code=status_code, media_type=GEOJSON)


def _geometry(value: dict[str, Any], what: str, settings: Settings) -> Any:
    """A GeoJSON geometry of a request, with at most ``DV_PARCEL_MAX_VERTICES`` vertices
    (checked before any of the work a parcel's shape costs)."""
    try:
        geometry = shape_from_geojson(value)
    except Exception as error:  # shapely raises several kinds for malformed GeoJSON
        raise Invalid(f"{what} is not a GeoJSON geometry: {error}") from error
    vertices = int(shapely.get_num_coordinates(geometry))
    if vertices > settings.parcel_max_vertices:
        raise Invalid(
            f"{what} has {vertices} vertices; a parcel has at most "
            f"{settings.parcel_max_vertices} (DV_PARCEL_MAX_VERTICES)",
            limit=settings.parcel_max_vertices,
        )
    return geometry


def _public_feature(session: Session, parcel: Parcel) -> dict[str, Any]:
    """A parcel for anyone: holders by code, a household's name masked (张**)."""
    today = parcels.today()
    holding = parcels.holdings_on(session=session, parcel_ids=[parcel.id], on=today).get(parcel.id)
    contractor = operator = None
    if holding and holding.contractor_household_id:
        household = session.get(Household, holding.contractor_household_id)
        if household is not None:
            contractor = {"cbfbm": household.cbfbm, "name": regions.mask_name(household.name)}
    if holding and holding.operator_cooperative_id:
        cooperative = session.get(Cooperative, holding.operator_cooperative_id)
        if cooperative is not None:
            operator = {"uscc": cooperative.uscc, "name": cooperative.name}
    crop = parcels.crops_on(session=session, parcel_ids=[parcel.id], on=today).get(parcel.id)
    lineage = parcels.lineage(session=session, dkbm=parcel.dkbm)
    return geojson.feature(
        parcel,
        crop=crop,
        extra={
            "contractor": contractor,
            "operator": operator,
            "from": [p.dkbm for p in lineage["from"]],
            "into": [p.dkbm for p in lineage["into"]],
            "ledger_proof": f"/api/v1/ledger/entries/{parcel.last_seq}/proof"
            if parcel.last_seq is not None
            else None,
        },
    )


def _valid_from(value: dt.date | None, settings: Settings) -> dt.date | None:
    """A change's first day, within reason: from 1950 to ``DV_MAX_DAYS_AHEAD`` days ahead."""
    if value is None:
        return None
    latest = parcels.today() + dt.timedelta(days=settings.max_days_ahead)
    if value > latest:
        raise Invalid(
            f"valid_from {value.isoformat()} is too far ahead: a change may start at the latest "
            f"on {latest.isoformat()} ({settings.max_days_ahead} days from today)",
            field="valid_from",
        )
    if value < EARLIEST_VALID_FROM:
        raise Invalid(
            f"valid_from {value.isoformat()} is before {EARLIEST_VALID_FROM.isoformat()}",
            field="valid_from",
        )
    return value


def _bbox(value: str | None) -> tuple[float, float, float, float] | None:
    if value is None:
        return None
    try:
        numbers = tuple(float(v) for v in value.split(","))
    except ValueError:
        numbers = ()
    if len(numbers) != 4:
        raise Invalid(f"bbox {value!r} must be min_lon,min_lat,max_lon,max_lat")
    return numbers[0], numbers[1], numbers[2], numbers[3]


@router.get("/parcels", response_class=GeoJSONResponse)
def list_parcels(
    session: SessionDep,
    region: Annotated[
        str | None, Query(description="9-digit township, 12-digit village or 14-digit FBFBM")
    ] = None,
    bbox: Annotated[str | None, Query(description="min_lon,min_lat,max_lon,max_lat")] = None,
    include_retired: bool = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> JSONResponse:
    """Parcels of a region and/or a bbox as a FeatureCollection, a page at a time (public)."""
    page = parcels.list_parcels(
        session=session,
        region=region,
        bbox=_bbox(bbox),
        include_retired=include_retired,
        limit=limit,
        offset=offset,
    )
    ids = [p.id for p in page.items]
    crops = parcels.crops_on(session=session, parcel_ids=ids, on=parcels.today())
    links = []
    if offset + limit < page.total:
        query = "&".join(
            f"{k}={v}"
            for k, v in (("region", region), ("bbox", bbox), ("limit", limit))
            if v is not None
        )
        links.append({"rel": "next", "href": f"/api/v1/parcels?{query}&offset={offset + limit}"})
    return _geojson(
        {
            "type": "FeatureCollection",
            "numberMatched": page.total,
            "numberReturned": len(page.items),
            "features": [geojson.feature(p, crop=crops.get(p.id)) for p in page.items],
            "links": links,
        }
    )


@router.get("/parcels/locate", response_class=GeoJSONResponse)
def locate(
    session: SessionDep,
    x: Annotated[float, Query(description="longitude, or easting in `crs`")],
    y: Annotated[float, Query(description="latitude, or northing in `crs`")],
    crs: Annotated[str | None, Query(description="EPSG:NNNN, gcj02 or bd09")] = None,
) -> JSONResponse:
    """The active parcel holding a point given in any supported CRS (404 when none does).

    A lean Feature (code, areas, land use, shape) for field apps that ask often; holders,
    crops and lineage are at ``/parcels/{dkbm}``.
    """
    lon, lat = parcels.to_lonlat_point(x, y, parcels.parse_source_crs(crs))
    parcel = parcels.parcel_containing_point(session=session, lon=lon, lat=lat)
    if parcel is None:
        raise NotFound(f"no active parcel holds lon {lon:.7f}, lat {lat:.7f}")
    return _geojson(geojson.feature(parcel, extra={"lon": round(lon, 7), "lat": round(lat, 7)}))


@router.get("/parcels/export", response_class=GeoJSONResponse)
def export(
    session: SessionDep,
    region: Annotated[str | None, Query(description="township, village or FBFBM")] = None,
    due_diligence: Annotated[
        bool, Query(description="a point for plots under 4 ha, a polygon otherwise")
    ] = False,
) -> JSONResponse:
    """Active parcels as one GeoJSON file (6 decimals), or shaped for due-diligence files."""
    if due_diligence:
        return _geojson(geojson.export_due_diligence(session=session, region=region))
    return _geojson(geojson.export_geojson(session=session, region=region))


@router.get("/parcels/{dkbm}", response_class=GeoJSONResponse)
def get_parcel(dkbm: str, session: SessionDep) -> JSONResponse:
    """One parcel as a GeoJSON Feature: dkbm, area_m2, area_mu, holders by code (public)."""
    return _geojson(_public_feature(session, parcels.get_parcel(session=session, dkbm=dkbm)))


@router.get("/parcels/{dkbm}/history")
def history(dkbm: str, session: SessionDep) -> dict[str, Any]:
    """Every period of holders (by code), land use and crops, and the lineage (public)."""
    found = parcels.history(session=session, dkbm=dkbm)
    for holding in found["holdings"]:
        holding.pop("contractor_household_id")
        holding.pop("operator_cooperative_id")
    lineage = parcels.lineage(session=session, dkbm=dkbm)
    found["from"] = [p.dkbm for p in lineage["from"]]
    found["into"] = [p.dkbm for p in lineage["into"]]
    return found


@router.get("/parcels/{dkbm}/neighbours", response_class=GeoJSONResponse)
def neighbours(
    dkbm: str,
    session: SessionDep,
    within_m: Annotated[float, Query(ge=0, le=1000)] = 2.0,
) -> JSONResponse:
    """Active parcels within ``within_m`` metres, nearest first, with their distance."""
    found = parcels.neighbours(session=session, dkbm=dkbm, within_m=within_m)
    features = [geojson.feature(p, extra={"distance_m": round(d, 2)}) for p, d in found]
    return _geojson({"type": "FeatureCollection", "features": features})


@router.get("/parcels/{dkbm}/verify")
def verify(dkbm: str, session: SessionDep) -> dict[str, Any]:
    """Whether the parcel's rows agree with its chain of ledger entries: geometry, code, area,
    land use, every holding and attribute period (``problems`` names each difference by the
    entry's index; ``problem`` is the first)."""
    found = parcel_audit.check_parcel(
        session=session, dkbm=parcels.get_parcel(session=session, dkbm=dkbm).dkbm
    )
    return {
        "dkbm": dkbm,
        "ok": not found,
        "problem": found[0].what if found else None,
        "problems": [{"index": p.index, "what": p.what, "subject": p.subject} for p in found],
    }


@router.get(
    "/parcels/{dkbm}/sign.{fmt}",
    response_class=Response,
    responses={200: {"content": {"image/png": {}, "application/pdf": {}, "image/svg+xml": {}}}},
)
def sign(dkbm: str, fmt: str, session: SessionDep, settings: SettingsDep) -> Response:
    """The parcel's sign (土地赋码): sign.png or sign.pdf to print, sign.svg for the QR alone."""
    from digital_village.parcels import signs

    if fmt not in ("png", "pdf", "svg"):
        raise NotFound("signs are served as sign.png, sign.pdf or sign.svg (the QR code)")
    card = signs.sign_for(session=session, dkbm=dkbm, base_url=settings.public_base_url)
    if fmt == "svg":
        return Response(signs.qr_svg(card.url), media_type="image/svg+xml")
    media = "application/pdf" if fmt == "pdf" else "image/png"
    return Response(signs.render_sign(card, fmt=fmt), media_type=media)


@router.get(
    "/maps/{name}",
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": {}, "image/png": {}}}},
)
def region_map(
    name: str,
    session: SessionDep,
    by: Annotated[str, Query(pattern="^(crop|land_use)$")] = "crop",
) -> Response:
    """The map of a village (12 digits), FBFBM (14) or township (9): ``{code}.svg`` or ``.png``."""
    from digital_village.parcels import render

    code, _, ext = name.partition(".")
    if ext not in ("svg", "png"):
        raise NotFound(f"maps are served as {code}.svg or {code}.png")
    drawing = render.map_data(session=session, code=code, color_by=by)
    if ext == "svg":
        return Response(render.to_svg(drawing), media_type="image/svg+xml")
    return Response(render.to_png(drawing), media_type="image/png")


# --- writes --------------------------------------------------------------------------------


@router.post("/parcels", status_code=201, response_class=GeoJSONResponse)
def register(
    body: ParcelIn, session: SessionDep, actor: ActorDep, ledger: LedgerDep, settings: SettingsDep
) -> JSONResponse:
    """Register a parcel (admin, or a manager of a cooperative in its village)."""
    parcel, warnings = parcels.register(
        session=session,
        ledger=ledger,
        fbfbm=body.fbfbm,
        parcel_in=parcels.ParcelIn(
            geometry=_geometry(body.geometry, "geometry", settings),
            land_use=body.land_use,
            name=body.name,
            bdcdyh=body.bdcdyh,
            contractor_household_id=body.contractor_household_id,
            operator_cooperative_id=body.operator_cooperative_id,
            crops=tuple((c.season, c.crop) for c in body.crops),
        ),
        actor=actor,
        source=parcels.parse_source_crs(body.crs),
        allow_repair=body.repair,
        valid_from=_valid_from(body.valid_from, settings),
    )
    document = _public_feature(session, parcel)
    document["properties"]["warnings"] = list(warnings)
    return _geojson(document, status_code=201)


@router.post("/parcels/import", response_model=ImportReportOut)
def import_features(
    database: DatabaseDep,
    settings: SettingsDep,
    actor: ActorDep,
    ledger: LedgerDep,
    document: Annotated[dict[str, Any], Body(description="a GeoJSON FeatureCollection")],
    fbfbm: Annotated[str, Query(description="发包方编码 of the parcels (14 digits)")],
    crs: Annotated[str | None, Query(description="EPSG:NNNN, gcj02 or bd09")] = None,
    repair: bool = False,
    all_or_nothing: bool = False,
    land_use: Annotated[str | None, Query(description="for features without one")] = None,
    codes: Annotated[
        Literal["keep", "assign"],
        Query(
            description="keep: a feature's own DKBM (a dkbm or DKBM property) is kept, checked; "
            "assign: every feature gets the next free code of its 发包方"
        ),
    ] = "keep",
) -> ImportReportOut:
    """Register every good feature; name every bad one. With all_or_nothing, 422 stores none.

    Every feature is checked before anything is written; the good ones are then stored in
    short write transactions, so an import never holds up other writes for long. A file
    beyond DV_IMPORT_MAX_FEATURES features or DV_IMPORT_MAX_VERTICES vertices gets 413.
    """
    report = parcel_io.import_features(
        database=database,
        ledger=ledger,
        source=parcel_io.read_geojson(document),
        options=parcel_io.ImportOptions(
            fbfbm=fbfbm,
            source=parcels.parse_source_crs(crs),
            allow_repair=repair,
            all_or_nothing=all_or_nothing,
            land_use=land_use,
            keep_codes=codes == "keep",
        ),
        actor=actor,
        limits=parcel_io.ImportLimits.of(settings),
    )
    result = report.as_dict()
    if not report.stored:  # nothing of it was written
        raise Invalid(
            f"{len(report.rejected)} features rejected; nothing stored (all_or_nothing)",
            rejected=result["rejected"],
        )
    return ImportReportOut.model_validate(result)


@router.post("/parcels/merge", status_code=201, response_class=GeoJSONResponse)
def merge(
    body: MergeIn,
    session: SessionDep,
    actor: ActorDep,
    ledger: LedgerDep,
    last_event_on: LastEventDep,
    settings: SettingsDep,
) -> JSONResponse:
    """Merge adjacent parcels of one FBFBM under a new DKBM; the old codes are retired."""
    parcel = parcels.merge(
        session=session,
        ledger=ledger,
        dkbms=body.dkbms,
        actor=actor,
        last_event=last_event_on(session=session, dkbms=body.dkbms),
        valid_from=_valid_from(body.valid_from, settings),
        correction=body.correction,
    )
    return _geojson(_public_feature(session, parcel), status_code=201)


@router.post("/parcels/{dkbm}/changes", response_class=GeoJSONResponse)
def change(
    dkbm: str,
    body: ChangeIn,
    session: SessionDep,
    actor: ActorDep,
    ledger: LedgerDep,
    last_event_on: LastEventDep,
    settings: SettingsDep,
) -> JSONResponse:
    """Change holders (流转), land use, a season's crop or the 不动产单元代码, keeping history."""
    given = body.model_fields_set
    holding = None
    if {"contractor_household_id", "operator_cooperative_id"} & given:
        current = parcels.holder_at(session=session, dkbm=dkbm, on=parcels.today())
        holding = parcels.Holding(
            body.contractor_household_id
            if "contractor_household_id" in given
            else current.contractor_household_id,
            body.operator_cooperative_id
            if "operator_cooperative_id" in given
            else current.operator_cooperative_id,
        )
    parcel = parcels.change(
        session=session,
        ledger=ledger,
        dkbm=dkbm,
        change=parcels.ParcelChange(
            valid_from=_valid_from(body.valid_from, settings),
            holding=holding,
            land_use=body.land_use,
            crop=(body.crop.season, body.crop.crop) if body.crop else None,
            bdcdyh=body.bdcdyh,
            correction=body.correction,
        ),
        actor=actor,
        last_event=last_event_on(session=session, dkbms=[dkbm]),
    )
    return _geojson(_public_feature(session, parcel))


@router.post("/parcels/{dkbm}/split", status_code=201, response_class=GeoJSONResponse)
def split(
    dkbm: str,
    body: SplitIn,
    session: SessionDep,
    actor: ActorDep,
    ledger: LedgerDep,
    last_event_on: LastEventDep,
    settings: SettingsDep,
) -> JSONResponse:
    """Split a parcel into parts that cover it; the parts get new DKBMs, the old is retired."""
    children = parcels.split(
        session=session,
        ledger=ledger,
        dkbm=dkbm,
        parts=[_geometry(part, f"part {i}", settings) for i, part in enumerate(body.parts)],
        actor=actor,
        last_event=last_event_on(session=session, dkbms=[dkbm]),
        source=parcels.parse_source_crs(body.crs),
        valid_from=_valid_from(body.valid_from, settings),
        correction=body.correction,
    )
    return _geojson(
        {
            "type": "FeatureCollection",
            "features": [_public_feature(session, child) for child in children],
        },
        status_code=201,
    )
