"""Request dependencies every router shares: settings, the database, one session per request.

The session is committed once at the boundary. Dependencies that belong to a domain live with
it: the caller's actor in ``auth.dependencies``, the ledger in ``ledger.dependencies``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from digital_village.config import Settings
from digital_village.db import Database
from digital_village.errors import UnsupportedMediaType

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


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


def commit_now(session: Session) -> None:
    """Commit a route's write before its answer is made, in the route's own thread.

    The request's session would commit anyway once the route returns (``get_session``), but
    only after a round trip through the event loop, which on a busy server (a harvest day's
    scans) waits its turn behind every other request: all that while SQLite's one writer
    stays taken. Routes that write often and briefly (events, readings) commit here instead.
    """
    session.commit()


def get_side_reader(request: Request) -> Iterator[Session | None]:
    """A read session beside the request's session (``Database.side_reader``), closed at the
    end; the request's own session still commits what it writes."""
    session = get_database(request).side_reader()
    try:
        yield session
    finally:
        if session is not None:
            session.close()


SettingsDep = Annotated[Settings, Depends(get_settings)]
DatabaseDep = Annotated[Database, Depends(get_database)]
# scope="function": the commit happens before the response is sent, so a 2xx means stored.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
SideReaderDep = Annotated[Session | None, Depends(get_side_reader, scope="function")]


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
