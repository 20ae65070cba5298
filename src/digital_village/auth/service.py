"""Bearer tokens: issued once, stored as a hash, checked in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from digital_village.auth.actor import Actor
from digital_village.auth.models import ApiToken, Device, Role
from digital_village.db import utcnow
from digital_village.errors import Invalid, NotFound, Unauthorized
from digital_village.regions import service as regions

TOKEN_PREFIX = "dv"  # noqa: S105 (a public prefix, not a secret)


@dataclass(frozen=True)
class IssuedToken:
    """A token just created: the only moment its plaintext exists."""

    token: str
    row: ApiToken


def _hash_secret(secret: str) -> str:
    # Tokens carry 256 random bits, so a plain SHA-256 is enough; no slow KDF is needed.
    return hashlib.sha256(secret.encode()).hexdigest()


def issue_token(
    *,
    session: Session,
    role: Role,
    actor: Actor,
    cooperative: str | None = None,
    household: str | None = None,
    device_id: int | None = None,
    label: str | None = None,
) -> IssuedToken:
    """Create a token for a role and its one scope (cooperative, household or device).

    An admin may create any token; a manager may create farmer tokens for its own members.
    """
    if not (role is Role.FARMER and actor.role is Role.MANAGER):
        actor.require_admin()
    given = {
        "--coop": cooperative is not None,
        "--household": household is not None,
        "--device": device_id is not None,
    }
    needed = {Role.MANAGER: "--coop", Role.FARMER: "--household", Role.DEVICE: "--device"}.get(role)
    extra = [flag for flag, present in given.items() if present and flag != needed]
    if extra:
        raise Invalid(f"a {role.value} token takes no {', '.join(extra)}")
    if needed is not None and not given[needed]:
        raise Invalid(f"a {role.value} token needs {needed}")

    row = ApiToken(public_id=secrets.token_hex(6), secret_hash="", role=role, label=label)
    if cooperative is not None:
        row.cooperative_id = regions.find_cooperative(session=session, key=cooperative).id
    if household is not None:
        found = regions.find_household(session=session, key=household)
        if not actor.is_admin:
            actor.require_cooperative(found.cooperative_id)
        row.household_id = found.id
        # A farmer's writes happen on behalf of the cooperative it belongs to, if any.
        row.cooperative_id = found.cooperative_id
    if device_id is not None:
        device = session.get(Device, device_id)
        if device is None:
            raise NotFound(f"no device with id {device_id}")
        row.device_id = device.id
        row.cooperative_id = device.cooperative_id
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
