"""Schemathesis against the app's own OpenAPI: no operation answers 5xx, and every answer with
a documented schema conforms to it. Anonymous and admin callers, 50 examples per operation in
the suite (DV_FUZZ_EXAMPLES sets more; `scripts/fuzz_api.py` runs a longer campaign and counts
the cases through DV_FUZZ_REPORT, a file that gets one JSON line per operation and caller).
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from digital_village.app import create_app
from digital_village.config import Settings
from tests.conftest import World

# What the project promises of every answer: never a server error, and a body and content type
# that match what the OpenAPI document says. (Domain rules that a JSON Schema cannot express,
# such as a region's parent existing, rightly reject some schema-valid requests with 4xx.)
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
EXAMPLES = int(os.environ.get("DV_FUZZ_EXAMPLES", "50"))
# Operations are listed from the spec alone (no database is needed to build it).
SPEC = create_app(Settings(log_format="text", log_level="WARNING")).openapi()
OPERATIONS = [
    (path, method.upper())
    for path, item in SPEC["paths"].items()
    for method in item
    if method in {"get", "post", "put", "patch", "delete"}
]


def fuzz(client: TestClient, path: str, method: str, headers: dict[str, str]) -> int:
    """Run the examples for one operation; return how many were sent."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    operation = schema[path][method]
    sent = 0

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def run(case: Any) -> None:
        nonlocal sent
        response = case.call(headers=headers)
        sent += 1
        assert response.status_code < 500, (
            f"{case.method} {case.formatted_path} → {response.status_code}: {response.text[:500]}"
        )
        case.validate_response(response, checks=CHECKS)

    run()
    return sent


@pytest.mark.parametrize(("path", "method"), OPERATIONS, ids=[f"{m} {p}" for p, m in OPERATIONS])
@pytest.mark.parametrize("role", ["anonymous", "admin"])
def test_operation_never_5xx_and_matches_its_schema(
    client: TestClient, world: World, path: str, method: str, role: str
) -> None:
    sent = fuzz(client, path, method, world.auth(role))
    report = os.environ.get("DV_FUZZ_REPORT")
    if report:
        line = json.dumps({"operation": f"{method} {path}", "role": role, "cases": sent})
        with open(report, "a", encoding="utf-8") as out:
            out.write(line + "\n")
    assert sent > 0
