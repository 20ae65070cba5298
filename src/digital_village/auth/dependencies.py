"""Request dependencies of access: the actor behind the request's bearer token."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from digital_village.api.deps import DatabaseDep
from digital_village.auth import service as auth
from digital_village.auth.actor import Actor
from digital_village.errors import Unauthorized

_bearer = HTTPBearer(auto_error=False, description="A token made by `dv tokens create`.")


def get_actor(
    database: DatabaseDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Actor:
    """The actor behind the request's bearer token; 401 without a valid one.

    Read in a short session of its own, not the request's: a write request's session takes the
    database's write lock at its first statement (SQLite's BEGIN IMMEDIATE), which would then be
    held while the request's body is parsed and checked.
    """
    if credentials is None:
        raise Unauthorized("this route needs a bearer token (Authorization: Bearer dv_…)")
    with database.session() as session:
        return auth.authenticate(session=session, token=credentials.credentials)


ActorDep = Annotated[Actor, Depends(get_actor)]
