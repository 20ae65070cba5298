"""Subscriptions by WebSocket on ``/queries/{name}/events``: new matching events arrive as
EPCISQueryDocument messages while the socket is open, scoped to the token's reader."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from digital_village.app import create_app
from tests.subscriptions.conftest import Committed
from tests.trace import partner_documents

QUERIES = "/api/v1/epcis/queries"


@pytest.fixture
def app_client(committed: Committed) -> Iterator[TestClient]:
    with TestClient(create_app(committed.settings()), raise_server_exceptions=False) as client:
        yield client


def _auth(committed: Committed, role: str = "manager") -> dict[str, str]:
    return {"Authorization": f"Bearer {committed.world.tokens[role]}"}


def _events(message: dict[str, Any]) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = message["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    return events


def test_a_websocket_streams_new_matching_events(
    app_client: TestClient, committed: Committed
) -> None:
    auth = _auth(committed)
    query = {"name": "shipping", "query": {"EQ_bizStep": "shipping"}}
    made = app_client.post(QUERIES, headers=auth, json=query)
    assert made.status_code == 201
    path = f"{QUERIES}/shipping/events?stream=true"
    with app_client.websocket_connect(path, headers=auth) as socket:
        captured = app_client.post("/api/v1/epcis/capture", headers=auth,
                                   json=partner_documents.document())  # fmt: skip
        assert captured.status_code == 202
        message = socket.receive_json()
        assert message["type"] == "EPCISQueryDocument"
        assert message["epcisBody"]["queryResults"]["queryName"] == "shipping"
        assert [e["bizStep"] for e in _events(message)] == ["shipping"]
        app_client.post("/api/v1/epcis/capture", headers=auth,
                        json=partner_documents.declaration_of_unknown_event())  # fmt: skip
        second = socket.receive_json()
        assert "errorDeclaration" in _events(second)[0]
    # A new socket with initialRecordTime gets the events recorded since then first.
    with app_client.websocket_connect(
        f"{QUERIES}/shipping/events?stream=true&initialRecordTime=2020-01-01T00:00:00Z",
        headers=auth,
    ) as socket:
        replay = socket.receive_json()
        assert len(_events(replay)) == 2


def test_a_websocket_on_a_schedule_reports_if_empty(
    app_client: TestClient, committed: Committed
) -> None:
    auth = _auth(committed)
    app_client.post(QUERIES, headers=auth, json={"name": "none", "query": {"EQ_bizStep": "x"}})
    path = f"{QUERIES}/none/events?second=*&reportIfEmpty=true"
    with app_client.websocket_connect(path, headers=auth) as socket:
        assert _events(socket.receive_json()) == []


@pytest.mark.parametrize(
    ("path", "role"),
    [
        (f"{QUERIES}/shipping/events?stream=true", "anonymous"),
        (f"{QUERIES}/nothing/events?stream=true", "manager"),
        (f"{QUERIES}/shipping/events", "manager"),  # neither stream nor a schedule
        (f"{QUERIES}/shipping/events?stream=true&colour=red", "manager"),
        (f"{QUERIES}/shipping/events?stream=true", "farmer"),  # not its query
    ],
)
def test_a_websocket_is_refused_without_token_query_or_trigger(
    app_client: TestClient, committed: Committed, path: str, role: str
) -> None:
    auth = _auth(committed)
    app_client.post(QUERIES, headers=auth, json={"name": "shipping", "query": {}})
    headers = {} if role == "anonymous" else _auth(committed, role)
    with (
        pytest.raises(WebSocketDisconnect) as refused,
        app_client.websocket_connect(path, headers=headers) as socket,
    ):
        socket.receive_json()
    assert refused.value.code == 1008
