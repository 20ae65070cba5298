"""A whole season through the API: field work, harvest, pressing, bottling, packing, trace."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import World
from tests.trace.conftest import BOTTLE, OIL, RAPESEED, Chain, capture_doc, season


def test_a_season_is_captured_and_traced_back_to_the_fields(
    client: TestClient, world: World, chain: Chain
) -> None:
    response = capture_doc(client, world, "manager", season(chain))
    assert response.status_code == 202, response.text
    assert response.headers["Location"] == response.json()["location"]
    trace = client.get(f"/api/v1/trace/{BOTTLE}/B-2025-007").json()
    nodes = {node["id"]: node for node in trace["nodes"]}
    assert {f"01/{OIL}/10/OIL-2025-007", f"01/{RAPESEED}/10/RS-2025-001"} <= set(nodes)
    assert {chain.own[0], chain.own[1]} <= {
        n["id"] for n in trace["nodes"] if n["type"] == "parcel"
    }
