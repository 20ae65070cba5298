"""Hostile input the generated campaign does not make: invalid Unicode in JSON (lone UTF-16
surrogates written as escapes, UTF-8 bytes that are not UTF-8, encoded surrogates), very long
fields, and CSV telemetry's edge cases. Every write operation that takes JSON gets each class,
as admin; the answer is always a 4xx problem+json naming the fault (or a 2xx where the input is
in fact fine), never a 5xx.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digital_village.app import create_app
from digital_village.config import Settings
from digital_village.db import Database
from tests.conftest import World
from tests.fuzz.test_openapi_fuzz import EXAMPLES, OPERATIONS, SPEC

JSON_WRITES = [
    (path, method)
    for path, method in OPERATIONS
    if method in {"POST", "PUT", "PATCH"}
    and "application/json"
    in SPEC["paths"][path][method.lower()].get("requestBody", {}).get("content", {})
]
LONE_SURROGATES = [
    rb'{"name": "\ud800"}',
    rb'{"name": "\udfff tail"}',
    rb'{"name": "ok", "more": ["\udc00\ud800"]}',  # low then high: neither is a pair
    rb'{"name": "\ud83d\u0041"}',  # a high surrogate followed by a non-surrogate
    rb'["\uDBFF"]',
]
NOT_UTF8 = [
    b'{"name": "\xff\xfe"}',
    b'{"name": "\xed\xa0\x80"}',  # a surrogate encoded in UTF-8 (CESU), which UTF-8 forbids
    b'{"name": "\xc0\xaf"}',  # an overlong encoding of "/"
]
# Escapes that are fine: a real pair (😀), and backslashes before a "u" that is only text.
FINE = [rb'{"name": "\ud83d\ude00"}', rb'{"name": "\\ud800 is written like this"}']


def _path(template: str) -> str:
    return template.replace("{", "").replace("}", "")  # any value: the body is checked first


def _problem(response: Any) -> dict[str, Any]:
    assert response.headers["content-type"].startswith("application/problem+json"), (
        response.status_code,
        response.text[:300],
    )
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize(("path", "method"), JSON_WRITES, ids=[f"{m} {p}" for p, m in JSON_WRITES])
def test_invalid_unicode_in_json_is_422_on_every_route(
    client: TestClient, world: World, path: str, method: str
) -> None:
    headers = {**world.auth("admin"), "Content-Type": "application/json"}
    for body in LONE_SURROGATES:
        response = client.request(method, _path(path), content=body, headers=headers)
        assert response.status_code == 422, (body, response.status_code, response.text[:300])
        assert "surrogate" in _problem(response)["detail"]
    for body in NOT_UTF8:
        response = client.request(method, _path(path), content=body, headers=headers)
        assert response.status_code == 422, (body, response.status_code, response.text[:300])
        assert "UTF-8" in _problem(response)["detail"]
    for body in FINE:
        response = client.request(method, _path(path), content=body, headers=headers)
        assert response.status_code < 500, (body, response.status_code, response.text[:300])
        if response.status_code == 422:
            assert "surrogate" not in response.text and "UTF-8" not in response.text


def _hostile_text() -> st.SearchStrategy[str]:
    """Text with lone surrogates, NULs, controls, long runs and anything else Unicode has."""
    return st.text(
        alphabet=st.characters(codec=None, categories=None),
        min_size=0,
        max_size=40,
    ) | st.builds(lambda c, n: c * n, st.characters(), st.integers(1000, 60_000))


@pytest.mark.parametrize(
    "path", ["/api/v1/events", "/api/v1/epcis/capture", "/api/v1/households", "/api/v1/telemetry"]
)
def test_strings_of_any_kind_in_json_never_5xx(client: TestClient, world: World, path: str) -> None:
    headers = {**world.auth("admin"), "Content-Type": "application/json"}

    @given(st.dictionaries(st.sampled_from(["name", "eventTime", "type", "x"]), _hostile_text()))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(document: dict[str, str]) -> None:
        body = json.dumps(document).encode()  # json.dumps escapes lone surrogates as \udXXX
        response = client.post(path, content=body, headers=headers)
        assert response.status_code < 500, (document, response.text[:300])

    run()


@pytest.fixture
def roomy_client(settings: Settings, db: Database) -> Iterator[TestClient]:
    """The app with the default body limit (16 MiB), for fields past CSV's own limit."""
    app = create_app(settings.model_copy(update={"max_body_bytes": 16 * 1024 * 1024}), database=db)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


CSV_EDGES = {
    "a field over 131,072 characters": "time,metric,value\n1700000000000,soil_moisture,"
    + "9" * 140_000
    + "\n",
    "a quoted field over the limit": 'time,soil_moisture\n1700000000000,"' + "1" * 200_000 + '"\n',
    "a NUL byte": "time,metric,value\n1700000000000,soil_\x00moisture,20\n",
    "an unterminated quote": 'time,metric,value\n1700000000000,"soil_moisture,20\n',
    "carriage returns only": "time,metric,value\r1700000000000,soil_moisture,20\r",
    "a lone surrogate's bytes": "time,metric,value\n1700000000000,soil_moisture,20\n",
    "ten thousand columns": "time," + ",".join(["soil_moisture"] * 10_000) + "\n1,2\n",
    "only a header": "time,metric,value\n",
    "an empty body": "",
}


@pytest.mark.parametrize("case", list(CSV_EDGES), ids=list(CSV_EDGES))
def test_csv_telemetry_edge_cases_never_5xx(
    roomy_client: TestClient, world: World, case: str
) -> None:
    body = CSV_EDGES[case].encode()
    if case == "a lone surrogate's bytes":
        body = body.replace(b"soil", b"so\xed\xa0\x80il")
    response = roomy_client.post(
        f"/api/v1/telemetry?device_id={world.device_a}",
        content=body,
        headers={**world.auth("admin"), "Content-Type": "text/csv"},
    )
    assert response.status_code < 500, (case, response.status_code, response.text[:300])
    if response.status_code >= 400:
        assert response.status_code in (400, 413, 415, 422), (case, response.status_code)
        detail = _problem(response)["detail"]
        assert detail and len(detail) < 2000, case


def test_a_csv_field_over_the_limit_names_the_line(roomy_client: TestClient, world: World) -> None:
    response = roomy_client.post(
        f"/api/v1/telemetry?device_id={world.device_a}",
        content=CSV_EDGES["a field over 131,072 characters"].encode(),
        headers={**world.auth("admin"), "Content-Type": "text/csv"},
    )
    assert response.status_code == 422, response.text[:300]
    assert "line 2" in response.text and "131072" in response.text
