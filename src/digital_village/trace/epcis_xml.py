"""EPCIS XML capture: EPCIS 2.0 and 1.2 XML documents read into the JSON-LD model.

Query answers in EPCIS 2.0 XML are written by :mod:`digital_village.trace.epcis_answers`.

An XML document is checked against the project's XML Schema (``xsd/epcis.xsd``, written from
the standard's XML binding), then turned into the EPCIS 2.0 JSON-LD model that JSON capture
uses, so both go through the same rules and the same event hash. EPCIS 1.2 documents (namespace
``urn:epcglobal:epcis:xsd:1``) are read the same way: their ``extension``/``baseExtension``
wrappers are unwrapped (a 1.2 TransformationEvent sits in ``EventList/extension``), and standard
vocabulary written as CBV URNs becomes the bare words of EPCIS 2.0 JSON.

Extension elements keep their namespace: an element ``{ns}local`` written with prefix ``p``
becomes the key ``p:local`` and the document's @context maps ``p`` to ``ns``; ``xsi:type``
(integer, decimal, double, boolean) gives a JSON number or boolean, ``xsi:nil`` a null, child
elements an object, repeated elements a list. Every problem names the XML line and element.

Nothing is fetched while parsing: no DTDs, no external entities, no network.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, Final

from lxml import etree

from digital_village.trace import vocab
from digital_village.trace.epcis import EPCISParseError, Problem

EPCIS_2: Final = "urn:epcglobal:epcis:xsd:2"
EPCIS_1: Final = "urn:epcglobal:epcis:xsd:1"
QUERY_2: Final = "urn:epcglobal:epcis-query:xsd:2"
XSI: Final = "http://www.w3.org/2001/XMLSchema-instance"
GS1_VOC: Final = "https://gs1.org/voc/"
XML_MEDIA_TYPES: Final = frozenset({"application/xml", "text/xml"})

EVENT_TYPES: Final = (
    "ObjectEvent",
    "AggregationEvent",
    "TransactionEvent",
    "TransformationEvent",
    "AssociationEvent",
)
EPC_LISTS: Final = ("epcList", "childEPCs", "inputEPCList", "outputEPCList")
QUANTITY_LISTS: Final = (
    "quantityList",
    "childQuantityList",
    "inputQuantityList",
    "outputQuantityList",
)
_PLAIN: Final = ("eventTime", "recordTime", "eventTimeZoneOffset", "eventID", "parentID",
                 "action", "transformationID")  # fmt: skip
_NUMBERS: Final = frozenset(
    {"value", "minValue", "maxValue", "meanValue", "sDev", "percRank", "percValue"}
)
_WRAPPERS: Final = frozenset({"extension", "baseExtension"})
# Prefixes never used for a JSON-LD key: ours, and URI schemes (a key "https:x" reads as a URI).
_RESERVED_PREFIXES: Final = frozenset({"epcis", "xsi", "http", "https", "urn", "ni", "geo"})
# field -> (CBV URN prefix, bare words) for standard vocabulary written as URNs in XML
URNS: Final[Mapping[str, tuple[str, frozenset[str]]]] = {
    "bizStep": ("urn:epcglobal:cbv:bizstep:", vocab.CBV_BIZSTEPS),
    "disposition": ("urn:epcglobal:cbv:disp:", vocab.CBV_DISPOSITIONS),
    "bizTransactionType": ("urn:epcglobal:cbv:btt:", vocab.CBV_BIZ_TRANSACTION_TYPES),
    "sourceDestType": ("urn:epcglobal:cbv:sdt:", vocab.CBV_SOURCE_DEST_TYPES),
    "reason": ("urn:epcglobal:cbv:er:", vocab.CBV_ERROR_REASONS),
}
CBV_WEB: Final[Mapping[str, str]] = {
    "bizStep": "https://ref.gs1.org/cbv/BizStep-",
    "disposition": "https://ref.gs1.org/cbv/Disp-",
    "bizTransactionType": "https://ref.gs1.org/cbv/BTT-",
    "sourceDestType": "https://ref.gs1.org/cbv/SDT-",
    "reason": "https://ref.gs1.org/cbv/ER-",
    "component": "https://ref.gs1.org/cbv/Comp-",
}
GS1_WORDS: Final[Mapping[str, frozenset[str]]] = {
    "type": vocab.GS1_MEASUREMENT_TYPES,
    "exception": vocab.CBV_SENSOR_ALERT_TYPES,
}
_GS1_VOC_PREFIXES: Final = ("gs1:", GS1_VOC, "https://ref.gs1.org/voc/", "http://gs1.org/voc/")
_XSD_NUMBER: Final = re.compile(r"^(xsd?|xs):(integer|int|long|short|decimal|double|float)$")
_XSD_BOOLEAN: Final = re.compile(r"^(xsd?|xs):boolean$")


class XMLInputError(ValueError):
    """The body is not well-formed XML (400); ``line`` and ``column`` say where."""

    def __init__(self, message: str, line: int | None) -> None:
        self.line = line
        super().__init__(message)


def is_xml(media_type: str) -> bool:
    """Whether a Content-Type (or Accept entry) names EPCIS XML."""
    base = media_type.split(";", 1)[0].strip().lower()
    return base in XML_MEDIA_TYPES or base.endswith("+xml")


@cache
def _schema(namespace: str) -> etree.XMLSchema:
    text = resources.files("digital_village.trace").joinpath("xsd/epcis.xsd").read_bytes()
    if namespace != EPCIS_2:
        text = text.replace(EPCIS_2.encode(), namespace.encode())
    return etree.XMLSchema(etree.fromstring(text, _parser()))


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
        remove_comments=True, remove_pis=True,
    )  # fmt: skip


def _where(element: etree._Element) -> str:
    return f"line {element.sourceline}, <{etree.QName(element).localname}>"


@dataclass
class _Reader:
    """Turns one XML document into EPCIS 2.0 JSON, remembering where each value came from."""

    prefixes: dict[str, str] = field(default_factory=dict)  # namespace -> prefix
    origins: dict[str, str] = field(default_factory=dict)  # JSON pointer -> line and element

    def prefix_of(self, namespace: str, hint: str | None) -> str:
        found = self.prefixes.get(namespace)
        if found is not None:
            return found
        taken = set(self.prefixes.values())
        usable = hint and hint not in taken and hint not in _RESERVED_PREFIXES
        prefix = hint if usable else None
        number = 1
        while prefix is None or prefix in taken:
            prefix, number = f"ns{number}", number + 1
        self.prefixes[namespace] = prefix
        return prefix

    def key(self, qname: str | etree.QName, hint: str | None) -> str:
        name = etree.QName(qname)
        if name.namespace is None:
            return name.localname
        return f"{self.prefix_of(name.namespace, hint)}:{name.localname}"

    def note(self, pointer: str, element: etree._Element) -> None:
        self.origins[pointer] = _where(element)

    # --- extensions -------------------------------------------------------------------------

    def extension_value(self, element: etree._Element, pointer: str) -> Any:
        self.note(pointer, element)
        if element.get(f"{{{XSI}}}nil") in {"true", "1"}:
            return None
        children = [c for c in element if isinstance(c.tag, str)]
        attributes = {
            self.key(name, _prefix_in(element, etree.QName(name).namespace or "")): value
            for name, value in element.attrib.items()
            if etree.QName(name).namespace != XSI
        }
        text = (element.text or "").strip()
        if not children and not attributes:
            return _typed(text, element.get(f"{{{XSI}}}type"))
        value: dict[str, Any] = dict(attributes)
        if text and not children:
            value["#text"] = _typed(text, element.get(f"{{{XSI}}}type"))
        value.update(self.extensions(children, pointer))
        return value

    def extensions(self, elements: Iterable[etree._Element], pointer: str) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for child in elements:
            name = self.key(etree.QName(child), child.prefix)
            here = f"{pointer}/{_escape(name)}"
            value = self.extension_value(child, here)
            if name in result:
                previous = result[name]
                result[name] = [*previous, value] if isinstance(previous, list) else [
                    previous, value
                ]  # fmt: skip
            else:
                result[name] = value
        return result

    # --- events -----------------------------------------------------------------------------

    def event(self, element: etree._Element, pointer: str) -> dict[str, Any]:
        self.note(pointer, element)
        event: dict[str, Any] = {"type": etree.QName(element).localname}
        others: list[etree._Element] = []
        for child in _fields(element):
            name = etree.QName(child)
            here = f"{pointer}/{name.localname}"
            if name.namespace is not None:
                others.append(child)
                continue
            self.note(here, child)
            local = name.localname
            if local in _PLAIN:
                event[local] = _text(child)
            elif local in ("bizStep", "disposition"):
                event[local] = _vocabulary(local, _text(child))
            elif local == "certificationInfo":
                event.setdefault(local, []).append(_text(child))
            elif local in EPC_LISTS:
                epcs = [_text(epc) for epc in child if _is(epc, "epc")]
                if epcs:
                    event[local] = epcs
            elif local in QUANTITY_LISTS:
                quantities = [self.quantity(q, f"{here}/{i}") for i, q in enumerate(_items(child))]
                if quantities:
                    event[local] = quantities
            elif local == "persistentDisposition":
                event[local] = self.persistent_disposition(child)
            elif local in ("readPoint", "bizLocation"):
                event[local] = self.location(child, here)
            elif local == "bizTransactionList":
                event[local] = [
                    self.typed(item, "bizTransaction", "bizTransactionType", required=False)
                    for item in _items(child)
                ]
            elif local in ("sourceList", "destinationList"):
                role = local.removesuffix("List")
                event[local] = [
                    self.typed(item, role, "sourceDestType", required=True)
                    for item in _items(child)
                ]
            elif local == "sensorElementList":
                elements = [e for e in _items(child) if _is(e, "sensorElement")]
                event[local] = [
                    self.sensor_element(e, f"{here}/{i}") for i, e in enumerate(elements)
                ]
            elif local == "ilmd":
                event[local] = self.extensions(_unwrapped(child), here)
            elif local == "errorDeclaration":
                event[local] = self.error_declaration(child, here)
        if len(event.get("certificationInfo", ())) == 1:
            event["certificationInfo"] = event["certificationInfo"][0]
        event.update(self.extensions(others, pointer))
        return event

    def quantity(self, element: etree._Element, pointer: str) -> dict[str, Any]:
        self.note(pointer, element)
        out: dict[str, Any] = {}
        for child in element:
            local = etree.QName(child).localname
            if local == "quantity":
                out[local] = _number(_text(child))
            elif local in ("epcClass", "uom"):
                out[local] = _text(child)
        return out

    def persistent_disposition(self, element: etree._Element) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for child in element:
            local = etree.QName(child).localname
            if local in ("set", "unset"):
                out.setdefault(local, []).append(_vocabulary("disposition", _text(child)))
        return out

    def location(self, element: etree._Element, pointer: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        others = []
        for child in _unwrapped(element):
            if etree.QName(child).namespace is None and etree.QName(child).localname == "id":
                out["id"] = _text(child)
            else:
                others.append(child)
        out.update(self.extensions(others, pointer))
        return out

    def typed(
        self, element: etree._Element, role: str, vocabulary: str, *, required: bool
    ) -> dict[str, str]:
        out = {role: _text(element)}
        kind = element.get("type")
        if kind is not None or required:
            out = {"type": _vocabulary(vocabulary, kind or ""), **out}
        return out

    def sensor_element(self, element: etree._Element, pointer: str) -> dict[str, Any]:
        self.note(pointer, element)
        out: dict[str, Any] = {}
        others = []
        reports: list[dict[str, Any]] = []
        for child in _unwrapped(element):
            name = etree.QName(child)
            if name.namespace is None and name.localname == "sensorMetadata":
                out["sensorMetadata"] = self.attributes(child, f"{pointer}/sensorMetadata")
            elif name.namespace is None and name.localname == "sensorReport":
                here = f"{pointer}/sensorReport/{len(reports)}"
                reports.append(self.attributes(child, here))
            else:
                others.append(child)
        out["sensorReport"] = reports
        out.update(self.extensions(others, pointer))
        return out

    def attributes(self, element: etree._Element, pointer: str) -> dict[str, Any]:
        self.note(pointer, element)
        out: dict[str, Any] = {}
        for qname, raw in element.attrib.items():
            name = etree.QName(qname)
            if name.namespace is not None:
                if name.namespace != XSI:
                    out[self.key(qname, _prefix_in(element, name.namespace))] = raw
                continue
            local = name.localname
            if local in _NUMBERS:
                out[local] = _number(raw)
            elif local == "booleanValue":
                out[local] = raw.strip() in {"true", "1"}
            elif local in GS1_WORDS:
                out[local] = _gs1_word(local, raw.strip())
            elif local == "component":
                out[local] = _bare(raw.strip(), CBV_WEB["component"], vocab.CBV_COMPONENTS)
            else:
                out[local] = raw.strip()
        return out

    def error_declaration(self, element: etree._Element, pointer: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        others = []
        for child in _unwrapped(element):
            name = etree.QName(child)
            if name.namespace is not None:
                others.append(child)
                continue
            self.note(f"{pointer}/{name.localname}", child)
            if name.localname == "declarationTime":
                out["declarationTime"] = _text(child)
            elif name.localname == "reason":
                out["reason"] = _vocabulary("reason", _text(child))
            elif name.localname == "correctiveEventIDs":
                out["correctiveEventIDs"] = [_text(c) for c in child if _is(c, "correctiveEventID")]
        out.update(self.extensions(others, pointer))
        return out


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _is(element: etree._Element, local: str) -> bool:
    return isinstance(element.tag, str) and etree.QName(element).localname == local


def _items(element: etree._Element) -> list[etree._Element]:
    return [child for child in element if isinstance(child.tag, str)]


def _text(element: etree._Element) -> str:
    return (element.text or "").strip()


def _unwrapped(element: etree._Element) -> Iterable[etree._Element]:
    """Children, with the 1.x ``extension`` wrappers opened up."""
    for child in element:
        if not isinstance(child.tag, str):
            continue
        name = etree.QName(child)
        if name.namespace is None and name.localname in _WRAPPERS:
            yield from _unwrapped(child)
        else:
            yield child


def _fields(event: etree._Element) -> Iterable[etree._Element]:
    return _unwrapped(event)


def _prefix_in(element: etree._Element, namespace: str) -> str | None:
    for prefix, uri in element.nsmap.items():
        if uri == namespace and prefix:
            return str(prefix)
    return None


def _number(text: str) -> int | float | str:
    try:
        number = float(text)
    except ValueError:
        return text  # the model names the field and says it must be a number
    if number.is_integer() and re.fullmatch(r"[+-]?\d+", text.strip()):
        return int(number)
    return number


def _typed(text: str, xsi_type: str | None) -> Any:
    if xsi_type is None:
        return text
    if _XSD_BOOLEAN.match(xsi_type):
        return text in {"true", "1"}
    if _XSD_NUMBER.match(xsi_type):
        return _number(text)
    return text


def _bare(value: str, web_prefix: str, words: frozenset[str]) -> str:
    if value.startswith(web_prefix) and value[len(web_prefix) :] in words:
        return value[len(web_prefix) :]
    return value


def _vocabulary(kind: str, value: str) -> str:
    urn, words = URNS[kind]
    if value.startswith(urn):
        return value[len(urn) :]
    if value.startswith("cbv:"):  # a CURIE on the CBV namespace, as some partners write it
        value = "https://ref.gs1.org/cbv/" + value[len("cbv:") :]
    return _bare(value, CBV_WEB[kind], words)


def _gs1_word(kind: str, value: str) -> str:
    for prefix in _GS1_VOC_PREFIXES:
        if value.startswith(prefix) and value[len(prefix) :] in GS1_WORDS[kind]:
            return value[len(prefix) :]
    return value


def _parse(data: bytes) -> etree._Element:
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        line = exc.lineno if exc.lineno else None
        raise XMLInputError(f"not well-formed XML: {exc.msg}", line) from None
    if root.getroottree().docinfo.doctype:
        # EPCIS XML has no DTD; one here can only be there to define entities.
        raise XMLInputError("a DOCTYPE (DTD or entity declarations) is not allowed", 1)
    return root


def _schema_problems(root: etree._Element, namespace: str) -> list[Problem]:
    schema = _schema(namespace)
    try:
        if schema.validate(root):
            return []
    except etree.XMLSchemaValidateError as exc:
        return [Problem(f"line {root.sourceline}, {etree.QName(root).localname}", str(exc))]
    problems = []
    for entry in schema.error_log:
        element = entry.path.rsplit("/", 1)[-1] if entry.path else ""
        message = re.sub(r"^Element '[^']*'(, attribute '[^']*')?: ", "", entry.message)
        problems.append(Problem(f"line {entry.line}, {element}", message))
    return problems


@dataclass(frozen=True)
class XMLDocument:
    """An XML document read into the EPCIS 2.0 JSON-LD model."""

    document: dict[str, Any]
    version: str  # "2.0" or "1.2"
    origins: Mapping[str, str]  # JSON pointer -> "line N, <element>"

    def locate(self, error: EPCISParseError) -> EPCISParseError:
        """The same problems, each naming the XML line and element it came from."""
        problems = []
        for problem in error.problems:
            pointer = problem.pointer
            where = None
            while where is None and pointer:
                where = self.origins.get(pointer)
                pointer = pointer.rsplit("/", 1)[0]
            if where is None:
                where = "<EPCISDocument>"
            problems.append(Problem(f"{where} ({problem.pointer})", problem.message))
        return EPCISParseError(problems)


def read_document(data: bytes) -> XMLDocument:
    """Parse and check an EPCIS 2.0 or 1.2 XML document into the EPCIS 2.0 JSON model.

    Raises :class:`XMLInputError` for XML that is not well-formed and
    :class:`~digital_village.trace.epcis.EPCISParseError` for a document the schema refuses.
    """
    root = _parse(data)
    name = etree.QName(root)
    if name.localname != "EPCISDocument" or name.namespace not in {EPCIS_2, EPCIS_1}:
        raise EPCISParseError(
            [Problem(f"line {root.sourceline}, <{name.localname}>",
                     f"expected an EPCISDocument in {EPCIS_2} (EPCIS 2.0) or {EPCIS_1} "
                     f"(EPCIS 1.2), not {{{name.namespace}}}{name.localname}")]
        )  # fmt: skip
    problems = _schema_problems(root, name.namespace)
    if problems:
        raise EPCISParseError(problems)
    reader = _Reader()
    for prefix, namespace in root.nsmap.items():
        if prefix and prefix not in _RESERVED_PREFIXES and namespace not in {EPCIS_1, EPCIS_2}:
            reader.prefix_of(namespace, prefix)
    events: list[dict[str, Any]] = []
    body = next(child for child in root if _is(child, "EPCISBody"))
    for event_list in (child for child in body if _is(child, "EventList")):
        for element in _event_elements(event_list):
            events.append(reader.event(element, f"/epcisBody/eventList/{len(events)}"))
    version = "1.2" if name.namespace == EPCIS_1 else "2.0"
    declared = {
        prefix: namespace for namespace, prefix in reader.prefixes.items() if prefix != "gs1"
    }
    document: dict[str, Any] = {
        "@context": [vocab.EPCIS_CONTEXT_URL, *([declared] if declared else [])],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": root.get("creationDate"),
        "epcisBody": {"eventList": events},
    }
    reader.origins.setdefault("/creationDate", _where(root))
    return XMLDocument(document=document, version=version, origins=reader.origins)


def _event_elements(event_list: etree._Element) -> Iterable[etree._Element]:
    for child in event_list:
        if not isinstance(child.tag, str):
            continue
        local = etree.QName(child).localname
        if local in EVENT_TYPES:
            yield child
        elif local == "extension":
            yield from _event_elements(child)
