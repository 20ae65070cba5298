"""EPCIS XML: 2.0 and 1.2 capture, XML query answers, and bad XML named by line and element."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from lxml import etree

from digital_village.trace import epcis_answers, epcis_xml, event_hash
from tests.conftest import World
from tests.trace import partner_documents
from tests.trace.conftest import Chain
from tests.trace.test_epcis import VECTORS

XML = {"Content-Type": "application/xml"}


def _xml_ready_document() -> dict[str, Any]:
    """The partner document without what EPCIS XML cannot carry as such: a structured
    extension inside a sensor report (XML allows only attributes there), and an extension
    keyed by a full URI (its hash differs between JSON and XML in the reference algorithm)."""
    document = partner_documents.document()
    first = document["epcisBody"]["eventList"][0]
    del first["sensorElementList"][0]["sensorReport"][0]["example:probe"]
    del first[f"{partner_documents.PARTNER_NS}fullUriKey"]
    return document


def _as_xml(document: dict[str, Any]) -> bytes:
    return epcis_answers.event_document(
        document["epcisBody"]["eventList"],
        creation_date=document["creationDate"],
        context=document["@context"],
    )


def _post_xml(client: TestClient, world: World, body: bytes) -> Any:
    return client.post(
        "/api/v1/epcis/capture", content=body, headers={**world.auth("manager"), **XML}
    )


def test_the_xml_the_project_writes_validates_against_its_schema() -> None:
    root = etree.fromstring(_as_xml(_xml_ready_document()))
    schema = epcis_xml._schema(epcis_xml.EPCIS_2)
    assert schema.validate(root), schema.error_log


def test_epcis_2_xml_capture_gives_the_same_events_as_json(
    client: TestClient, world: World, chain: Chain
) -> None:
    document = _xml_ready_document()
    response = _post_xml(client, world, _as_xml(document))
    assert response.status_code == 202, response.text
    captured = [e["eventID"] for e in response.json()["events"]]
    events = document["epcisBody"]["eventList"]
    assert captured[0] == events[0]["eventID"]  # kept as sent
    # Events without an eventID get the hash the JSON form of the same events has.
    assert captured[1:] == [
        event_hash.event_hash_id(e, context=document["@context"]) for e in events[1:]
    ]


def test_query_answers_in_xml_when_asked(client: TestClient, world: World, chain: Chain) -> None:
    document = _xml_ready_document()
    assert _post_xml(client, world, _as_xml(document)).status_code == 202
    as_json = client.get("/api/v1/epcis/events", headers=world.auth("admin")).json()
    answer = client.get(
        "/api/v1/epcis/events",
        headers={**world.auth("admin"), "Accept": "application/xml, application/json;q=0.5"},
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/xml")
    root = etree.fromstring(answer.content)
    assert etree.QName(root) == etree.QName(epcis_xml.QUERY_2, "EPCISQueryDocument")
    # The answer's events, read back through the capture reader, are the JSON answer's events.
    event_list = root.find(".//resultsBody/EventList")
    assert event_list is not None
    wrapper = etree.Element(
        f"{{{epcis_xml.EPCIS_2}}}EPCISDocument",
        nsmap=root.nsmap,
        attrib={"schemaVersion": "2.0", "creationDate": root.get("creationDate", "")},
    )
    etree.SubElement(wrapper, "EPCISBody").append(copy.deepcopy(event_list))
    read = epcis_xml.read_document(etree.tostring(wrapper))
    from_xml = read.document["epcisBody"]["eventList"]
    from_json = as_json["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    assert [e["eventID"] for e in from_xml] == [e["eventID"] for e in from_json]
    for xml_event, json_event in zip(from_xml, from_json, strict=True):
        assert event_hash.prehash_string(
            xml_event, context=read.document["@context"]
        ) == event_hash.prehash_string(json_event, context=json_event.get("@context"))
    # JSON stays the default.
    plain = client.get("/api/v1/epcis/events", headers=world.auth("admin"))
    assert plain.headers["content-type"].startswith("application/json")


EPCIS_12 = b"""<?xml version="1.0" encoding="UTF-8"?>
<epcis:EPCISDocument xmlns:epcis="urn:epcglobal:epcis:xsd:1" xmlns:acme="https://acme.example.com/epcis/"
    xmlns:cbvmda="urn:epcglobal:cbv:mda" schemaVersion="1.2" creationDate="2025-06-02T12:00:00Z">
  <EPCISBody>
    <EventList>
      <ObjectEvent>
        <eventTime>2025-06-02T10:00:00.000+02:00</eventTime>
        <eventTimeZoneOffset>+02:00</eventTimeZoneOffset>
        <baseExtension>
          <eventID>urn:uuid:7f0f1c4e-2b4d-4a43-9d7e-3c2b1a0f9e8d</eventID>
        </baseExtension>
        <epcList/>
        <action>ADD</action>
        <bizStep>urn:epcglobal:cbv:bizstep:commissioning</bizStep>
        <disposition>urn:epcglobal:cbv:disp:active</disposition>
        <readPoint><id>urn:epc:id:sgln:4012345.00011.0</id></readPoint>
        <extension>
          <quantityList>
            <quantityElement>
              <epcClass>urn:epc:class:lgtin:4012345.011111.L-12</epcClass>
              <quantity>12.5</quantity>
              <uom>KGM</uom>
            </quantityElement>
          </quantityList>
          <sourceList>
            <source type="urn:epcglobal:cbv:sdt:owning_party">urn:epc:id:pgln:4012345.00000</source>
          </sourceList>
          <ilmd>
            <cbvmda:lotNumber>L-12</cbvmda:lotNumber>
          </ilmd>
        </extension>
        <acme:shift>early</acme:shift>
      </ObjectEvent>
      <extension>
        <TransformationEvent>
          <eventTime>2025-06-02T13:00:00+02:00</eventTime>
          <eventTimeZoneOffset>+02:00</eventTimeZoneOffset>
          <inputQuantityList>
            <quantityElement>
              <epcClass>urn:epc:class:lgtin:4012345.011111.L-12</epcClass>
              <quantity>10</quantity>
              <uom>KGM</uom>
            </quantityElement>
          </inputQuantityList>
          <outputQuantityList>
            <quantityElement>
              <epcClass>urn:epc:class:lgtin:4012345.044444.OUT-12</epcClass>
              <quantity>4</quantity>
              <uom>LTR</uom>
            </quantityElement>
          </outputQuantityList>
          <bizStep>urn:epcglobal:cbv:bizstep:commissioning</bizStep>
          <readPoint><id>urn:epc:id:sgln:4012345.00012.0</id></readPoint>
          <bizTransactionList>
            <bizTransaction type="urn:epcglobal:cbv:btt:prodorder"
              >urn:epcglobal:cbv:bt:4012345000009:PO-12</bizTransaction>
          </bizTransactionList>
        </TransformationEvent>
      </extension>
    </EventList>
  </EPCISBody>
