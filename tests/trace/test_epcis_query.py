"""The EPCIS 2.0 query interface as GS1's REST binding describes it: every standard query
parameter (a table of parameters and the events they must select, on a partner's document that
uses every field of GS1's schema), unknown parameters refused with 400, paging by a signed
nextPageToken, the top-level resources, OPTIONS discovery and the GS1 headers, scopes."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Connection

from tests.conftest import World
from tests.trace import partner_documents
from tests.trace.conftest import Chain
from tests.trace.test_query_plans import full_scans, statements

EVENTS = "/api/v1/epcis/events"
# The partner's events all happened on 2 June 2025 (UTC); the window keeps other events out.
WINDOW = {"GE_eventTime": "2025-06-02T00:00:00Z", "LT_eventTime": "2025-06-03T00:00:00Z"}
ALL = {"object", "aggregation", "transaction", "transformation", "association", "declaration"}
OBJECT_ID = "urn:uuid:5a1c9f2e-4b7d-4c1e-9a55-1b2c3d4e5f60"
LGTIN = "urn:epc:class:lgtin:4012345.011111.L-77"
SSCC = "urn:epc:id:sscc:4012345.0000000111"


def label(event: dict[str, Any]) -> str:
    """Which of the partner's events this is (each type once, and the declaration)."""
    if "errorDeclaration" in event:
        return "declaration"
    return str(event["type"]).removesuffix("Event").lower()


@pytest.fixture
def partner(client: TestClient, world: World, chain: Chain) -> None:
    for document in (
        partner_documents.document(),
        partner_documents.declaration_of_unknown_event(),
    ):
        response = client.post(EVENTS.replace("events", "capture"), json=document,
                               headers=world.auth("manager"))  # fmt: skip
        assert response.status_code == 202, response.text


def get(client: TestClient, world: World, params: Any, role: str = "manager", **kw: Any) -> Any:
    return client.get(EVENTS, params=params, headers={**world.auth(role), **kw})


