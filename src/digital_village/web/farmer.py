"""The parcel page a sign's QR code opens: ``GET /p/<DKBM>``.

Anyone sees the parcel: its code, village and group, area in 亩, land use, the crop now, a small
map with its neighbours, and the latest field work recorded on it (no names, no phones). A
farmer signed in with a token — sent as a bearer header by an app, or kept by this page in the
browser's localStorage after the invitation link (``#token=…``, ``dv farmers invite``) or after
typing it once — gets a form of a few taps to record the day's work: sowing, fertilizing,
spraying (pesticide, dose, pre-harvest interval), irrigating, harvesting. The page's script
builds an EPCIS 2.0 event and posts it to ``POST /api/v1/events``, the same capture path as
every other client, which checks that the household holds the parcel, appends the event to the
ledger and answers with its index; the page shows that index and the proof link. Without a
token the page is read-only.

Every fact shown is paired with the ledger entry that records it (web/facts.py): the code,
shape and area with the parcel's registration, its land use and crop with the entry of its
chain that set them, each piece of work with its event; the page's verification panel proves
them in the reader's browser.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from digital_village.api.deps import SessionDep, SettingsDep
from digital_village.auth.dependencies import ActorDep
from digital_village.auth.models import Role
from digital_village.errors import DomainError
from digital_village.ledger import reads
from digital_village.parcels import landuse
from digital_village.parcels import recorded as parcel_records
from digital_village.parcels import service as parcels
from digital_village.parcels.codes import CodeError, parse_dkbm
from digital_village.parcels.models import Parcel, ParcelHolding, ParcelStatus
from digital_village.regions import service as regions
from digital_village.trace import products, store
from digital_village.trace.models import EventParcel, Product
from digital_village.trace.vocab import DV_BIZSTEP
from digital_village.web import drawing, history, linkset, origin, pages
from digital_village.web.facts import UNBOUND, Fact

router = APIRouter(tags=["pages"])

RECENT_EVENTS: Final = 12
NEIGHBOURS_WITHIN_M: Final = 40.0
MAX_NEIGHBOURS: Final = 12
# The work a farmer records from the sign, in the order of the buttons.
WORK: Final = ("planting", "fertilizing", "spraying", "irrigating", "harvesting")


@dataclass
class FarmerView:
    """What the parcel page shows."""

    dkbm: str
    label: str
    township: str
    village: str
    group: str
    area_mu: float
    land_use: str
    land_use_en: str
    crop: str | None
    crop_en: str | None
    active: bool
    successors: list[str]
    map_svg: str
    recent: list[history.Step] = field(default_factory=list)
    products: list[Product] = field(default_factory=list)
    code_fact: Fact = UNBOUND
    area_fact: Fact = UNBOUND
    land_use_fact: Fact = UNBOUND
    crop_fact: Fact = UNBOUND


def parcels_held_by(*, session: Session, household_id: int) -> list[str]:
    """DKBMs of the active parcels a household holds (contracts) today."""
    return parcels_held_by_households(session=session, household_ids=[household_id]).get(
        household_id, []
    )


def parcels_held_by_households(
    *, session: Session, household_ids: Sequence[int]
) -> dict[int, list[str]]:
    """Household id → DKBMs of the active parcels it holds (contracts) today, in code order;
    households that hold none are left out."""
    today = parcels.today()
    held: dict[int, list[str]] = {}
    wanted = sorted(set(household_ids))
    for start in range(0, len(wanted), 900):
        query = (
            select(ParcelHolding.contractor_household_id, Parcel.dkbm)
            .join(Parcel, ParcelHolding.parcel_id == Parcel.id)
            .where(
                ParcelHolding.contractor_household_id.in_(wanted[start : start + 900]),
                ParcelHolding.valid_from <= today,
                or_(ParcelHolding.valid_to.is_(None), ParcelHolding.valid_to > today),
                Parcel.status == ParcelStatus.ACTIVE,
            )
            .order_by(Parcel.dkbm)
        )
        for household_id, dkbm in session.execute(query):
            if household_id is not None:
                held.setdefault(household_id, []).append(dkbm)
    return held


def _labelled(shapes: list[drawing.MapShape]) -> list[drawing.MapShape]:
    """The map's shapes, drawn with their whole DKBMs as labels, under short labels no two of
    which read alike."""
    labels = drawing.parcel_labels(shape.label for shape in shapes)
    return [dataclasses.replace(shape, label=labels[shape.label]) for shape in shapes]


def _recent(session: Session, dkbm: str) -> list[history.Step]:
    """The latest field work on the parcel, newest first, corrections applied."""
    pks = session.scalars(
        select(EventParcel.event_pk)
        .where(EventParcel.dkbm == dkbm)
        .order_by(EventParcel.event_time.desc(), EventParcel.event_pk.desc())
        .limit(RECENT_EVENTS * 2)
    ).all()
    rows = [
        row
        for row in store.events_by_pk(session=session, pks=pks).values()
        if row.declares_pk is None and row.erroneous_since is None
    ]
    rows.sort(key=lambda row: (row.event_time, row.id), reverse=True)
    rows = rows[:RECENT_EVENTS]
    entries = reads.entries_by_seq(session, [row.ledger_seq for row in rows])
    steps = []
    for row in rows:
        # What the event's entry records; an unreadable entry still lists the step with its
        # entry, so the reader's browser shows that it fails.
        found = entries.get(row.ledger_seq)
        event = reads.data_of(found[1]).get("event") if found else None
        body = event if isinstance(event, dict) else {}
        key = history.step_key(body.get("bizStep", row.biz_step))
        steps.append(
            history.Step(
                when=_recorded_time(body, row.event_time).astimezone(history.CHINA),
                step=key,
                details=history.describe(body, key, {}, None),
                parcels=(),
                ledger_seqs=(row.ledger_seq,),
            )
        )
    return steps


def _recorded_time(body: dict[str, object], fallback: dt.datetime) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(str(body["eventTime"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return fallback


def _harvest_products(session: Session, parcel: Parcel) -> list[Product]:
    """Crops the parcel's cooperative (its operator, or its holder's) registered for harvests."""
    holding = parcels.holder_at(session=session, dkbm=parcel.dkbm, on=parcels.today())
    cooperative_id = holding.operator_cooperative_id
    if cooperative_id is None and holding.contractor_household_id is not None:
        household = regions.get_household(
            session=session, household_id=holding.contractor_household_id
        )
        cooperative_id = household.cooperative_id
    if cooperative_id is None:
        return []
    return [
        product
        for product in products.list_products(session=session, cooperative_id=cooperative_id)
        if (defaults := products.CATEGORIES.get(product.category)) is not None
        and defaults.yield_per_mu is not None
    ]


def farmer_view(*, session: Session, parcel: Parcel) -> FarmerView:
    """Gather the parcel page: the parcel, its neighbours' outlines, recent work, products."""
    names = {
        code: regions.get_region(session=session, code=code).name
        for code in (parcel.township_code, parcel.village_code, parcel.group_code)
        if code
    }
    crop = parcels.crops_on(session=session, parcel_ids=[parcel.id], on=parcels.today()).get(
        parcel.id
    )
    shapes = [
        shape
        for shape in [origin.map_shape(parcel, parcel.dkbm, epsg=parcel.epsg)]
        if shape is not None
    ]
    active = parcel.status is ParcelStatus.ACTIVE
    chain = reads.chain_entries(session, [parcel_records.chain_key(parcel.dkbm)])
    record = parcel_records.fold(
        parcel.dkbm,
        (
            (seq, kind, reads.data_of(body))
            for seq, kind, body in chain.get(parcel_records.chain_key(parcel.dkbm), [])
        ),
    )
    successors: list[str] = []
    if active:
        found = parcels.neighbours(session=session, dkbm=parcel.dkbm, within_m=NEIGHBOURS_WITHIN_M)
        for other, _ in found[:MAX_NEIGHBOURS]:
            shape = origin.map_shape(other, other.dkbm, epsg=parcel.epsg, highlighted=False)
            if shape is not None:
                shapes.append(shape)
    else:
        successors = [p.dkbm for p in parcels.successors_of(session=session, parcel=parcel)]
    return FarmerView(
        dkbm=parcel.dkbm,
        label=drawing.parcel_labels([parcel.dkbm])[parcel.dkbm],
        township=names.get(parcel.township_code, ""),
        village=names.get(parcel.village_code, ""),
        group=names.get(parcel.group_code or "", ""),
        area_mu=parcel.area_mu,
        land_use=landuse.LAND_USE.get(parcel.land_use, parcel.land_use),
        land_use_en=landuse.LAND_USE_EN.get(parcel.land_use, parcel.land_use),
        crop=crop,
        crop_en=landuse.CROPS_EN.get(crop, crop) if crop else None,
        active=active,
        successors=successors,
        map_svg=drawing.parcel_map(_labelled(shapes), scale_label=origin.scale_label),
        recent=_recent(session, parcel.dkbm),
        products=_harvest_products(session, parcel) if active else [],
        **origin.parcel_facts(parcel, record, crop=crop, on=parcels.today()),
    )


