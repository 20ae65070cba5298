"""HTTP routes of tokens: create (for a named scope), list, revoke."""

from __future__ import annotations

from fastapi import APIRouter

from digital_village.api.deps import JSON_BODY, SessionDep
from digital_village.auth import service as auth
from digital_village.auth.dependencies import ActorDep
from digital_village.auth.schemas import TokenIn, TokenIssued, TokenOut
from digital_village.tokens import service

router = APIRouter(prefix="/api/v1", tags=["access"], dependencies=JSON_BODY)


@router.get("/tokens", response_model=list[TokenOut])
def list_tokens(
    session: SessionDep, actor: ActorDep, include_revoked: bool = False
) -> list[TokenOut]:
    """Tokens (admin); secrets are never stored, so never shown."""
    actor.require_admin()
    rows = auth.list_tokens(session=session, include_revoked=include_revoked)
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
        auth.revoke_token(session=session, public_id=public_id, actor=actor)
    )
