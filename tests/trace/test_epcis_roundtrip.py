"""A trading partner's document goes in through capture and comes back through the query
interface with the same meaning: every field of GS1's EPCIS 2.0 JSON Schema, extensions at
every level, the partner's JSON-LD context and its eventIDs."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from jsonschema import Draft7Validator

from digital_village.trace import epcis, event_hash
from tests.conftest import World, need_gs1_schema
from tests.trace import partner_documents
from tests.trace.conftest import Chain
from tests.trace.test_epcis import FORMATS

# Per-event properties that the capture interface sets itself rather than keeps.
SERVER_SET = {"recordTime"}


@pytest.fixture(scope="module")
def official_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(need_gs1_schema().read_text("utf-8"))
    return schema


def _property_names(node: Any) -> set[str]:
    names: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                names |= set(value)
            names |= _property_names(value)
    elif isinstance(node, list):
        for item in node:
            names |= _property_names(item)
    return names


def _keys_used(node: Any) -> set[str]:
    keys: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            keys.add(key)
            keys |= _keys_used(value)
    elif isinstance(node, list):
        for item in node:
            keys |= _keys_used(item)
    return keys


EVENT_DEFINITIONS = (
    "common-event-properties", "Event", "ObjectEvent", "AggregationEvent", "TransactionEvent",
    "TransformationEvent", "AssociationEvent", "quantityElement", "persistentDisposition",
    "readPoint", "bizLocation", "bizTransaction", "source", "destination", "sensorMetadata",
    "sensorReport", "sensorElement", "errorDeclaration", "epcisDocument",
)  # fmt: skip


def test_the_partner_document_uses_every_field_of_the_schema(
    official_schema: dict[str, Any],
) -> None:
    definitions = official_schema["definitions"]
    fields = set().union(*(_property_names(definitions[name]) for name in EVENT_DEFINITIONS))
    # The schema names these as the enum of common properties rather than under "properties".
    fields |= set(definitions["common-event-properties"]["anyOf"][0]["enum"])
    used = _keys_used(partner_documents.document()) | _keys_used(
        partner_documents.declaration_of_unknown_event()
    )
    missing = fields - used - SERVER_SET - {"eventList", "queryResults"}
    assert missing == set()


def _capture(client: TestClient, world: World, document: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/api/v1/epcis/capture", json=document, headers=world.auth("manager"))
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


def _queried(client: TestClient, world: World) -> dict[str, Any]:
    response = client.get(
        "/api/v1/epcis/events", params={"perPage": 100}, headers=world.auth("admin")
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _meaning(event: dict[str, Any], context: Any) -> Any:
    """What an event says: its validated model (times as instants, numbers as numbers)."""
    own = {k: v for k, v in event.items() if k not in {"@context", "eventID", "recordTime"}}
    return epcis.parse_event(own), event_hash.prehash_string(own, context=context)


def test_a_partner_document_round_trips_through_capture_and_query(
    client: TestClient, world: World, chain: Chain, official_schema: dict[str, Any]
) -> None:
    sent = partner_documents.document()
    answer = _capture(client, world, sent)
    sent_events = sent["epcisBody"]["eventList"]
    assert answer["eventCount"] == len(sent_events)
    # A partner's eventID is kept as sent; events without one get their CBV 2.0 hash.
    assert answer["events"][0]["eventID"] == sent_events[0]["eventID"]
    for given, captured in zip(sent_events[1:], answer["events"][1:], strict=True):
        assert captured["eventID"] == event_hash.event_hash_id(given, context=sent["@context"])

    document = _queried(client, world)
    validator = Draft7Validator(official_schema, format_checker=FORMATS)
    assert [e.message for e in validator.iter_errors(document)] == []
    returned = {e["eventID"]: e for e in document["epcisBody"]["queryResults"]["resultsBody"][
        "eventList"
    ]}  # fmt: skip
    for given, captured in zip(sent_events, answer["events"], strict=True):
        back = returned[captured["eventID"]]
        # The partner's namespaces travel with the event, so its prefixes mean the same.
        assert back["@context"] == sent["@context"]
        assert _meaning(back, back["@context"]) == _meaning(given, sent["@context"])
        # Extension values come back byte for byte, nulls and nesting included.
        extensions = {k: v for k, v in given.items() if ":" in k and not k.startswith("@")}
        assert {k: back[k] for k in extensions} == extensions
        assert back["recordTime"].endswith("Z")


def test_extension_points_keep_their_extensions(
    client: TestClient, world: World, chain: Chain
) -> None:
    _capture(client, world, partner_documents.document())
    events = _queried(client, world)["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    first = next(e for e in events if e["type"] == "ObjectEvent")
    assert first["readPoint"]["example:dock"] == "D4"
    assert first["bizLocation"]["partner:zone"] == {"partner:aisle": 7}
    element = first["sensorElementList"][0]
    assert element["example:sensorNote"] == "mounted on the pallet"
    assert element["sensorMetadata"]["example:calibration"] == "2025-01-01"
    assert element["sensorReport"][0]["example:probe"] == {
        "example:depthCm": 10,
        "example:model": "TP-7",
    }
    assert first["ilmd"]["example:grade"] == {"example:class": "A", "example:score": 9.5}
    assert first["example:flags"] == ["fresh", 1, True, None, {"example:nested": "deep"}]


def test_a_blank_node_document_id_is_accepted(
    client: TestClient, world: World, chain: Chain
) -> None:
    document = partner_documents.document()
    assert document["id"] == "_:document1"
    _capture(client, world, document)
    bad = partner_documents.document()
    bad["id"] = "_: not a node"
    response = client.post("/api/v1/epcis/capture", json=bad, headers=world.auth("manager"))
    assert response.status_code == 422
    assert response.json()["errors"][0]["pointer"] == "/id"


@pytest.mark.parametrize(
    "context",
    [
        "https://ref.gs1.org/standards/epcis/epcis-context.jsonld",
        ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"],
        [
            "https://ref.gs1.org/standards/epcis/epcis-context.jsonld",
            {"example": partner_documents.EXAMPLE_NS, "partner": partner_documents.PARTNER_NS},
        ],
    ],
    ids=["string", "versioned", "one-object"],
)
def test_any_context_gs1_publishes_is_accepted(
    client: TestClient, world: World, chain: Chain, context: Any
) -> None:
    document = partner_documents.document()
    document["@context"] = context
    if not isinstance(context, list) or len(context) == 1:
        # Without the partner namespaces, write the extensions under full URIs.
        document = orjson.loads(
            orjson.dumps(document)
            .replace(b'"example:', f'"{partner_documents.EXAMPLE_NS}'.encode())
            .replace(b'"partner:', f'"{partner_documents.PARTNER_NS}'.encode())
        )
    answer = _capture(client, world, document)
    assert answer["eventCount"] == 5


def test_prefixed_and_full_uri_values_mean_the_same(
    client: TestClient, world: World, chain: Chain
) -> None:
    document = partner_documents.document()
    event = document["epcisBody"]["eventList"][2]
    prefixed = event_hash.event_hash_id(event, context=document["@context"])
    event["bizStep"] = "https://ref.gs1.org/cbv/BizStep-shipping"
    event["disposition"] = "cbv:Disp-in_transit"
    assert event_hash.event_hash_id(event, context=document["@context"]) == prefixed
    document["epcisBody"]["eventList"] = [event]
    answer = _capture(client, world, document)
    assert answer["events"][0]["eventID"] == prefixed


def test_a_partners_hash_event_id_from_another_revision_is_kept_and_flagged(
    client: TestClient, world: World, chain: Chain
) -> None:
    # GS1's examples carry eventIDs hashed by earlier revisions of the algorithm, which differ
    # from the CBV 2.0 hash of the same event: such a document is captured, not refused.
    document = partner_documents.document()
    event = document["epcisBody"]["eventList"][1]
    declared = (
        "ni:///sha-256;df7bb3c352fef055578554f09f5e2aa41782150ced7bd0b8af24dd3ccb30ba69?ver=CBV2.0"
    )
    event["eventID"] = declared
    ours = event_hash.event_hash_id(event, context=document["@context"])
    answer = _capture(client, world, document)
    assert (answer["events"][1]["eventID"], answer["events"][1]["computedEventID"]) == (
        declared,
        ours,
    )
    job = client.get(answer["location"], headers=world.auth("manager")).json()
    flagged = [(e["eventID"], e["computedEventID"]) for e in job["events"]]
    assert flagged[1] == (declared, ours)
    assert [c for _, c in flagged if c is not None] == [ours]
    found = _queried(client, world)["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    back = next(e for e in found if e["eventID"] == declared)
    assert back["dv:computedEventID"] == ours
    assert all("dv:computedEventID" not in e for e in found if e["eventID"] != declared)


def test_a_partners_declaration_of_an_event_never_sent_round_trips(
    client: TestClient, world: World, chain: Chain
) -> None:
    sent = partner_documents.declaration_of_unknown_event()
    answer = _capture(client, world, sent)
    given = sent["epcisBody"]["eventList"][0]
    assert answer["events"][0]["eventID"] == event_hash.event_hash_id(
        given, context=sent["@context"]
    )
    events = _queried(client, world)["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    (back,) = events
    assert _meaning(back, back["@context"]) == _meaning(given, sent["@context"])
    assert back["errorDeclaration"] == given["errorDeclaration"]


def test_an_extension_event_type_is_captured_and_answered(
    client: TestClient, world: World, chain: Chain, official_schema: dict[str, Any]
) -> None:
    # GS1's schema lets an event be of a type named by a URI (its Extended-Event): the fields
    # every event has, and any others as sent.
    kind = f"{partner_documents.PARTNER_NS}TemperatureLogEvent"
    event = {
        "type": kind,
        "eventTime": "2025-06-02T15:00:00+02:00",
        "eventTimeZoneOffset": "+02:00",
        "readPoint": {"id": "urn:epc:id:sgln:4012345.00011.0"},
        "logger": "urn:epc:id:giai:4000001.111",
        "partner:readings": [{"partner:celsius": 4.5}, {"partner:celsius": 5.0}],
    }
    document = partner_documents.document()
    document["epcisBody"]["eventList"] = [event]
    document["id"] = "https://partner.example.org/documents/77"  # a URI, for the strict check
    validator = Draft7Validator(official_schema, format_checker=FORMATS)
    assert [e.message for e in validator.iter_errors(document)] == []
    answer = _capture(client, world, document)
    assert answer["events"][0]["eventID"] == event_hash.event_hash_id(
        event, context=document["@context"]
    )
    found = client.get(
        "/api/v1/epcis/events", params={"eventType": kind}, headers=world.auth("admin")
    ).json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    assert [{k: v for k, v in e.items() if k in event} for e in found] == [event]
    not_a_type = {**event, "type": "TemperatureLogEvent"}
    document["epcisBody"]["eventList"] = [not_a_type]
    refused = client.post("/api/v1/epcis/capture", json=document, headers=world.auth("manager"))
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["pointer"] == "/epcisBody/eventList/0/type"
