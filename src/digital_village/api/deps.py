"""Request dependencies every router shares: settings, the database, one session per request.

The session is committed once at the boundary. Dependencies that belong to a domain live with
it: the caller's actor in ``auth.dependencies``, the ledger in ``ledger.dependencies``.

The dependencies that do no I/O are ``async``: FastAPI runs a plain function dependency in its
thread pool, a round trip through the event loop that on a busy server (a harvest day's scans
are answered in the loop itself) waits its turn behind every other request. Sessions are made
in the loop and ended in a thread only when they have a transaction to end.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

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


async def _settings(request: Request) -> Settings:
    return get_settings(request)


async def _database(request: Request) -> Database:
    return get_database(request)


def _has_work(session: Session) -> bool:
    """Whether ending the session talks to the database: a transaction begun, or objects to
    flush."""
    return session.in_transaction() or bool(session.new or session.dirty or session.deleted)


async def get_session(request: Request) -> AsyncIterator[Session]:
    """A session for this request: committed once when the route succeeds, else rolled back.

    Nothing touches the database until the route's first statement; the commit or rollback
    runs in the thread pool, and not at all for a route that committed already
    (:func:`commit_now`) or never used the session.
    """
    database = get_database(request)
    session = database.session(write=request.method not in _SAFE_METHODS)
    try:
        yield session
        if _has_work(session):
            await run_in_threadpool(session.commit)
    except BaseException:
        if _has_work(session):
            await run_in_threadpool(session.rollback)
        raise
    finally:
        await _close(session)


async def _close(session: Session) -> None:
    if session.in_transaction():
        await run_in_threadpool(session.close)
    else:
        session.close()


def commit_now(session: Session) -> None:
    """Commit a route's write before its answer is made, in the route's own thread.

    The request's session would commit anyway once the route returns (``get_session``), but
    only after a round trip through the event loop, which on a busy server (a harvest day's
    scans) waits its turn behind every other request: all that while SQLite's one writer
    stays taken. Routes that write often and briefly (events, readings) commit here instead.
    """
    session.commit()


async def get_side_reader(request: Request) -> AsyncIterator[Session | None]:
    """A read session beside the request's session (``Database.side_reader``), closed at the
    end; the request's own session still commits what it writes."""
    session = get_database(request).side_reader()
    try:
        yield session
    finally:
        if session is not None:
            await _close(session)


SettingsDep = Annotated[Settings, Depends(_settings)]
DatabaseDep = Annotated[Database, Depends(_database)]
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


async def _require_json(request: Request) -> None:
    require_json(request)


JSON_BODY = [Depends(_require_json)]
