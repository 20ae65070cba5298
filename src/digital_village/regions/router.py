"""HTTP routes of regions, cooperatives and households: parse → service → schema."""

from __future__ import annotations

from fastapi import APIRouter, Query

from digital_village.api.deps import JSON_BODY, SessionDep
from digital_village.auth.dependencies import ActorDep
from digital_village.regions import service
from digital_village.regions.models import RegionLevel
from digital_village.regions.schemas import (
    CooperativeIn,
    CooperativeOut,
    HouseholdContactIn,
    HouseholdIn,
    HouseholdOut,
    RegionIn,
    RegionOut,
)

router = APIRouter(prefix="/api/v1", tags=["regions"], dependencies=JSON_BODY)


@router.get("/regions", response_model=list[RegionOut])
def list_regions(
    session: SessionDep,
    parent: str | None = Query(default=None, description="only the children of this code"),
    level: RegionLevel | None = None,
) -> list[RegionOut]:
    """The administrative tree (public)."""
    rows = service.list_regions(session=session, parent_code=parent, level=level)
    return [RegionOut.model_validate(row) for row in rows]


@router.get("/regions/{code}", response_model=RegionOut)
def get_region(code: str, session: SessionDep) -> RegionOut:
    """One region by code (public)."""
    return RegionOut.model_validate(service.get_region(session=session, code=code))


@router.post("/regions", response_model=RegionOut, status_code=201)
def add_region(body: RegionIn, session: SessionDep, actor: ActorDep) -> RegionOut:
    """Add a township, village or group under an existing parent (admin)."""
    region = service.add_region(session=session, code=body.code, name=body.name, actor=actor)
    return RegionOut.model_validate(region)


@router.get("/cooperatives", response_model=list[CooperativeOut])
def list_cooperatives(session: SessionDep) -> list[CooperativeOut]:
    """Registered cooperatives (public: a 统一社会信用代码 is public information)."""
    return [CooperativeOut.model_validate(c) for c in service.list_cooperatives(session=session)]


@router.post("/cooperatives", response_model=CooperativeOut, status_code=201)
def register_cooperative(
    body: CooperativeIn, session: SessionDep, actor: ActorDep
) -> CooperativeOut:
    """Register a cooperative (admin)."""
    cooperative = service.register_cooperative(
        session=session, uscc=body.uscc, name=body.name, region_code=body.region_code, actor=actor
    )
    return CooperativeOut.model_validate(cooperative)


@router.get("/households", response_model=list[HouseholdOut])
def list_households(
    session: SessionDep, actor: ActorDep, cooperative_id: int | None = None
) -> list[HouseholdOut]:
    """Households: all for an admin, a manager's own members otherwise."""
    rows = service.list_households(session=session, actor=actor, cooperative_id=cooperative_id)
    return [HouseholdOut.model_validate(row) for row in rows]


@router.post("/households", response_model=HouseholdOut, status_code=201)
def register_household(body: HouseholdIn, session: SessionDep, actor: ActorDep) -> HouseholdOut:
    """Register a household with its 承包方编码 (admin, or the manager of its cooperative)."""
    household = service.register_household(
        session=session,
        region_code=body.region_code,
        name=body.name,
        phone=body.phone,
        cooperative_id=body.cooperative_id,
        actor=actor,
    )
    return HouseholdOut.model_validate(household)


@router.get("/households/{household_id}", response_model=HouseholdOut)
def get_household(household_id: int, session: SessionDep, actor: ActorDep) -> HouseholdOut:
    """One household: itself, its cooperative's manager, or an admin."""
    household = service.get_household(session=session, household_id=household_id)
    actor.require_household(household.id, household.cooperative_id)
    return HouseholdOut.model_validate(household)


@router.patch("/households/{household_id}", response_model=HouseholdOut)
def update_household(
    household_id: int, body: HouseholdContactIn, session: SessionDep, actor: ActorDep
) -> HouseholdOut:
    """Change a household's contact phone."""
    household = service.update_household_contact(
        session=session, household_id=household_id, phone=body.phone, actor=actor
    )
    return HouseholdOut.model_validate(household)
