"""Trading partners' EPCIS 2.0 documents, written for these tests.

GS1's own example documents (gs1/EPCIS, JSON-simple-context) come under GS1's IP policy, which
grants no right to redistribute them, so they are not copied here. These documents exercise
the same features: a blank-node document id, a context array adding partner namespaces,
prefixed and full-URI values, every event type, every field of GS1's EPCIS 2.0 JSON Schema
(sensor elements with every report attribute, persistent dispositions, certification info,
ILMD, source and destination lists, business transactions) and extensions at every level that
has an extension point. Identifiers are the partners' own (GTINs, SSCCs, GLNs of prefix
4012345 and 0614141), which the project stores and answers as given.
"""

from __future__ import annotations

import copy
from typing import Any

EXAMPLE_NS = "http://ns.example.com/epcis/"
PARTNER_NS = "https://partner.example.org/voc/"

CONTEXT: list[Any] = [
    "https://ref.gs1.org/standards/epcis/epcis-context.jsonld",
    {"example": EXAMPLE_NS},
    {"partner": PARTNER_NS},
]

_SENSOR = {
    "sensorMetadata": {
        "time": "2025-06-02T10:00:00.000+02:00",
        "startTime": "2025-06-02T09:00:00+02:00",
        "endTime": "2025-06-02T10:00:00+02:00",
        "deviceID": "urn:epc:id:giai:4000001.111",
        "deviceMetadata": "https://id.gs1.org/8004/4000001111",
        "rawData": "https://example.org/8004/401234599999",
        "dataProcessingMethod": "https://example.com/gdti/4012345000054987",
        "bizRules": "https://example.com/gdti/4012345000054987",
        "example:calibration": "2025-01-01",
    },
    "sensorReport": [
        {
            "type": "Temperature",
            "exception": "ALARM_CONDITION",
            "deviceID": "urn:epc:id:giai:4000001.111",
            "deviceMetadata": "https://id.gs1.org/8004/4000001111",
            "rawData": "https://example.org/8004/401234599999",
            "dataProcessingMethod": "https://example.com/gdti/4012345000054987",
            "bizRules": "https://example.com/gdti/4012345000054987",
            "time": "2025-06-02T09:30:00+02:00",
            "microorganism": "https://www.ncbi.nlm.nih.gov/taxonomy/1126011",
            "chemicalSubstance": "https://identifiers.org/inchikey:CZMRCDWAGMRECN-UGDNZRGBSA-N",
            "coordinateReferenceSystem": "http://www.opengis.net/def/crs/EPSG/0/4326",
            "value": 26.5,
            "component": "x",
            "stringValue": "SomeString",
            "booleanValue": True,
            "hexBinaryValue": "f0f0f0",
            "uriValue": "https://id.gs1.org/8004/4000001111",
            "minValue": 26.0,
            "maxValue": 26.9,
            "meanValue": 26.4,
            "sDev": 0.1,
            "percRank": 50,
            "percValue": 26.4,
            "uom": "CEL",
            "example:probe": {"example:depthCm": 10, "example:model": "TP-7"},
        },
        {"type": "gs1:RelativeHumidity", "value": 61, "uom": "P1"},
        {"type": f"{PARTNER_NS}LeafWetness", "booleanValue": False},
    ],
    "example:sensorNote": "mounted on the pallet",
}

