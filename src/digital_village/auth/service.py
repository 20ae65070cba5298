"""Bearer tokens: issued once, stored as a hash, checked in constant time.

Tokens are issued for a scope the caller has already resolved (``TokenScope``): finding a
cooperative, household or device by the name a person typed is ``tokens.service``'s job, so
access imports none of the packages that own those tables.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from digital_village.auth.actor import Actor
from digital_village.auth.models import ApiToken, Role
from digital_village.db import utcnow
from digital_village.errors import Invalid, NotFound, Unauthorized

TOKEN_PREFIX = "dv"  # noqa: S105 (a public prefix, not a secret)


@dataclass(frozen=True)
class IssuedToken:
    """A token just created: the only moment its plaintext exists."""

    token: str
    row: ApiToken


@dataclass(frozen=True)
class TokenScope:
    """What a token may touch, already resolved to row ids by the caller.

    A manager token names its cooperative; a farmer token its household and the cooperative the
    household belongs to (its writes happen on that cooperative's behalf), if any; a device
    token its device and the device's cooperative. An admin token names nothing.
    """

    cooperative_id: int | None = None
    household_id: int | None = None
    device_id: int | None = None


# The one scope each role takes, by the name callers give it (a CLI flag or a JSON field).
_SCOPE_FLAG = {Role.MANAGER: "--coop", Role.FARMER: "--household", Role.DEVICE: "--device"}


def _hash_secret(secret: str) -> str:
    # Tokens carry 256 random bits, so a plain SHA-256 is enough; no slow KDF is needed.
    return hashlib.sha256(secret.encode()).hexdigest()


def require_may_issue(actor: Actor, role: Role) -> None:
    """An admin may create any token; a manager farmer tokens (for its own members)."""
    if not (role is Role.FARMER and actor.role is Role.MANAGER):
        actor.require_admin()


def check_scope_given(role: Role, *, cooperative: bool, household: bool, device: bool) -> None:
    """The role's one scope was named, and no other: Invalid naming the flag otherwise."""
    given = {"--coop": cooperative, "--household": household, "--device": device}
    needed = _SCOPE_FLAG.get(role)
    extra = [flag for flag, present in given.items() if present and flag != needed]
    if extra:
        raise Invalid(f"a {role.value} token takes no {', '.join(extra)}")
    if needed is not None and not given[needed]:
        raise Invalid(f"a {role.value} token needs {needed}")


def issue_token(
    *,
    session: Session,
    role: Role,
    actor: Actor,
    scope: TokenScope = TokenScope(),
    label: str | None = None,
) -> IssuedToken:
    """Create a token for a role and its one, already resolved, scope.

    An admin may create any token; a manager may create farmer tokens for its own members
    (households of its cooperative).
    """
    require_may_issue(actor, role)
    named_household = scope.household_id is not None
    named_device = scope.device_id is not None
    check_scope_given(
        role,
        cooperative=scope.cooperative_id is not None and not (named_household or named_device),
        household=named_household,
        device=named_device,
    )
    if role is Role.DEVICE and scope.cooperative_id is None:
        raise Invalid("a device token needs the device's cooperative")
    if named_household and not actor.is_admin:
        actor.require_cooperative(scope.cooperative_id)
    row = ApiToken(
        public_id=secrets.token_hex(6),
        secret_hash="",
        role=role,
        label=label,
        cooperative_id=scope.cooperative_id,
        household_id=scope.household_id,
        device_id=scope.device_id,
    )
    secret = secrets.token_urlsafe(32)
    row.secret_hash = _hash_secret(secret)
    session.add(row)
    session.flush()
    return IssuedToken(token=f"{TOKEN_PREFIX}_{row.public_id}_{secret}", row=row)


def authenticate(*, session: Session, token: str) -> Actor:
    """The actor a bearer token stands for; Unauthorized for unknown, malformed or revoked."""
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX or not parts[1] or not parts[2]:
        raise Unauthorized("malformed bearer token; expected dv_<id>_<secret>")
    row = session.scalar(select(ApiToken).where(ApiToken.public_id == parts[1]))
    # Hash and compare even when the id is unknown, so timing does not reveal which ids exist.
    presented = _hash_secret(parts[2])
    stored = row.secret_hash if row is not None else "0" * 64
    if not hmac.compare_digest(presented, stored) or row is None:
        raise Unauthorized("invalid bearer token")
    if row.revoked_at is not None:
        raise Unauthorized("this token has been revoked")
    return Actor(
        role=row.role,
        cooperative_id=row.cooperative_id,
        household_id=row.household_id,
        device_id=row.device_id,
        token_public_id=row.public_id,
    )


def list_tokens(*, session: Session, include_revoked: bool = False) -> Sequence[ApiToken]:
    """Tokens by creation order (never their secrets, which are not stored)."""
    query = select(ApiToken).order_by(ApiToken.id)
    if not include_revoked:
        query = query.where(ApiToken.revoked_at.is_(None))
    return session.scalars(query).all()


def revoke_token(*, session: Session, public_id: str, actor: Actor) -> ApiToken:
    """Revoke a token by its public id; revoking twice is harmless.

    An admin may revoke any token; a manager the farmer tokens of its own members.
    """
    row = session.scalar(select(ApiToken).where(ApiToken.public_id == public_id))
    if row is None:
        raise NotFound(f"no token with id {public_id}")
    if row.role is Role.FARMER and actor.role is Role.MANAGER:
        actor.require_cooperative(row.cooperative_id)
    else:
        actor.require_admin()
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.flush()
    return row