def events_of(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["type"] == "EPCISQueryDocument"
    events: list[dict[str, Any]] = body["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    return events


# (parameters, the partner's events they select). Each expectation is read off the partner
# document (tests/trace/partner_documents.py) with the parameter's meaning in EPCIS 2.0
# §8.2.7.1; vocabulary is written in the different spellings GS1 allows.
CASES: list[tuple[dict[str, str], set[str]]] = [
    ({}, ALL),
    ({"eventType": "ObjectEvent"}, {"object"}),
    ({"eventType": "ObjectEvent|AggregationEvent"}, {"object", "aggregation"}),
    ({"EQ_action": "ADD"}, ALL - {"transformation"}),
    ({"EQ_action": "OBSERVE"}, set()),
    ({"EQ_bizStep": "shipping"}, {"transaction", "declaration"}),
    ({"EQ_bizStep": "urn:epcglobal:cbv:bizstep:packing"}, {"aggregation"}),
    ({"EQ_bizStep": "https://ref.gs1.org/cbv/BizStep-assembling"}, {"association"}),
    ({"EQ_disposition": "https://ref.gs1.org/cbv/Disp-active"}, {"object", "transformation"}),
    ({"EQ_disposition": "in_transit"}, {"transaction", "declaration"}),
    ({"EQ_readPoint": "urn:epc:id:sgln:4012345.00011.0"}, {"object", "aggregation"}),
    ({"WD_readPoint": "urn:epc:id:sgln:4012345.00012.0"}, {"transformation"}),
    ({"EQ_bizLocation": "https://id.gs1.org/414/4012345000115"}, {"object"}),
    ({"WD_bizLocation": "urn:epc:id:sgln:4012345.00099.0"}, set()),
    ({"EQ_eventID": OBJECT_ID}, {"object"}),
    ({"MATCH_epc": "urn:epc:id:sgtin:4012345.011111.1001"}, {"object", "aggregation"}),
    ({"MATCH_parentID": SSCC}, {"aggregation", "transaction", "declaration"}),
    ({"MATCH_inputEPC": "urn:epc:id:sgtin:4012345.033333.1"}, {"transformation"}),
    ({"MATCH_outputEPC": "urn:epc:id:sgtin:4012345.044444.1"}, {"transformation"}),
    ({"MATCH_anyEPC": SSCC}, {"aggregation", "transaction", "declaration"}),
    ({"MATCH_anyEPC": "urn:epc:id:sgtin:4012345.044444.1"}, {"transformation"}),
    # The aggregation names the same LGTIN as a Digital Link URI: the same class.
    ({"MATCH_epcClass": LGTIN}, {"object", "aggregation", "transaction", "declaration"}),
    ({"MATCH_inputEPCClass": "urn:epc:class:lgtin:4012345.033333.IN-1"}, {"transformation"}),
    ({"MATCH_outputEPCClass": "urn:epc:class:lgtin:4012345.044444.OUT-1"}, {"transformation"}),
    ({"MATCH_anyEPCClass": "urn:epc:class:lgtin:4012345.044444.OUT-1"}, {"transformation"}),
    ({"EXISTS_errorDeclaration": ""}, {"declaration"}),
    ({"EQ_errorReason": "incorrect_data"}, {"declaration"}),
    ({"EQ_errorReason": "urn:epcglobal:cbv:er:did_not_occur"}, set()),
    ({"GE_errorDeclarationTime": "2025-06-03T00:00:00Z"}, {"declaration"}),
    ({"LT_errorDeclarationTime": "2025-06-03T00:00:00Z"}, set()),
    ({"EQ_correctiveEventID": "urn:uuid:0b7e2f4a-6c1d-4e8f-a2b3-c4d5e6f70819"}, {"declaration"}),
    ({"EQ_transformationID": "urn:epc:id:gdti:4012345.55555.1234"}, {"transformation"}),
    ({"EQ_persistentDisposition_set": "completeness_verified"}, {"object"}),
    ({"EQ_persistentDisposition_unset": "unknown"}, {"object"}),
    ({"EQ_quantity": "100"}, {"transformation"}),
    ({"GT_quantity": "39"}, {"transformation"}),
    ({"LT_quantity": "3"}, {"transaction", "declaration"}),
    ({"LE_quantity": "3"}, {"object", "transaction", "declaration"}),
    ({"GE_quantity_LTR": "40"}, {"transformation"}),
    ({"EQ_quantity_KGM": "10"}, {"aggregation"}),
    ({"EQ_bizTransaction_po": "urn:epcglobal:cbv:bt:4012345000009:PO-1"}, {"object"}),
    (
        {"EQ_bizTransaction_desadv": "urn:epcglobal:cbv:bt:4012345000009:ASN-9"},
        {"transaction", "declaration"},
    ),
    ({"EQ_source_owning_party": "urn:epc:id:pgln:4012345.00000"}, {"object"}),
    (
        {"EQ_source_possessing_party": "urn:epc:id:pgln:4012345.00000"},
        {"transaction", "declaration"},
    ),
    (
        {"EQ_destination_location": "urn:epc:id:sgln:0614141.00777.0"},
        {"transaction", "declaration"},
    ),
    ({"EXISTS_sensorElementList": ""}, {"object", "association"}),
    ({"EQ_type": "Temperature"}, {"object"}),
    ({"EQ_type": "gs1:Length"}, {"association"}),
    ({"EQ_type": "https://gs1.org/voc/RelativeHumidity"}, {"object"}),
    ({"GE_value_CEL": "26"}, {"object"}),
    ({"GT_value_CEL": "27"}, set()),
    ({"LT_maxValue_CEL": "27"}, {"object"}),
    ({"GE_value_MTR": "1"}, {"association"}),
    ({"EQ_deviceID": "urn:epc:id:giai:4000001.111"}, {"object"}),
    ({"GE_time": "2025-06-02T07:00:00Z"}, {"object"}),
    ({"LT_time": "2025-06-02T07:00:00Z"}, set()),
    ({"GE_startTime": "2025-06-02T06:00:00Z"}, {"object"}),
    ({"EQ_booleanValue": "true"}, {"object"}),
    ({"EQ_stringValue": "SomeString"}, {"object"}),
    ({"EQ_uriValue": "https://id.gs1.org/8004/4000001111"}, {"object"}),
    ({"EQ_hexBinaryValue": "f0f0f0"}, {"object"}),
    ({"GE_percRank": "50"}, {"object"}),
    ({"EQ_microorganism": "https://www.ncbi.nlm.nih.gov/taxonomy/1126011"}, {"object"}),
    ({"EQ_dataProcessingMethod": "https://example.com/gdti/4012345000054987"}, {"object"}),
    ({"EQ_example:operator": "Employee 123"}, {"object"}),
    ({"EQ_example:operator": "Employee 999"}, set()),
    ({"EXISTS_example:packer": ""}, {"aggregation"}),
    ({"EXISTS_http://ns.example.com/epcis/packer": ""}, {"aggregation"}),
    ({"EQ_partner:fullUriKey": "value under a full URI key"}, {"object"}),
    ({"EQ_INNER_example:nested": "deep"}, {"object"}),
    ({"EQ_ILMD_example:batch": "OUT-1"}, {"transformation"}),
    ({"EXISTS_ILMD_cbvmda:lotNumber": ""}, {"object"}),
    ({"EQ_INNER_ILMD_example:class": "A"}, {"object"}),
    ({"GT_INNER_ILMD_example:score": "9"}, {"object"}),
    ({"GT_INNER_ILMD_example:score": "10"}, set()),
    ({"EQ_readPoint_example:dock": "D4"}, {"object"}),
    ({"EQ_INNER_bizLocation_partner:aisle": "7"}, {"object"}),
    ({"EQ_ERROR_DECLARATION_example:declaredBy": "Employee 456"}, {"declaration"}),
    ({"EXISTS_bizLocation": ""}, {"object"}),
    ({"EXISTS_ilmd": ""}, {"object", "transformation"}),
    ({"GE_recordTime": "2020-01-01T00:00:00Z", "eventType": "AssociationEvent"}, {"association"}),
    ({"LT_recordTime": "2020-01-01T00:00:00Z"}, set()),
    ({"GT_eventTime": "2025-06-02T11:30:00+02:00"}, {"transformation", "association"}),
    ({"LE_eventTime": "2025-06-02T09:00:00+00:00"}, {"object", "aggregation"}),
]


def test_every_standard_parameter_selects_what_the_standard_says(
    client: TestClient, world: World, partner: None
) -> None:
    failures = []
    for params, expected in CASES:
        response = get(client, world, {**WINDOW, **params, "perPage": 100})
        if response.status_code != 200:
            failures.append(f"{params}: HTTP {response.status_code} {response.text}")
            continue
        found = [label(event) for event in events_of(response)]
        if sorted(found) != sorted(expected):
            failures.append(f"{params}: expected {sorted(expected)}, got {sorted(found)}")
    assert not failures, "\n".join(failures)


def test_extension_names_follow_the_clients_gs1_extensions_header(
    client: TestClient, world: World, partner: None
) -> None:
    params = {**WINDOW, "EQ_ex:operator": "Employee 123"}
    assert events_of(get(client, world, params)) == []
    declared = get(client, world, params, **{"GS1-Extensions": "ex=http://ns.example.com/epcis/"})
    assert [label(e) for e in events_of(declared)] == ["object"]


def test_order_and_count_limits(client: TestClient, world: World, partner: None) -> None:
    ascending = events_of(get(client, world, {**WINDOW, "orderBy": "eventTime",
                                              "orderDirection": "ASC"}))  # fmt: skip
    times = [e["eventTime"] for e in ascending]
    assert [label(e) for e in ascending][:2] == ["object", "aggregation"]
    assert [label(e) for e in ascending][-2:] == ["transformation", "association"]
    assert len(times) == 6
    # orderDirection defaults to DESC once orderBy is given.
    newest = events_of(get(client, world, {**WINDOW, "orderBy": "eventTime",
                                           "eventCountLimit": 2}))  # fmt: skip
    assert [label(e) for e in newest] == ["association", "transformation"]
    too_many = get(client, world, {**WINDOW, "maxEventCount": 5})
    assert too_many.status_code == 413, too_many.text
    assert too_many.json()["type"] == "epcisException:QueryTooLargeException"
    assert len(events_of(get(client, world, {**WINDOW, "maxEventCount": 6}))) == 6


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"EQ_bizstep": "shipping"}, "EQ_bizstep"),
        ({"MATCH_anyepc": SSCC}, "MATCH_anyepc"),
        ({"GE_eventTime": "2025-06-02T00:00:00Z", "colour": "red"}, "colour"),
        ({"HASATTR_example:colour": "red"}, "HASATTR_example:colour"),
        ({"EQ_action": "SHIP"}, "EQ_action"),
        ({"GE_eventTime": "yesterday"}, "GE_eventTime"),
        ({"GE_eventTime": "2025-06-02T00:00:00"}, "GE_eventTime"),
        ({"orderBy": "bizStep"}, "orderBy"),
        ({"eventCountLimit": "2", "maxEventCount": "2"}, "eventCountLimit"),
        ({"perPage": "0"}, "perPage"),
        ({"GT_quantity": "many"}, "GT_quantity"),
    ],
)
def test_a_bad_or_unknown_parameter_is_a_400_naming_it(
    client: TestClient, world: World, params: dict[str, str], named: str
) -> None:
    response = get(client, world, params)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["parameter"] == named
    assert problem["type"] == "epcisException:QueryParameterException"
    assert named in problem["detail"]


