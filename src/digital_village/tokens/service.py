"""Tokens for a scope named as people name it: a cooperative's 统一社会信用代码, a household's
承包方编码 or id, a device's id.

Resolving those names needs the tables of ``regions`` and ``iot``; issuing, checking and
revoking the token is ``auth.service``'s, for the resolved ids.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from digital_village.auth import service as auth
from digital_village.auth.actor import Actor
from digital_village.auth.models import Role
from digital_village.iot import devices
from digital_village.regions import service as regions


def resolve_scope(
    *,
    session: Session,
    cooperative: str | None = None,
    household: str | None = None,
    device_id: int | None = None,
) -> auth.TokenScope:
    """The row ids a scope's names stand for; NotFound for a name that matches nothing."""
    if cooperative is not None:
        found = regions.find_cooperative(session=session, key=cooperative)
        return auth.TokenScope(cooperative_id=found.id)
    if household is not None:
        member = regions.find_household(session=session, key=household)
        return auth.TokenScope(household_id=member.id, cooperative_id=member.cooperative_id)
    if device_id is not None:
        device = devices.get_device(session=session, device_id=device_id)
        return auth.TokenScope(device_id=device.id, cooperative_id=device.cooperative_id)
    return auth.TokenScope()


def issue_token(
    *,
    session: Session,
    role: Role,
    actor: Actor,
    cooperative: str | None = None,
    household: str | None = None,
    device_id: int | None = None,
    label: str | None = None,
) -> auth.IssuedToken:
    """Create a token for a role and its one scope (cooperative, household or device).

    An admin may create any token; a manager may create farmer tokens for its own members.
    """
    auth.require_may_issue(actor, role)
    auth.check_scope_given(
        role,
        cooperative=cooperative is not None,
        household=household is not None,
        device=device_id is not None,
    )
    scope = resolve_scope(
        session=session, cooperative=cooperative, household=household, device_id=device_id
    )
    return auth.issue_token(session=session, role=role, actor=actor, scope=scope, label=label)
