"""One place that turns every error into RFC 9457 problem+json."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from digital_village.db import Failure, failure_of, reason_of
from digital_village.errors import DomainError

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("digital_village.api")

_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Invalid input",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service not ready",
    507: "Insufficient storage",
}
# How long a client should wait before trying again while the database is unavailable.
RETRY_AFTER_SECONDS = 5


def problem(
    status: int,
    detail: str,
    *,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """A problem+json response."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title or _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    body.update(jsonable_encoder(extra))
    all_headers = dict(headers or {})
    if status == 401:
        all_headers.setdefault("WWW-Authenticate", 'Bearer realm="digital-village"')
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=all_headers)


def _location(loc: tuple[Any, ...] | list[Any]) -> str:
    return "/".join(str(part) for part in loc)


async def _domain_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, DomainError)
    return problem(error.status, error.detail, title=error.title, **error.extra)


async def _validation_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    errors = [
        {"location": _location(item.get("loc", ())), "message": item.get("msg", "")}
        for item in error.errors()
    ]
    first = errors[0] if errors else {"location": "", "message": "invalid request"}
    return problem(422, f"{first['location']}: {first['message']}", errors=errors)


async def _http_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    detail = error.detail if isinstance(error.detail, str) else str(error.detail)
    if error.status_code == 404 and detail == "Not Found":
        detail = "no such resource or route"
    return problem(error.status_code, detail, headers=dict(error.headers or {}))


async def _out_of_range(_request: Request, error: Exception) -> JSONResponse:
    # A value the database cannot hold (a 30-digit id, a name longer than its column) is the
    # caller's mistake, whichever route let it through.
    return problem(422, f"a value is out of range for the database: {reason_of(error)}")


async def _database_error(request: Request, error: Exception) -> JSONResponse:
    # Not the request's fault and not a bug: the database is full, or away for a moment (a
    # restart, a network cut, a lock held too long). Say which, briefly; the log has the rest.
    failure = failure_of(error)
    if failure is None:
        return await _unexpected_error(request, error)
    reason = reason_of(error)
    log.warning("database %s on %s %s: %s", failure.value, request.method, request.url.path, reason)
    if failure is Failure.DISK_FULL:
        return problem(
            507,
            "the database's disk is full: this was not stored, and writes are refused until "
            "space is freed (reads still work)",
            title="Insufficient storage",
        )
    return problem(
        503,
        "the database is unavailable (restarting, unreachable or busy); "
        f"try again in {RETRY_AFTER_SECONDS} seconds",
        title="Database unavailable",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def _unexpected_error(request: Request, error: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem(500, "an unexpected error occurred; it has been logged")


def install(app: FastAPI) -> None:
    """Register the problem+json handlers on an app."""
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(OverflowError, _out_of_range)
    app.add_exception_handler(DataError, _out_of_range)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(PoolTimeoutError, _database_error)
    app.add_exception_handler(Exception, _unexpected_error)