def _pages(client: TestClient, world: World, params: dict[str, Any]) -> list[list[str]]:
    pages: list[list[str]] = []
    response = get(client, world, params)
    while True:
        pages.append([label(e) for e in events_of(response)])
        link = response.headers.get("Link")
        if link is None:
            return pages
        assert link.endswith('>; rel="next"')
        response = client.get(link[1:].split(">")[0], headers=world.auth("manager"))


def test_paging_through_next_page_tokens(client: TestClient, world: World, partner: None) -> None:
    everything = [label(e) for e in events_of(get(client, world, {**WINDOW, "perPage": 100}))]
    pages = _pages(client, world, {**WINDOW, "perPage": 4})
    assert [len(page) for page in pages] == [4, 2]
    assert [item for page in pages for item in page] == everything
    # Newest first across pages, and with a JSON-level condition.
    pages = _pages(client, world, {**WINDOW, "orderBy": "eventTime", "perPage": 2})
    assert [item for page in pages for item in page][:2] == ["association", "transformation"]
    assert len([item for page in pages for item in page]) == 6
    pages = _pages(client, world, {**WINDOW, "EXISTS_ilmd": "", "perPage": 1})
    assert [item for page in pages for item in page] == ["object", "transformation"]


def test_a_page_token_is_tamper_evident_and_bound_to_its_query(
    client: TestClient, world: World, partner: None
) -> None:
    first = get(client, world, {**WINDOW, "perPage": 2})
    token = first.headers["Link"].split("nextPageToken=")[1].split(">")[0].split("&")[0]
    assert get(client, world, {**WINDOW, "perPage": 2, "nextPageToken": token}).status_code == 200
    body, tag = token.split(".")
    forged = ("A" if body[0] != "A" else "B") + body[1:] + "." + tag
    for bad in (forged, body + "." + tag[::-1], "nonsense"):
        response = get(client, world, {**WINDOW, "perPage": 2, "nextPageToken": bad})
        assert response.status_code == 400 and response.json()["parameter"] == "nextPageToken"
    other_query = get(client, world, {**WINDOW, "eventType": "ObjectEvent", "nextPageToken": token})
    assert other_query.status_code == 400


