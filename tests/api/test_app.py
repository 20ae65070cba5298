"""The application's shared behaviour: health, problem+json errors, limits, start-up checks."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from digital_village.app import create_app
from digital_village.config import Settings
from digital_village.db import Database, make_engine
from tests.conftest import World

PROBLEM = "application/problem+json"


def assert_problem(response: object, status: int, *words: str) -> dict[str, object]:
    from httpx import Response

    assert isinstance(response, Response)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status
    assert body["title"] and body["detail"]
    for word in words:
        assert word in body["detail"], body
    return dict(body)


def test_healthz_reports_ok_with_database_migration_and_key(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["ledger_key"] is True
    assert body["migration"]


def test_healthz_is_unavailable_without_the_ledger_key(
    client: TestClient, settings: Settings
) -> None:
    settings.effective_ledger_key_path.unlink()
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert "dv init" in response.json()["problems"][0]


def test_openapi_docs_are_served(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert "/api/v1/regions" in spec["paths"]


def test_unknown_route_is_a_problem(client: TestClient) -> None:
    assert_problem(client.get("/api/v1/nowhere"), 404)


def test_wrong_method_is_a_problem(client: TestClient) -> None:
    assert_problem(client.put("/healthz"), 405)


def test_invalid_body_names_the_field(client: TestClient, world: World) -> None:
    response = client.post(
        "/api/v1/regions", json={"code": "510603101203"}, headers=world.auth("admin")
    )
    body = assert_problem(response, 422, "name")
    assert body["errors"]


def test_malformed_json_is_422_not_500(client: TestClient, world: World) -> None:
    response = client.post(
        "/api/v1/regions",
        content=b'{"code": "5106',
        headers={**world.auth("admin"), "content-type": "application/json"},
    )
    assert_problem(response, 422)


def test_wrong_content_type_is_415(client: TestClient, world: World) -> None:
    response = client.post(
        "/api/v1/regions",
        content=b"code=510603101203&name=x",
        headers={**world.auth("admin"), "content-type": "application/x-www-form-urlencoded"},
    )
    assert_problem(response, 415, "application/json")


def test_oversize_body_is_413_and_nothing_is_written(client: TestClient, world: World) -> None:
    big_name = "村" * 40_000  # 120 kB of UTF-8, above the 64 kB test limit
    response = client.post(
        "/api/v1/regions",
        json={"code": "510603101203", "name": big_name},
        headers=world.auth("admin"),
    )
    assert_problem(response, 413, "limit")
    assert client.get("/api/v1/regions/510603101203").status_code == 404


def test_streamed_oversize_body_without_length_is_413(client: TestClient, world: World) -> None:
    def chunks() -> object:
        for _ in range(100):
            yield b"x" * 1024

    response = client.post(
        "/api/v1/regions",
        content=chunks(),  # type: ignore[arg-type]
        headers={**world.auth("admin"), "content-type": "application/json"},
    )
    assert_problem(response, 413)


def test_app_refuses_to_start_on_an_unmigrated_database(
    tmp_path: object, settings: Settings
) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    empty = Database(make_engine(f"sqlite:///{tmp_path / 'empty.db'}"))
    app = create_app(settings, database=empty)
    with pytest.raises(Exception, match="dv init"), TestClient(app):
        pass
    empty.dispose()


def test_every_response_carries_a_request_id(client: TestClient) -> None:
    assert len(client.get("/healthz").headers["x-request-id"]) == 16


def test_deeply_nested_json_is_refused_before_parsing(client: TestClient, world: World) -> None:
    deep = b'{"code": "510603101203", "name": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    response = client.post(
        "/api/v1/regions",
        content=deep,
        headers={**world.auth("admin"), "content-type": "application/json"},
    )
    assert_problem(response, 422, "nested 5001 levels")


def test_json_depth_ignores_brackets_inside_strings() -> None:
    from digital_village.api.jsonguard import max_depth

    assert max_depth(b'{"a": "[[[[{{{{", "b": [1, [2, {"c": "\\"]]"}]]}') == 4
    assert max_depth(b"12") == 0


def _depth(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab,:'),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(alphabet='[]{}"\\ab', max_size=4), children, max_size=4)
    ),
    max_leaves=30,
)


@given(json_values)
def test_json_depth_matches_the_parsed_structure(value: object) -> None:
    import json

    from digital_village.api.jsonguard import max_depth

    assert max_depth(json.dumps(value).encode()) == _depth(value)
