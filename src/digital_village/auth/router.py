"""HTTP route of the current actor (tokens themselves: ``tokens.router``)."""

from __future__ import annotations

from fastapi import APIRouter

from digital_village.api.deps import JSON_BODY
from digital_village.auth.dependencies import ActorDep
from digital_village.auth.schemas import MeOut

router = APIRouter(prefix="/api/v1", tags=["access"], dependencies=JSON_BODY)


@router.get("/me", response_model=MeOut)
def me(actor: ActorDep) -> MeOut:
    """Who the presented token stands for."""
    return MeOut(
        role=actor.role,
        token_id=actor.token_public_id,
        cooperative_id=actor.cooperative_id,
        household_id=actor.household_id,
        device_id=actor.device_id,
    )