def test_answers_carry_the_gs1_headers_and_options_discovers(
    client: TestClient, world: World
) -> None:
    response = get(client, world, {})
    assert response.headers["GS1-EPCIS-Version"] == "2.0"
    assert response.headers["GS1-CBV-Version"] == "2.0"
    assert "dv=https://w3id.org/digital-village/voc/" in response.headers["GS1-Extensions"]
    for path in ("/api/v1/epcis/", EVENTS, "/api/v1/epcis/capture", "/api/v1/epcis/queries"):
        options = client.options(path, headers=world.auth("manager"))
        assert options.status_code == 200, (path, options.text)
        for header in ("GS1-EPCIS-Version", "GS1-EPCIS-Min", "GS1-EPCIS-Max", "GS1-CBV-Version",
                       "GS1-Extensions"):  # fmt: skip
            assert header in options.headers, (path, header)
    assert "GET" in client.options(EVENTS).headers["Allow"]
    assert "POST" in client.options("/api/v1/epcis/queries").headers["Allow"]
    assert client.options("/api/v1/epcis/capture").headers["GS1-CAPTURE-limit"]
    assert client.options("/api/v1/epcis/nothing-here").status_code == 404


@pytest.mark.parametrize(
    ("header", "value", "status"),
    [
        ("GS1-EPCIS-Version", "2.0", 200),
        ("GS1-EPCIS-Version", "1.2", 406),
        ("GS1-EPCIS-Min", "1.2", 200),
        ("GS1-EPCIS-Min", "2.1", 406),
        ("GS1-EPCIS-Max", "1.2", 406),
        ("GS1-CBV-Version", "2.0.0", 200),
        ("GS1-CBV-Max", "1.2", 406),
        ("GS1-EPCIS-Version", "latest", 406),
    ],
)
def test_a_client_needing_another_version_is_refused(
    client: TestClient, world: World, header: str, value: str, status: int
) -> None:
    response = get(client, world, {}, **{header: value})
    assert response.status_code == status, response.text
    if status == 406:
        assert response.json()["header"] == header