DOCUMENT: dict[str, Any] = {
    "@context": CONTEXT,
    "id": "_:document1",
    "type": "EPCISDocument",
    "schemaVersion": "2.0",
    "creationDate": "2025-06-02T12:00:00.0Z",
    "instanceIdentifier": "partner-batch-0001",
    "sender": "urn:epc:id:sgln:4012345.00001.0",
    "receiver": "urn:epc:id:sgln:0614141.00001.0",
    "epcisHeader": {"example:transport": {"example:truck": "川F·12345"}},
    "epcisBody": {
        "eventList": [
            {
                "type": "ObjectEvent",
                "eventTime": "2025-06-02T10:00:00.000+02:00",
                "eventTimeZoneOffset": "+02:00",
                "eventID": "urn:uuid:5a1c9f2e-4b7d-4c1e-9a55-1b2c3d4e5f60",
                "certificationInfo": [
                    "https://accreditation-council.example.org/certificate/ABC12345",
                    "https://accreditation-council.example.org/certificate/DEF67890",
                ],
                "epcList": [
                    "urn:epc:id:sgtin:4012345.011111.1001",
                    "https://id.gs1.org/01/04012345111118/21/1002",
                ],
                "quantityList": [
                    {
                        "epcClass": "urn:epc:class:lgtin:4012345.011111.L-77",
                        "quantity": 12.5,
                        "uom": "KGM",
                    },
                    {"epcClass": "urn:epc:idpat:sgtin:4012345.022222.*", "quantity": 3},
                ],
                "action": "ADD",
                "bizStep": "commissioning",
                "disposition": "active",
                "persistentDisposition": {"set": ["completeness_verified"], "unset": ["unknown"]},
                "readPoint": {"id": "urn:epc:id:sgln:4012345.00011.0", "example:dock": "D4"},
                "bizLocation": {
                    "id": "https://id.gs1.org/414/4012345000115",
                    "partner:zone": {"partner:aisle": 7},
                },
                "bizTransactionList": [
                    {"type": "po", "bizTransaction": "urn:epcglobal:cbv:bt:4012345000009:PO-1"},
                    {"bizTransaction": "https://partner.example.org/contract/77"},
                ],
                "sourceList": [
                    {"type": "owning_party", "source": "urn:epc:id:pgln:4012345.00000"},
                    {"type": "location", "source": "urn:epc:id:sgln:4012345.00011.0"},
                ],
                "destinationList": [
                    {"type": "possessing_party", "destination": "urn:epc:id:pgln:0614141.00000"},
                ],
                "sensorElementList": [_SENSOR],
                "ilmd": {
                    "cbvmda:lotNumber": "L-77",
                    "cbvmda:bestBeforeDate": "2026-06-01",
                    "example:grade": {"example:class": "A", "example:score": 9.5},
                },
                "example:operator": "Employee 123",
                "example:flags": ["fresh", 1, True, None, {"example:nested": "deep"}],
                f"{PARTNER_NS}fullUriKey": "value under a full URI key",
            },
            {
                "type": "AggregationEvent",
                "eventTime": "2025-06-02T11:00:00+02:00",
                "eventTimeZoneOffset": "+02:00",
                "parentID": "urn:epc:id:sscc:4012345.0000000111",
                "childEPCs": ["urn:epc:id:sgtin:4012345.011111.1001"],
                "childQuantityList": [
                    {
                        "epcClass": "https://id.gs1.org/01/04012345111118/10/L-77",
                        "quantity": 10,
                        "uom": "KGM",
                    },
                ],
                "action": "ADD",
                "bizStep": "packing",
                "disposition": "in_progress",
                "readPoint": {"id": "urn:epc:id:sgln:4012345.00011.0"},
                "example:packer": "line 2",
            },
            {
                "type": "TransactionEvent",
                "eventTime": "2025-06-02T11:30:00+02:00",
                "eventTimeZoneOffset": "+02:00",
                "bizTransactionList": [
                    {
                        "type": "desadv",
                        "bizTransaction": "urn:epcglobal:cbv:bt:4012345000009:ASN-9",
                    },
                    {"type": "inv", "bizTransaction": "urn:epcglobal:cbv:bt:4012345000009:INV-9"},
                ],
                "parentID": "urn:epc:id:sscc:4012345.0000000111",
                "epcList": ["urn:epc:id:sgtin:4012345.011111.1002"],
                "quantityList": [
                    {
                        "epcClass": "urn:epc:class:lgtin:4012345.011111.L-77",
                        "quantity": 2.5,
                        "uom": "KGM",
                    },
                ],
                "action": "ADD",
                "bizStep": "shipping",
                "disposition": "in_transit",
                "sourceList": [
                    {"type": "possessing_party", "source": "urn:epc:id:pgln:4012345.00000"}
                ],
                "destinationList": [
                    {"type": "location", "destination": "urn:epc:id:sgln:0614141.00777.0"},
                ],
            },
            {
                "type": "TransformationEvent",
                "eventTime": "2025-06-02T13:00:00+02:00",
                "eventTimeZoneOffset": "+02:00",
                "inputEPCList": ["urn:epc:id:sgtin:4012345.033333.1"],
                "inputQuantityList": [
                    {
                        "epcClass": "urn:epc:class:lgtin:4012345.033333.IN-1",
                        "quantity": 100,
                        "uom": "KGM",
                    },
                ],
                "outputEPCList": ["urn:epc:id:sgtin:4012345.044444.1"],
                "outputQuantityList": [
                    {
                        "epcClass": "urn:epc:class:lgtin:4012345.044444.OUT-1",
                        "quantity": 40,
                        "uom": "LTR",
                    },
                ],
                "transformationID": "urn:epc:id:gdti:4012345.55555.1234",
                "bizStep": "http://epcis.example.com/user/vocab/bizstep/blending",
                "disposition": "active",
                "persistentDisposition": {"set": ["available"]},
                "readPoint": {"id": "urn:epc:id:sgln:4012345.00012.0"},
                "ilmd": {"example:batch": "OUT-1"},
            },
            {
                "type": "AssociationEvent",
                "eventTime": "2025-06-02T14:00:00+02:00",
                "eventTimeZoneOffset": "+02:00",
                "parentID": "urn:epc:id:grai:4012345.55555.987",
                "childEPCs": ["urn:epc:id:giai:4000001.12345"],
                "childQuantityList": [
                    {"epcClass": "urn:epc:idpat:sgtin:4012345.055555.*", "quantity": 4},
                ],
                "action": "ADD",
                "bizStep": "assembling",
                "readPoint": {"id": "urn:epc:id:sgln:4012345.00013.0"},
                "sensorElementList": [
                    {
                        "sensorReport": [
                            {"type": "Length", "value": 1.2, "uom": "MTR", "component": "height"}
                        ]
                    },
                ],
            },
        ]
    },
}


def document() -> dict[str, Any]:
    """A fresh copy of the partner document (tests change theirs)."""
    return copy.deepcopy(DOCUMENT)


def declaration_of_unknown_event() -> dict[str, Any]:
    """A partner's correction of an event of theirs that was never sent to the project."""
    wrong = copy.deepcopy(DOCUMENT["epcisBody"]["eventList"][2])
    wrong["epcList"] = ["urn:epc:id:sgtin:4012345.011111.2002"]
    wrong["errorDeclaration"] = {
        "declarationTime": "2025-06-03T08:00:00+02:00",
        "reason": "incorrect_data",
        "correctiveEventIDs": ["urn:uuid:0b7e2f4a-6c1d-4e8f-a2b3-c4d5e6f70819"],
        "example:declaredBy": "Employee 456",
    }
    return {**{k: v for k, v in DOCUMENT.items() if k != "epcisBody"},
            "epcisBody": {"eventList": [wrong]}}  # fmt: skip
