"""Request dependencies: settings, one session per request committed at the boundary, the actor."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from digital_village.auth import service as auth
from digital_village.auth.actor import Actor
from digital_village.config import Settings
from digital_village.db import Database
from digital_village.errors import Unauthorized, UnsupportedMediaType
from digital_village.ledger.log import Ledger

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_bearer = HTTPBearer(auto_error=False, description="A token made by `dv tokens create`.")


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_database(request: Request) -> Database:
    database: Database = request.app.state.db
    return database


def get_session(request: Request) -> Iterator[Session]:
    """A session for this request: committed once when the route succeeds, else rolled back."""
    database = get_database(request)
    session = database.session(write=request.method not in _SAFE_METHODS)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


SettingsDep = Annotated[Settings, Depends(get_settings)]
# scope="function": the commit happens before the response is sent, so a 2xx means stored.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def get_actor(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Actor:
    """The actor behind the request's bearer token; 401 without a valid one."""
    if credentials is None:
        raise Unauthorized("this route needs a bearer token (Authorization: Bearer dv_…)")
    return auth.authenticate(session=session, token=credentials.credentials)


ActorDep = Annotated[Actor, Depends(get_actor)]


def get_ledger(request: Request) -> Ledger:
    """The ledger, with its signing key loaded on first use (503 while the key is missing)."""
    ledger: Ledger | None = getattr(request.app.state, "ledger", None)
    if ledger is None:
        settings = get_settings(request)
        ledger = Ledger.from_key_file(settings.effective_ledger_key_path, settings.ledger_origin)
        request.app.state.ledger = ledger
    return ledger


LedgerDep = Annotated[Ledger, Depends(get_ledger)]


def require_json(request: Request) -> None:
    """Refuse request bodies that are not JSON with 415 rather than a confusing 422."""
    if request.method in _SAFE_METHODS:
        return
    content_type = request.headers.get("content-type", "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type and media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaType(
            f"this route takes application/json, not {media_type}", accepted=["application/json"]
        )


JSON_BODY = [Depends(require_json)]
