"""The OpenAPI document, with every error documented as RFC 9457 problem+json."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field

from digital_village.api.problems import PROBLEM_JSON


class Problem(BaseModel):
    """An RFC 9457 problem: what went wrong, for people (detail) and programs (status, extras)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(default="about:blank")
    title: str
    status: int
    detail: str


_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_ERRORS = {
    "4XX": "A problem with the request (RFC 9457): 401 no valid token, 403 outside the "
    "token's scope, 404, 409 conflict, 413 too large, 415 wrong content type, 422 invalid, "
    "429 rate limited.",
    "503": "The service is not ready (database unmigrated or unreachable, ledger key missing); "
    "Retry-After says when to try again.",
    "507": "The server's disk is full: the write was not stored (nothing half-written); reads "
    "still work, and writes resume once space is freed.",
}


def install(app: FastAPI) -> None:
    """Replace FastAPI's generated 422 shapes with the problem+json answers the app gives."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        schemas["Problem"] = Problem.model_json_schema()
        for item in schema.get("paths", {}).values():
            for operation in item.values():
                responses = operation.setdefault("responses", {})
                responses.pop("422", None)
                for status, description in _ERRORS.items():
                    responses[status] = {
                        "description": description,
                        "content": {PROBLEM_JSON: {"schema": _PROBLEM_REF}},
                    }
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
