"""Domain errors. Each carries its HTTP status in one place; nothing here imports the web stack.

Services raise these; one handler in ``api/problems.py`` turns them into RFC 9457
problem+json, and the CLI turns them into a message and an exit code.
"""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    """Base of every error a user can cause and correct."""

    status: ClassVar[int] = 400
    title: ClassVar[str] = "Bad request"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class Invalid(DomainError):
    status = 422
    title = "Invalid input"


class NotFound(DomainError):
    status = 404
    title = "Not found"


class Conflict(DomainError):
    status = 409
    title = "Conflict"


class Unauthorized(DomainError):
    status = 401
    title = "Unauthorized"


class Forbidden(DomainError):
    status = 403
    title = "Forbidden"


class PayloadTooLarge(DomainError):
    status = 413
    title = "Payload too large"


class UnsupportedMediaType(DomainError):
    status = 415
    title = "Unsupported media type"


class NotReady(DomainError):
    """The deployment is not usable yet (unmigrated database, missing key)."""

    status = 503
    title = "Service not ready"
