"""HTTP routes of tokens and of the current actor."""

from __future__ import annotations

from fastapi import APIRouter

from digital_village.api.deps import JSON_BODY, ActorDep, SessionDep
from digital_village.auth import service
from digital_village.auth.schemas import MeOut, TokenIn, TokenIssued, TokenOut

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


@router.get("/tokens", response_model=list[TokenOut])
def list_tokens(
    session: SessionDep, actor: ActorDep, include_revoked: bool = False
) -> list[TokenOut]:
    """Tokens (admin); secrets are never stored, so never shown."""
    actor.require_admin()
    rows = service.list_tokens(session=session, include_revoked=include_revoked)
    return [TokenOut.model_validate(row) for row in rows]


@router.post("/tokens", response_model=TokenIssued, status_code=201)
def create_token(body: TokenIn, session: SessionDep, actor: ActorDep) -> TokenIssued:
    """Create a token (admin; a manager for its members' farmer tokens). Shown once."""
    issued = service.issue_token(
        session=session,
        role=body.role,
        actor=actor,
        cooperative=body.cooperative,
        household=body.household,
        device_id=body.device_id,
        label=body.label,
    )
    return TokenIssued.model_validate(
        {**TokenOut.model_validate(issued.row).model_dump(), "token": issued.token}
    )


@router.delete("/tokens/{public_id}", response_model=TokenOut)
def revoke_token(public_id: str, session: SessionDep, actor: ActorDep) -> TokenOut:
    """Revoke a token at once."""
    return TokenOut.model_validate(
        service.revoke_token(session=session, public_id=public_id, actor=actor)
    )