def test_a_capture_may_be_epcis_1_2(client: TestClient, world: World) -> None:
    """EPCIS 1.2 XML is captured (converted), so a 1.2 client is not refused there."""
    headers = {**world.auth("manager"), "GS1-EPCIS-Version": "1.2"}
    refused = client.post("/api/v1/epcis/capture", json={}, headers=headers)
    assert refused.status_code == 422  # an empty document, not the version
    headers["GS1-EPCIS-Version"] = "1.1"
    assert client.post("/api/v1/epcis/capture", json={}, headers=headers).status_code == 406


def test_top_level_resources(client: TestClient, world: World, partner: None) -> None:
    auth = world.auth("manager")
    types = client.get("/api/v1/epcis/eventTypes", headers=auth)
    assert types.status_code == 200 and {"ObjectEvent", "AssociationEvent"} <= set(types.json())
    steps = client.get("/api/v1/epcis/bizSteps", params={"perPage": 2}, headers=auth)
    pages = [steps.json()]
    while "Link" in steps.headers:
        steps = client.get(steps.headers["Link"][1:].split(">")[0], headers=auth)
        pages.append(steps.json())
    assert [len(page) for page in pages] == [2, 2, 1]
    values = [value for page in pages for value in page]
    assert values == sorted(values)
    assert set(values) == {
        "assembling",
        "commissioning",
        "http://epcis.example.com/user/vocab/bizstep/blending",
        "packing",
        "shipping",
    }
    assert (
        "urn:epc:id:sgln:4012345.00011.0"
        in client.get("/api/v1/epcis/readPoints", headers=auth).json()
    )
    for path, expected in (
        (f"/api/v1/epcis/epcs/{quote(SSCC, safe='')}/events", {"aggregation", "transaction",
                                                                "declaration"}),
        ("/api/v1/epcis/eventTypes/TransformationEvent/events", {"transformation"}),
        ("/api/v1/epcis/bizSteps/packing/events", {"aggregation"}),
        (f"/api/v1/epcis/readPoints/{quote('urn:epc:id:sgln:4012345.00013.0', safe='')}/events",
         {"association"}),
        (f"/api/v1/epcis/bizLocations/{quote('https://id.gs1.org/414/4012345000115', safe='')}"
         "/events", {"object"}),
        ("/api/v1/epcis/dispositions/in_progress/events", {"aggregation"}),
    ):  # fmt: skip
        response = client.get(path, params=WINDOW, headers=auth)
        assert {label(e) for e in events_of(response)} == expected, path
    # An identifier in any field, as a class too.
    by_class = client.get(f"/api/v1/epcis/epcs/{quote(LGTIN, safe='')}/events", headers=auth)
    assert {label(e) for e in events_of(by_class)} >= {"object", "transaction"}
    assert client.get("/api/v1/epcis/bizSteps/packing", headers=auth).json() == ["events"]
    one = client.get(f"{EVENTS}/{quote(OBJECT_ID, safe='')}", headers=auth)
    assert one.status_code == 200 and one.json()["eventID"] == OBJECT_ID
    assert client.get(f"{EVENTS}/urn%3Auuid%3Anone", headers=auth).status_code == 404
    unknown = client.get("/api/v1/epcis/bizSteps", params={"colour": "red"}, headers=auth)
    assert unknown.status_code == 400


def test_reads_stay_scoped_by_role(client: TestClient, world: World, partner: None) -> None:
    assert len(events_of(get(client, world, WINDOW, role="admin"))) == 6
    assert events_of(get(client, world, WINDOW, role="farmer")) == []
    assert client.get("/api/v1/epcis/bizSteps", headers=world.auth("farmer")).json() == []
    assert get(client, world, WINDOW, role="device").status_code == 403
    assert get(client, world, WINDOW, role="anonymous").status_code == 401
    path = f"/api/v1/epcis/epcs/{quote(SSCC, safe='')}/events"
    assert events_of(client.get(path, headers=world.auth("farmer"))) == []


# --- named queries ------------------------------------------------------------------------------

QUERIES = "/api/v1/epcis/queries"


