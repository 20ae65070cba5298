"""The EPCIS 2.0 interface: capture jobs, the event query with paging, the lot export, and
that what the project emits validates against GS1's official JSON Schema."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from jsonschema import Draft7Validator

from digital_village.trace import builders, capture
from digital_village.trace.vocab import DV_BIZSTEP
from tests.conftest import World, need_gs1_schema
from tests.trace import farm_chain
from tests.trace.conftest import (
    BASE,
    BOTTLE,
    CASE,
    OIL,
    RAPESEED,
    Chain,
    at,
    capture_doc,
    post_event,
    season,
)
from tests.trace.test_epcis import FORMATS


@pytest.fixture(scope="module")
def official_schema() -> Draft7Validator:
    return Draft7Validator(json.loads(need_gs1_schema().read_text("utf-8")), format_checker=FORMATS)


def schema_errors(validator: Draft7Validator, document: dict[str, Any]) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]


@pytest.fixture
def captured(client: TestClient, world: World, chain: Chain) -> dict[str, Any]:
    response = capture_doc(client, world, "manager", season(chain))
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


def query(client: TestClient, world: World, role: str = "manager", **params: Any) -> Any:
    return client.get("/api/v1/epcis/events", params=params, headers=world.auth(role))


def event_list(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["epcisBody"]["queryResults"]["resultsBody"][
        "eventList"
    ]
    return events


# --- capture ------------------------------------------------------------------------------------


def test_capture_answers_202_with_a_job_that_lists_its_events(
    client: TestClient, world: World, captured: dict[str, Any]
) -> None:
    job = client.get(captured["location"], headers=world.auth("manager"))
    assert job.status_code == 200, job.text
    body = job.json()
    assert body["captureID"] == captured["captureID"]
    assert (body["running"], body["success"], body["errors"]) == (False, True, [])
    assert body["captureErrorBehaviour"] == "rollback"
    assert [e["eventID"] for e in body["events"]] == [e["eventID"] for e in captured["events"]]
    # Only the token that captured (or an admin) reads the job.
    assert client.get(captured["location"], headers=world.auth("farmer")).status_code == 403
    assert client.get(captured["location"], headers=world.auth("admin")).status_code == 200


def test_a_refused_capture_leaves_a_failed_job_with_the_errors(
    client: TestClient, world: World, chain: Chain
) -> None:
    events = season(chain)
    events[5]["inputQuantityList"][0]["quantity"] = 5000.0
    response = capture_doc(client, world, "manager", events)
    assert response.status_code == 409, response.text
    problem = response.json()
    assert problem["errors"][0]["pointer"] == "/epcisBody/eventList/5/inputQuantityList/0/epcClass"
    job = client.get(response.headers["Location"], headers=world.auth("manager")).json()
    assert (job["success"], job["eventCount"], job["events"]) == (False, 8, [])
    assert job["errors"] == problem["errors"]
    # All or nothing: the harvest before the bad pressing was not kept either.
    assert client.get(f"/api/v1/lots/{RAPESEED}/RS-2025-001").status_code == 404


def test_capture_limits_are_advertised_and_enforced(
    client: TestClient, world: World, chain: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = season(chain)
    ok = capture_doc(client, world, "manager", events[:1])
    assert ok.headers["GS1-CAPTURE-limit"] == str(capture.CAPTURE_EVENT_LIMIT)
    assert int(ok.headers["GS1-CAPTURE-file-size-limit"]) > 0
    monkeypatch.setattr(capture, "CAPTURE_EVENT_LIMIT", 3)
    response = capture_doc(client, world, "manager", events[1:])
    assert response.status_code == 413
    assert "at most 3 events" in response.json()["detail"]


def test_an_empty_capture_is_refused(client: TestClient, world: World, chain: Chain) -> None:
    response = capture_doc(client, world, "manager", [])
    assert response.status_code == 422
    assert "no events" in response.json()["detail"]


def test_a_capture_needs_a_token(client: TestClient, chain: Chain) -> None:
    document = builders.document([], created=at(6, 30))
    assert client.post("/api/v1/epcis/capture", json=document).status_code == 401


# --- query --------------------------------------------------------------------------------------


def test_query_by_event_time_and_biz_step(
    client: TestClient, world: World, captured: dict[str, Any]
) -> None:
    planting = event_list(query(client, world, EQ_bizStep=f"{DV_BIZSTEP}planting"))
    assert len(planting) == 2
    spring = event_list(
        query(
            client,
            world,
            GE_eventTime="2025-05-01T00:00:00+08:00",
            LT_eventTime="2025-06-04T00:00:00+08:00",
        )
    )
    assert [e["bizStep"] for e in spring] == [f"{DV_BIZSTEP}harvesting", f"{DV_BIZSTEP}pressing"]
    cbv = event_list(query(client, world, EQ_bizStep="urn:epcglobal:cbv:bizstep:packing"))
    assert [e["type"] for e in cbv] == ["AggregationEvent"]
    both = event_list(query(client, world, EQ_bizStep="packing|commissioning"))
    assert len(both) == 2


def test_query_by_epc(client: TestClient, world: World, captured: dict[str, Any]) -> None:
    bottle = f"{BASE}/01/{BOTTLE}/10/B-2025-007/21/0001"
    # MATCH_epc looks at epcList and childEPCs: the packing.
    assert [e["type"] for e in event_list(query(client, world, MATCH_epc=bottle))] == [
        "AggregationEvent"
    ]
    # MATCH_anyEPC also at outputEPCList and parentID: the bottling too; any host, same item.
    other_host = f"https://id.gs1.org/01/{BOTTLE}/21/0001"
    assert len(event_list(query(client, world, MATCH_anyEPC=other_host))) == 2
    assert len(event_list(query(client, world, MATCH_anyEPC=CASE))) == 1
    oil = f"{BASE}/01/{OIL}/10/OIL-2025-007"
    assert len(event_list(query(client, world, MATCH_anyEPCClass=oil))) == 2


def test_query_by_location_and_read_point(
    client: TestClient, world: World, chain: Chain, captured: dict[str, Any]
) -> None:
    parcel = f"{BASE}/p/{chain.own[0]}"
    at_parcel = event_list(query(client, world, EQ_readPoint=parcel))
    assert {e["bizStep"].rsplit("/", 1)[1] for e in at_parcel} == {
        "planting",
        "fertilizing",
        "spraying",
        "harvesting",
    }
    assert len(event_list(query(client, world, EQ_bizLocation=parcel))) == 3


def test_query_pages_with_next_page_token(
    client: TestClient, world: World, captured: dict[str, Any]
) -> None:
    seen: list[str] = []
    response = query(client, world, perPage=3)
    pages = 0
    while True:
        pages += 1
        seen += [e["eventID"] for e in event_list(response)]
        link = response.headers.get("Link")
        if link is None:
            break
        url = link.split(">")[0].lstrip("<")
        response = client.get(url, headers=world.auth("manager"))
    assert pages == 3
    assert seen == [e["eventID"] for e in captured["events"]]
    bad = query(client, world, nextPageToken="nonsense")
    assert bad.status_code == 400 and "nextPageToken" in bad.json()["detail"]


def test_query_scopes_follow_the_token(
    client: TestClient, world: World, chain: Chain, captured: dict[str, Any]
) -> None:
    assert len(event_list(query(client, world, "admin"))) == 8
    # The farmer's household holds the parcels: field work and the harvest are its events.
    farmer = event_list(query(client, world, "farmer"))
    assert {e["bizStep"].rsplit("/", 1)[-1] for e in farmer} == {
        "planting",
        "fertilizing",
        "spraying",
        "harvesting",
    }
    assert query(client, world, "device").status_code == 403
    assert query(client, world, "anonymous").status_code == 401


def test_partner_events_about_unknown_identifiers_are_queryable(
    client: TestClient, world: World, chain: Chain
) -> None:
    assert post_event(client, world, "manager", farm_chain.shipping()).status_code == 201
    found = event_list(query(client, world, MATCH_epc=farm_chain.CASE))
    assert [e["bizStep"] for e in found] == ["shipping"]


def test_query_document_validates_against_the_official_schema(
    client: TestClient, world: World, captured: dict[str, Any], official_schema: Draft7Validator
) -> None:
    document = query(client, world, "admin").json()
    assert schema_errors(official_schema, document) == []


# --- export -------------------------------------------------------------------------------------


def test_a_lots_history_exports_as_a_valid_epcis_document(
    client: TestClient, world: World, captured: dict[str, Any], official_schema: Draft7Validator
) -> None:
    response = client.get(f"/api/v1/lots/{BOTTLE}/B-2025-007/epcis")
    assert response.status_code == 200
    document = response.json()
    assert schema_errors(official_schema, document) == []
    ids = [e["eventID"] for e in document["epcisBody"]["eventList"]]
    assert set(ids) == {e["eventID"] for e in captured["events"]}
    times = [e["eventTime"] for e in document["epcisBody"]["eventList"]]
    assert times[0].startswith("2024-10-05")  # sowing first


def test_an_exported_document_can_be_captured_again_elsewhere(
    client: TestClient, world: World, captured: dict[str, Any]
) -> None:
    from digital_village.trace.epcis import compute_event_id, parse_document

    document = client.get(f"/api/v1/lots/{BOTTLE}/B-2025-007/epcis").json()
    parsed = parse_document(document)
    for event in parsed.epcis_body.event_list:
        assert compute_event_id(event) == event.event_id


def test_a_cbv_step_written_as_a_uri_is_found_by_its_word(
    client: TestClient, world: World, chain: Chain
) -> None:
    event = farm_chain.shipping()
    event["bizStep"] = "https://ref.gs1.org/cbv/BizStep-shipping"
    assert post_event(client, world, "manager", event).status_code == 201
    for step in ("shipping", "https://ref.gs1.org/cbv/BizStep-shipping"):
        found = event_list(query(client, world, EQ_bizStep=step))
        assert [e["bizStep"] for e in found] == ["https://ref.gs1.org/cbv/BizStep-shipping"]


def test_an_unencoded_plus_of_a_utc_offset_is_read_back(
    client: TestClient, world: World, captured: dict[str, Any]
) -> None:
    # curl -G .../events?GE_eventTime=2025-05-01T00:00:00+08:00 sends the '+' as a space.
    url = (
        "/api/v1/epcis/events"
        "?GE_eventTime=2025-05-01T00:00:00+08:00&LT_eventTime=2025-06-04T00:00:00+08:00"
    )
    spring = event_list(client.get(url, headers=world.auth("manager")))
    assert [e["bizStep"] for e in spring] == [f"{DV_BIZSTEP}harvesting", f"{DV_BIZSTEP}pressing"]
    naive = query(client, world, GE_eventTime="2025-05-01T00:00:00")
    assert naive.status_code == 400 and "needs a UTC offset" in naive.json()["detail"]