</epcis:EPCISDocument>
"""


def test_epcis_1_2_xml_is_converted_to_the_2_0_model(
    client: TestClient, world: World, chain: Chain
) -> None:
    read = epcis_xml.read_document(EPCIS_12)
    assert read.version == "1.2"
    first, second = read.document["epcisBody"]["eventList"]
    assert first["eventID"] == "urn:uuid:7f0f1c4e-2b4d-4a43-9d7e-3c2b1a0f9e8d"
    assert (first["bizStep"], first["disposition"]) == ("commissioning", "active")
    assert "epcList" not in first  # an empty list says nothing
    assert first["quantityList"][0] == {
        "epcClass": "urn:epc:class:lgtin:4012345.011111.L-12",
        "quantity": 12.5,
        "uom": "KGM",
    }
    assert first["sourceList"] == [
        {"type": "owning_party", "source": "urn:epc:id:pgln:4012345.00000"}
    ]
    assert first["ilmd"] == {"cbvmda:lotNumber": "L-12"}
    assert first["acme:shift"] == "early"
    assert second["type"] == "TransformationEvent"
    assert second["bizTransactionList"][0]["type"] == "prodorder"

    response = _post_xml(client, world, EPCIS_12)
    assert response.status_code == 202, response.text
    ids = [e["eventID"] for e in response.json()["events"]]
    assert ids[0] == first["eventID"]
    assert ids[1] == event_hash.event_hash_id(second, context=read.document["@context"])
    found = client.get(
        "/api/v1/epcis/events", params={"EQ_eventID": ids[0]}, headers=world.auth("admin")
    ).json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    assert found[0]["acme:shift"] == "early"
    assert found[0]["@context"][1]["acme"] == "https://acme.example.com/epcis/"


def test_xml_that_is_not_well_formed_is_a_400_naming_the_line(
    client: TestClient, world: World, chain: Chain
) -> None:
    body = EPCIS_12.replace(b"</action>", b"</acton>")
    response = _post_xml(client, world, body)
    assert response.status_code == 400
    line = EPCIS_12[: EPCIS_12.index(b"</action>")].count(b"\n") + 1
    assert f"line {line}" in response.json()["detail"]
    job = client.get(response.headers["Location"], headers=world.auth("manager")).json()
    assert job["success"] is False


def test_xml_the_schema_refuses_is_a_422_naming_line_and_element(
    client: TestClient, world: World, chain: Chain
) -> None:
    body = EPCIS_12.replace(b"<action>ADD</action>", b"<action>MOVE</action>")
    response = _post_xml(client, world, body)
    assert response.status_code == 422, response.text
    line = EPCIS_12[: EPCIS_12.index(b"<action>ADD")].count(b"\n") + 1
    error = response.json()["errors"][0]
    assert error["pointer"].startswith(f"line {line}, action")
    assert "MOVE" in error["message"]


def test_xml_the_model_refuses_names_line_and_element(
    client: TestClient, world: World, chain: Chain
) -> None:
    body = EPCIS_12.replace(b"urn:epcglobal:cbv:disp:active", b"urn:epcglobal:cbv:disp:misplaced")
    response = _post_xml(client, world, body)
    assert response.status_code == 422, response.text
    line = EPCIS_12[: EPCIS_12.index(b"<disposition>")].count(b"\n") + 1
    error = response.json()["errors"][0]
    assert error["pointer"] == f"line {line}, <disposition> (/epcisBody/eventList/0/disposition)"
    # Nothing of the document was stored.
    assert (
        client.get("/api/v1/epcis/events", headers=world.auth("admin")).json()["epcisBody"][
            "queryResults"
        ]["resultsBody"]["eventList"]
        == []
    )


@pytest.mark.parametrize(
    "body",
    [
        b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<epcis:EPCISDocument xmlns:epcis="urn:epcglobal:epcis:xsd:2" schemaVersion="2.0"'
        b' creationDate="2025-06-02T12:00:00Z"><EPCISBody><EventList><ObjectEvent>'
        b"<eventTime>&x;</eventTime></ObjectEvent></EventList></EPCISBody>"
        b"</epcis:EPCISDocument>",
        b'<other xmlns="urn:example:not-epcis"/>',
    ],
    ids=["external-entity", "not-epcis"],
)
def test_hostile_or_foreign_xml_is_refused_without_reading_anything(
    client: TestClient, world: World, chain: Chain, body: bytes
) -> None:
    response = _post_xml(client, world, body)
    assert response.status_code in {400, 422}
    assert "root:" not in response.text


def test_other_media_types_are_refused(client: TestClient, world: World, chain: Chain) -> None:
    response = client.post(
        "/api/v1/epcis/capture",
        content=b"a,b",
        headers={**world.auth("manager"), "Content-Type": "text/csv"},
    )
    assert response.status_code == 415


REFERENCE_XML = sorted((Path(__file__).parent / "reference_xml").glob("*.xml"))


@pytest.mark.parametrize("path", REFERENCE_XML, ids=lambda p: p.stem)
def test_xml_events_hash_as_the_reference_publishes(path: Path) -> None:
    # Expected: the reference implementation's published hashes and pre-hash strings for the
    # same example (see reference_xml/README.md), which its JSON form gives as well.
    case = next(c for c in VECTORS["cases"] if f"/{path.stem}.json" in c["source"])
    read = epcis_xml.read_document(path.read_bytes())
    events = read.document["epcisBody"]["eventList"]
    context = read.document["@context"]
    assert [event_hash.prehash_string(e, context=context) for e in events] == case["prehashes"]
    assert [event_hash.event_hash_id(e, context=context) for e in events] == case["hashes"]
    assert all(":" not in key or not key.startswith("https:") for e in events for key in e)


def test_cbv_curies_in_xml_become_bare_words() -> None:
    read = epcis_xml.read_document(
        (
            Path(__file__).parent / "reference_xml/CertificationInfoAndSensorReportWithCRS.xml"
        ).read_bytes()
    )
    event = read.document["epcisBody"]["eventList"][0]
    assert (event["bizStep"], event["disposition"]) == ("receiving", "in_progress")
    report = event["sensorElementList"][0]["sensorReport"][0]
    assert (report["type"], report["exception"]) == ("Dimensionless", "ALARM_CONDITION")
    assert event["certificationInfo"] == (
        "https://accreditation-council.example.org/certificate/ABC12345"
    )