def test_named_queries_are_created_listed_read_and_deleted(
    client: TestClient, world: World, partner: None
) -> None:
    auth = world.auth("manager")
    body = {"name": "shipments", "query": {"EQ_bizStep": ["shipping"], **WINDOW}}
    created = client.post(QUERIES, json=body, headers=auth)
    assert created.status_code == 201, created.text
    assert created.headers["Location"] == f"{QUERIES}/shipments"
    assert created.json()["query"] == body["query"]
    assert client.post(QUERIES, json=body, headers=auth).status_code == 409
    assert [q["name"] for q in client.get(QUERIES, headers=auth).json()] == ["shipments"]
    assert client.get(f"{QUERIES}/shipments", headers=auth).json()["name"] == "shipments"
    answer = client.get(f"{QUERIES}/shipments/events", headers=auth)
    assert {label(e) for e in events_of(answer)} == {"transaction", "declaration"}
    assert answer.json()["epcisBody"]["queryResults"]["queryName"] == "shipments"
    paged = client.get(f"{QUERIES}/shipments/events", params={"perPage": 1}, headers=auth)
    assert len(events_of(paged)) == 1 and "Link" in paged.headers
    extra = client.get(f"{QUERIES}/shipments/events", params={"eventType": "X"}, headers=auth)
    assert extra.status_code == 400
    # Another household's token does not see the cooperative's query.
    assert client.get(f"{QUERIES}/shipments", headers=world.auth("farmer")).status_code == 404
    assert client.get(QUERIES, headers=world.auth("farmer")).json() == []
    assert client.get(QUERIES, headers=world.auth("admin")).json()[0]["name"] == "shipments"
    assert client.delete(f"{QUERIES}/shipments", headers=auth).status_code == 204
    assert client.get(f"{QUERIES}/shipments", headers=auth).status_code == 404
    assert client.get(f"{QUERIES}/shipments/events", headers=auth).status_code == 404


def test_a_named_query_is_checked_like_a_get(client: TestClient, world: World) -> None:
    auth = world.auth("manager")
    bad = client.post(QUERIES, json={"name": "q", "query": {"EQ_bizstep": "x"}}, headers=auth)
    assert bad.status_code == 400 and bad.json()["parameter"] == "EQ_bizstep"
    bad_name = client.post(QUERIES, json={"name": "a/b", "query": {}}, headers=auth)
    assert bad_name.status_code == 422
    paging = client.post(QUERIES, json={"name": "p", "query": {"perPage": 5}}, headers=auth)
    assert paging.status_code == 422
    assert client.post(QUERIES, json={"name": "d", "query": {}},
                       headers=world.auth("device")).status_code == 403  # fmt: skip
    many = [client.post(QUERIES, json={"name": f"q{i}", "query": {}}, headers=auth)
            for i in range(3)]  # fmt: skip
    assert all(r.status_code == 201 for r in many)
    first = client.get(QUERIES, params={"perPage": 2}, headers=auth)
    assert [q["name"] for q in first.json()] == ["q0", "q1"]
    second = client.get(first.headers["Link"][1:].split(">")[0], headers=auth)
    assert [q["name"] for q in second.json()] == ["q2"]


def test_the_top_level_queries_never_walk_a_whole_table(
    backend: str, client: TestClient, world: World, partner: None, connection: Connection
) -> None:
    """SQLite plans without statistics: the plan here is the one a county-sized log gets
    (PostgreSQL's plans at 1,000,000 events are checked by scripts/bench_trace.py)."""
    if backend != "sqlite":
        pytest.skip("PostgreSQL plans by its statistics; this checks SQLite's fixed plans")
    for role in ("admin", "manager", "farmer"):
        with statements(connection) as seen:
            for path in (
                f"/api/v1/epcis/epcs/{quote(SSCC, safe='')}/events",
                f"/api/v1/epcis/epcs/{quote(LGTIN, safe='')}/events",
                f"{EVENTS}?MATCH_epc={quote('urn:epc:id:sgtin:4012345.011111.1001')}",
                f"{EVENTS}?EQ_eventID={quote(OBJECT_ID)}",
            ):
                assert client.get(path, headers=world.auth(role)).status_code == 200
        assert not full_scans(connection, seen), (role, full_scans(connection, seen))
        # Rows are found from the identifier's index, then looked up by id: never by walking
        # the reader's cooperative (all of its events) and checking each against the list.
        for sql, params in seen:
            if "trace_event_epc.epc IN" not in sql:
                continue
            plan = [
                str(row[-1])
                for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params)
            ]
            event_access = [step for step in plan if step.startswith("SEARCH trace_event ")]
            assert event_access and all("rowid=?" in step for step in event_access), (role, plan)
