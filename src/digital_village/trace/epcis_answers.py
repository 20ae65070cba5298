"""EPCIS 2.0 XML answers: query results and documents of events, written from their JSON-LD.

The reverse of :mod:`digital_village.trace.epcis_xml`'s reading: each event dict becomes its
EPCIS 2.0 XML element with the standard fields in the binding's order, standard vocabulary as
the URNs the XML binding uses, and extension keys as elements in the namespaces their JSON-LD
context gives (declared on the document as they are used).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from lxml import etree

from digital_village.trace import vocab
from digital_village.trace.epcis_xml import (
    CBV_WEB,
    EPC_LISTS,
    EPCIS_2,
    GS1_VOC,
    GS1_WORDS,
    QUANTITY_LISTS,
    QUERY_2,
    URNS,
    XSI,
)

# EPCIS 2.0 XML order of an event's fields (the base fields, then the event type's own).
_ORDER: Final = (
    "eventTime", "recordTime", "eventTimeZoneOffset", "eventID", "certificationInfo",
    "errorDeclaration", "bizTransactionList@TransactionEvent", "parentID", "epcList",
    "childEPCs", "childQuantityList@AssociationEvent", "inputEPCList", "inputQuantityList",
    "outputEPCList", "outputQuantityList", "transformationID", "action", "bizStep",
    "disposition", "readPoint", "bizLocation", "bizTransactionList", "quantityList",
    "childQuantityList", "sourceList", "destinationList", "sensorElementList",
    "persistentDisposition", "ilmd",
)  # fmt: skip
_STANDARD_KEYS: Final = frozenset(k.split("@")[0] for k in _ORDER) | {"type", "@context"}


@dataclass
class _Writer:
    """Writes EPCIS 2.0 XML elements for event dicts, declaring namespaces as it goes."""

    namespaces: dict[str, str]  # prefix -> namespace, from the events' JSON-LD contexts
    used: dict[str, str] = field(default_factory=dict)

    def qname(self, key: str) -> str:
        prefix, colon, local = key.partition(":")
        if colon and prefix in self.namespaces:
            self.used[prefix] = self.namespaces[prefix]
            return f"{{{self.namespaces[prefix]}}}{local}"
        if colon and "/" in key:  # a full URI used as a key
            cut = max(key.rfind("/"), key.rfind("#")) + 1
            return f"{{{key[:cut]}}}{key[cut:]}"
        return key

    def extension(self, parent: etree._Element, key: str, value: Any) -> None:
        for item in value if isinstance(value, list) else [value]:
            element = etree.SubElement(parent, self.qname(key))
            if item is None:
                element.set(f"{{{XSI}}}nil", "true")
            elif isinstance(item, dict):
                for name, inner in item.items():
                    if name == "#text":
                        element.text = _xml_text(inner)
                    elif not isinstance(inner, dict | list) and name.count(":") == 0:
                        element.set(name, _xml_text(inner))
                    else:
                        self.extension(element, name, inner)
            else:
                element.text = _xml_text(item)
                if isinstance(item, bool):
                    element.set(f"{{{XSI}}}type", "xsd:boolean")
                elif isinstance(item, int):
                    element.set(f"{{{XSI}}}type", "xsd:integer")
                elif isinstance(item, float):
                    element.set(f"{{{XSI}}}type", "xsd:double")

    def extensions(
        self, parent: etree._Element, data: Mapping[str, Any], skip: Iterable[str]
    ) -> None:
        for key, value in data.items():
            if key not in skip:
                self.extension(parent, key, value)

    def event(self, parent: etree._Element, event: Mapping[str, Any]) -> None:
        kind = event["type"]
        element = etree.SubElement(parent, kind)
        done: set[str] = set()
        for entry in _ORDER:
            key, _, only = entry.partition("@")
            if key in done or key not in event or (only and only != kind):
                continue
            done.add(key)
            self.field(element, key, event[key])
        self.extensions(element, event, _STANDARD_KEYS)

    def field(self, element: etree._Element, key: str, value: Any) -> None:
        if key == "certificationInfo":
            for info in value if isinstance(value, list) else [value]:
                etree.SubElement(element, key).text = info
            return
        sub = etree.SubElement(element, key)
        if key in EPC_LISTS:
            for epc in value:
                etree.SubElement(sub, "epc").text = epc
        elif key in QUANTITY_LISTS:
            for quantity in value:
                item = etree.SubElement(sub, "quantityElement")
                for name in ("epcClass", "quantity", "uom"):
                    if name in quantity:
                        etree.SubElement(item, name).text = _xml_text(quantity[name])
        elif key in ("bizStep", "disposition"):
            sub.text = _urn(key, value)
        elif key == "persistentDisposition":
            for name in ("set", "unset"):
                for word in value.get(name, []):
                    etree.SubElement(sub, name).text = _urn("disposition", word)
        elif key in ("readPoint", "bizLocation"):
            etree.SubElement(sub, "id").text = value["id"]
            self.extensions(sub, value, {"id"})
        elif key in ("bizTransactionList", "sourceList", "destinationList"):
            role = "bizTransaction" if key == "bizTransactionList" else key.removesuffix("List")
            kind = "bizTransactionType" if role == "bizTransaction" else "sourceDestType"
            for entry in value:
                item = etree.SubElement(sub, role)
                item.text = entry[role]
                if "type" in entry:
                    item.set("type", _urn(kind, entry["type"]))
        elif key == "sensorElementList":
            for sensor in value:
                self.sensor_element(etree.SubElement(sub, "sensorElement"), sensor)
        elif key == "ilmd":
            self.extensions(sub, value, ())
        elif key == "errorDeclaration":
            etree.SubElement(sub, "declarationTime").text = value["declarationTime"]
            if "reason" in value:
                etree.SubElement(sub, "reason").text = _urn("reason", value["reason"])
            if "correctiveEventIDs" in value:
                ids = etree.SubElement(sub, "correctiveEventIDs")
                for event_id in value["correctiveEventIDs"]:
                    etree.SubElement(ids, "correctiveEventID").text = event_id
            self.extensions(sub, value, {"declarationTime", "reason", "correctiveEventIDs"})
        else:
            sub.text = _xml_text(value)

    def sensor_element(self, element: etree._Element, sensor: Mapping[str, Any]) -> None:
        if "sensorMetadata" in sensor:
            self.attributes(etree.SubElement(element, "sensorMetadata"), sensor["sensorMetadata"])
        for report in sensor.get("sensorReport", []):
            self.attributes(etree.SubElement(element, "sensorReport"), report)
        self.extensions(element, sensor, {"sensorMetadata", "sensorReport"})

    def attributes(self, element: etree._Element, values: Mapping[str, Any]) -> None:
        # Sensor metadata and reports are attribute-only elements in EPCIS XML: a structured
        # extension value there goes out as its JSON text (XML has no place for its structure).
        for key, value in values.items():
            if isinstance(value, dict | list) or value is None:
                element.set(self.qname(key), orjson.dumps(value).decode())
                continue
            text = _xml_text(value)
            if key in GS1_WORDS and value in GS1_WORDS[key]:
                text = f"{GS1_VOC}{value}"
            elif key == "component" and value in vocab.CBV_COMPONENTS:
                text = f"{CBV_WEB['component']}{value}"
            element.set(self.qname(key), text)


def _xml_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _urn(kind: str, word: str) -> str:
    urn, words = URNS[kind]
    return f"{urn}{word}" if word in words else word


def _namespaces(events: Iterable[Mapping[str, Any]], context: object) -> dict[str, str]:
    found: dict[str, str] = {}
    contexts = [context, *(event.get("@context") for event in events)]
    for entry in contexts:
        for item in entry if isinstance(entry, list) else [entry]:
            if isinstance(item, Mapping):
                found.update({k: v for k, v in item.items() if isinstance(v, str)})
    found.setdefault("cbvmda", "urn:epcglobal:cbv:mda")
    return found


def query_document(
    events: list[dict[str, Any]], *, creation_date: str, context: object, query_name: str
) -> bytes:
    """An EPCIS 2.0 XML EPCISQueryDocument holding the events (JSON dicts of the 2.0 model)."""
    writer = _Writer(namespaces=_namespaces(events, context))
    body = etree.Element("EPCISBody")
    results = etree.SubElement(body, f"{{{QUERY_2}}}QueryResults")
    etree.SubElement(results, "queryName").text = query_name
    event_list = etree.SubElement(etree.SubElement(results, "resultsBody"), "EventList")
    for event in events:
        writer.event(event_list, event)
    nsmap = {"epcisq": QUERY_2, "epcis": EPCIS_2, "xsi": XSI, "gs1": GS1_VOC, **writer.used}
    root = etree.Element(
        f"{{{QUERY_2}}}EPCISQueryDocument",
        nsmap={k: v for k, v in nsmap.items() if k},
        attrib={"schemaVersion": "2.0", "creationDate": creation_date},
    )
    root.append(body)
    # Namespaces used only below (full-URI keys) are declared where they appear.
    etree.cleanup_namespaces(root, top_nsmap={k: v for k, v in nsmap.items() if k})
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def event_document(events: list[dict[str, Any]], *, creation_date: str, context: object) -> bytes:
    """An EPCIS 2.0 XML EPCISDocument holding the events, as a capture would send them."""
    writer = _Writer(namespaces=_namespaces(events, context))
    body = etree.Element("EPCISBody")
    event_list = etree.SubElement(body, "EventList")
    for event in events:
        writer.event(event_list, event)
    nsmap = {"epcis": EPCIS_2, "xsi": XSI, "gs1": GS1_VOC, **writer.used}
    root = etree.Element(
        f"{{{EPCIS_2}}}EPCISDocument",
        nsmap=nsmap,
        attrib={"schemaVersion": "2.0", "creationDate": creation_date},
    )
    root.append(body)
    etree.cleanup_namespaces(root, top_nsmap=nsmap)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