@router.get(
    "/p/{dkbm}",
    summary="Parcel sign (土地赋码)",
    response_class=Response,
    responses={
        200: {"description": "The parcel's page", "content": {"text/html": {}}},
        301: {"description": "The code written without spaces or other separators"},
        303: {"description": "A JSON client: the parcel's GeoJSON at /api/v1/parcels/{dkbm}"},
    },
)
@router.head("/p/{dkbm}", include_in_schema=False)
def parcel_page(
    dkbm: str, request: Request, session: SessionDep, settings: SettingsDep
) -> Response:
    """The page a parcel sign's QR code opens (a JSON client is sent to the parcel's API)."""
    language = pages.language_of(request)
    try:
        code = parse_dkbm(dkbm).code
    except CodeError as error:
        return pages.error(request, 400, f"not a parcel code: {error}", language=language)
    if code != dkbm:
        return RedirectResponse(f"/p/{code}", status_code=301)
    if linkset.negotiate(request.headers.get("accept")) == "linkset":
        return RedirectResponse(f"/api/v1/parcels/{code}", status_code=303)
    try:
        parcel = parcels.get_parcel(session=session, dkbm=code)
        view = farmer_view(session=session, parcel=parcel)
    except DomainError as failure:
        return pages.error(request, failure.status, failure.detail, language=language)
    return pages.page(
        request,
        "farmer.html",
        language=language,
        headers={"Cache-Control": "no-cache", "Vary": "Accept, Accept-Language"},
        view=view,
        work=WORK,
        parcel_uri=f"{settings.public_base_url}/p/{code}",
        bizstep_base=DV_BIZSTEP,
        today=parcels.today().isoformat(),
        default_lot=f"H{parcels.today():%Y%m%d}-{code[-5:]}",
        signer=settings.operator_name,
    )


class HeldOut(BaseModel):
    """What the signed-in holder of a token may record work on, today."""

    role: str
    household: str | None = Field(description="the farmer's 承包方编码")
    any_parcel: bool = Field(description="an admin: any parcel")
    parcels: list[str] = Field(description="DKBMs of the parcels held today, in code order")


@router.get("/api/v1/farmer/parcels", response_model=HeldOut, tags=["pages"])
def held_parcels(actor: ActorDep, session: SessionDep) -> HeldOut:
    """The parcels the token's household holds today (a manager: its members' parcels), so the
    parcel page can say so, and refuse a parcel not held, before the farmer fills in the form."""
    if actor.is_admin:
        return HeldOut(role=actor.role.value, household=None, any_parcel=True, parcels=[])
    actor.require_role(Role.FARMER, Role.MANAGER)
    if actor.role is Role.FARMER and actor.household_id is not None:
        household = regions.get_household(session=session, household_id=actor.household_id)
        held = parcels_held_by(session=session, household_id=household.id)
        return HeldOut(role="farmer", household=household.cbfbm, any_parcel=False, parcels=held)
    members = regions.list_households(session=session, actor=actor)
    by_household = parcels_held_by_households(
        session=session, household_ids=[member.id for member in members]
    )
    found = sorted({dkbm for dkbms in by_household.values() for dkbm in dkbms})
    return HeldOut(role=actor.role.value, household=None, any_parcel=False, parcels=found)
