"""EPCIS Event Hash ID (GS1 CBV 2.0 §8.9): ``ni:///sha-256;<hex>?ver=CBV2.0``.

The hash is computed over a *pre-hash string*: the event's fields in a fixed order, each as
``key=value`` with normalised values, concatenated without separators. Normalisation follows
the published algorithm description and its open reference implementation
(RalphTro/epcis-event-hash-generator), whose CBV 2.0 test examples this module reproduces
(tests/trace/cbv_event_hash_vectors.json): times in UTC with milliseconds (rounded half up),
numbers without trailing zeros, bare CBV words and CBV URNs as ``https://ref.gs1.org/cbv/...``
URIs, GS1 Web Vocabulary terms (measurement types, sensor alerts, ``gs1:`` CURIEs) as
``https://ref.gs1.org/voc/...``, GS1 identifiers as constrained canonical Digital Link URIs,
lists sorted, and ILMD and extension fields written as ``{namespace}localName=value`` and
sorted. ``eventID``, ``recordTime``, ``certificationInfo`` and ``errorDeclaration`` are left
out, so an error declaration keeps the eventID of the event it declares erroneous.

After the standard fields come, in this order: the ILMD, the extensions of readPoint,
bizLocation and each sensor element (its metadata and reports), and the event's own
extensions — the reference's CBV 2.0 output, which appends extensions of standard fields
after all regular fields rather than inside them.

Known difference from the reference implementation: it also rewrites *any* string that happens
to equal the end of a GS1 vocabulary URI that JSON-LD expansion of the document produced (a
heuristic that needs GS1's full web-vocabulary context); here the fields whose values are
CBV/GS1 vocabulary are expanded, and inside extensions the code lists in
:data:`_GS1_CODE_LISTS`.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final

from digital_village.gs1 import canonical
from digital_village.trace import vocab

HASH_VERSION: Final = "CBV2.0"

_CBV: Final = "https://ref.gs1.org/cbv/"
_VOC: Final = "https://ref.gs1.org/voc/"
WELL_KNOWN_NAMESPACES: Final[Mapping[str, str]] = {
    "gs1": _VOC,
    "cbv": _CBV,
    "epcis": "https://ref.gs1.org/epcis/",
    "cbvmda": "urn:epcglobal:cbv:mda",
    vocab.DV_PREFIX: vocab.DV_VOCAB,
}
_URN_TO_WEB: Final = (
    ("urn:epcglobal:cbv:bizstep:", f"{_CBV}BizStep-"),
    ("urn:epcglobal:cbv:disp:", f"{_CBV}Disp-"),
    ("urn:epcglobal:cbv:btt:", f"{_CBV}BTT-"),
    ("urn:epcglobal:cbv:sdt:", f"{_CBV}SDT-"),
    ("urn:epcglobal:cbv:er:", f"{_CBV}ER-"),
)
# Standard fields left out of the hash, and keys the reference treats as comments.
_EXCLUDED: Final = frozenset(
    {"@context", "type", "eventID", "recordTime", "certificationInfo", "errorDeclaration"}
)
_COMMENTS: Final = frozenset({"rdfs:comment", "comment"})
_QUANTITY_FIELDS: Final = ("epcClass", "quantity", "uom")
_METADATA_FIELDS: Final = (
    "time", "startTime", "endTime", "deviceID", "deviceMetadata", "rawData",
    "dataProcessingMethod", "bizRules",
)  # fmt: skip
_REPORT_FIELDS: Final = (
    "type", "exception", "deviceID", "deviceMetadata", "rawData", "dataProcessingMethod",
    "time", "microorganism", "chemicalSubstance", "value", "component", "stringValue",
    "booleanValue", "hexBinaryValue", "uriValue", "minValue", "maxValue", "meanValue", "sDev",
    "percRank", "percValue", "uom", "coordinateReferenceSystem",
)  # fmt: skip
_STANDARD_KEYS: Final = (
    "eventTime", "eventTimeZoneOffset", "epcList", "parentID", "inputEPCList", "childEPCs",
    "quantityList", "childQuantityList", "inputQuantityList", "outputEPCList",
    "outputQuantityList", "action", "transformationID", "bizStep", "disposition",
    "persistentDisposition", "readPoint", "bizLocation", "bizTransactionList", "sourceList",
    "destinationList", "sensorElementList", "ilmd",
)  # fmt: skip
# Keys each extensions() call leaves out: comments and the object's standard fields.
_SKIP_EVENT: Final = _COMMENTS | _EXCLUDED | set(_STANDARD_KEYS)
_SKIP_METADATA: Final = _COMMENTS | set(_METADATA_FIELDS)
_SKIP_REPORT: Final = _COMMENTS | set(_REPORT_FIELDS)
_SKIP_SENSOR: Final = _COMMENTS | {"sensorMetadata", "sensorReport"}
_SKIP_LOCATION: Final = _COMMENTS | {"id"}
_TIME_FIELDS: Final = frozenset({"eventTime", "time", "startTime", "endTime"})
# field -> (bare words, URI prefix that the JSON-LD context expands them with)
_BARE_WORDS: Final[Mapping[str, tuple[frozenset[str], str]]] = {
    "bizStep": (vocab.CBV_BIZSTEPS, f"{_CBV}BizStep-"),
    "disposition": (vocab.CBV_DISPOSITIONS, f"{_CBV}Disp-"),
    "set": (vocab.CBV_DISPOSITIONS, f"{_CBV}Disp-"),
    "unset": (vocab.CBV_DISPOSITIONS, f"{_CBV}Disp-"),
    "bizTransactionType": (vocab.CBV_BIZ_TRANSACTION_TYPES, f"{_CBV}BTT-"),
    "sourceDestType": (vocab.CBV_SOURCE_DEST_TYPES, f"{_CBV}SDT-"),
    "sensorType": (vocab.GS1_MEASUREMENT_TYPES, _VOC),
    "exception": (vocab.CBV_SENSOR_ALERT_TYPES, _VOC),
    "component": (vocab.CBV_COMPONENTS, f"{_CBV}Comp-"),
}
# GS1 Web Vocabulary properties whose values are code-list terms: GS1's context declares them
# "@type": "@vocab", so a bare code such as "BACKROOM" means gs1:LocationRoleType-BACKROOM.
# Other code lists of the web vocabulary are hashed as written.
_GS1_CODE_LISTS: Final[Mapping[str, str]] = {
    "locationRoleType": f"{_VOC}LocationRoleType-",
    "locationID_Type": f"{_VOC}LocationID_Type-",
}
_CODE: Final = re.compile(r"^[A-Z][A-Z0-9_]*$")
_TIME: Final = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def namespaces_from_context(context: object) -> dict[str, str]:
    """Prefix → namespace map for CURIE keys, from a JSON-LD @context plus the GS1 defaults."""
    namespaces = dict(WELL_KNOWN_NAMESPACES)
    entries = context if isinstance(context, list) else [context]
    for entry in entries:
        if isinstance(entry, Mapping):
            namespaces.update({k: v for k, v in entry.items() if isinstance(v, str)})
    namespaces["gs1"] = _VOC  # the reference always maps gs1 to the web vocabulary
    return namespaces


def _normalise_time(text: str) -> str:
    match = _TIME.match(text)
    if match is None:
        return text
    base, fraction, offset = match.groups()
    moment = datetime.fromisoformat(base + ("+00:00" if offset == "Z" else offset))
    millis = (Decimal("0" + (fraction or ".0")) * 1000).quantize(Decimal(1), ROUND_HALF_UP)
    moment = (moment + timedelta(milliseconds=int(millis))).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _normalise_number(text: str) -> str:
    # Mirrors the reference: anything Python's float() reads is a number ("23.0" -> "23").
    try:
        number = float(text)
    except ValueError:
        return text
    if not math.isfinite(number):
        return text
    return str(int(number)) if number == int(number) else str(number)


class _Canon:
    """Value and key normalisation given a document's namespaces.

    Normalised values are remembered: the events of a capture repeat the same locations,
    steps and identifiers, and the result depends only on the text, the field and the
    namespaces this instance was made for.
    """

    _MEMO_LIMIT = 100_000

    def __init__(self, namespaces: Mapping[str, str]) -> None:
        self.namespaces = namespaces
        self._memo: dict[tuple[str, str], str] = {}

    def value(self, raw: object, *, field: str = "") -> str:
        if raw is None:
            return ""
        if isinstance(raw, bool):
            return "true" if raw else "false"
        text = str(raw).strip()
        key = (text, field)
        found = self._memo.get(key)
        if found is None:
            if len(self._memo) >= self._MEMO_LIMIT:
                self._memo.clear()
            found = self._memo[key] = self._normalise(text, field)
        return found

    def _normalise(self, text: str, field: str) -> str:
        if field in _TIME_FIELDS:
            return _normalise_time(text)
        words = _BARE_WORDS.get(field)
        if words is not None and text in words[0]:
            return words[1] + text
        for urn, web in _URN_TO_WEB:
            if text.startswith(urn):
                text = web + text[len(urn) :]
        prefix, colon, local = text.partition(":")
        namespace = self.namespaces.get(prefix, "")
        if colon and namespace.startswith(("https://ref.gs1.org", "https://gs1.org")):
            text = namespace + local
        text = _normalise_number(text)
        return canonical.normalise(text) or text

    def key(self, key: str) -> str:
        prefix, colon, local = key.partition(":")
        if colon and prefix in self.namespaces:
            return "{" + self.namespaces[prefix] + "}" + local
        return key

    def pair(self, key: str, raw: object, *, field: str = "") -> str:
        text = self.value(raw, field=field or key)
        return f"{key}={text}" if text else ""

    def fields(self, obj: Mapping[str, Any], order: Iterable[str], **rename: str) -> str:
        return "".join(
            self.pair(name, obj.get(name), field=rename.get(name, name)) for name in order
        )

    def extension(self, key: str, raw: object) -> list[str]:
        name = self.key(key)
        code_list = _GS1_CODE_LISTS.get(name.removeprefix("{" + _VOC + "}"))
        items = raw if isinstance(raw, list) else [raw]
        strings = []
        for item in items:
            if isinstance(item, Mapping):
                strings.append(name + "".join(sorted(self.extensions(item))))
                continue
            if code_list is not None and isinstance(item, str) and _CODE.match(item.strip()):
                text = code_list + item.strip()
            else:
                text = self.value(item)
            strings.append(f"{name}={text}" if text else name)
        return strings

    def extensions(self, obj: Mapping[str, Any], skip: frozenset[str] = _COMMENTS) -> list[str]:
        """The extension strings of an object's keys outside ``skip`` (its standard fields)."""
        return [s for k, v in obj.items() if k not in skip for s in self.extension(k, v)]


def _listed(name: str, items: Iterable[str]) -> str:
    present = sorted(item for item in items if item)
    return name + "".join(present) if present else ""


def _sensor_element(canon: _Canon, element: Mapping[str, Any]) -> tuple[str, str]:
    """The element's standard part and its extension remainder (each '' when empty)."""
    metadata = element.get("sensorMetadata") or {}
    reports = element.get("sensorReport") or []
    meta_text = canon.fields(metadata, _METADATA_FIELDS)
    report_texts = [canon.fields(r, _REPORT_FIELDS, type="sensorType") for r in reports]
    standard = ("sensorMetadata" + meta_text if meta_text else "") + "".join(
        sorted("sensorReport" + text for text in report_texts if text)
    )
    rest = []
    meta_ext = canon.extensions(metadata, _SKIP_METADATA)
    if meta_ext:
        rest.append("sensorMetadata" + "".join(sorted(meta_ext)))
    for report in reports:
        report_ext = canon.extensions(report, _SKIP_REPORT)
        if report_ext:
            rest.append("sensorReport" + "".join(sorted(report_ext)))
    rest += canon.extensions(element, _SKIP_SENSOR)
    return (
        "sensorElement" + standard if standard else "",
        "sensorElement" + "".join(sorted(rest)) if rest else "",
    )


_CANONS: dict[str, _Canon] = {}
# The last context object asked about and its normaliser: a capture's events share one.
_LAST: list[tuple[object, _Canon]] = []


def _canon_for(context: object) -> _Canon:
    """The normaliser of a @context, shared by every event written against that context."""
    last = _LAST[0] if _LAST else None  # one read: other threads may replace it
    if last is not None and last[0] is context:
        return last[1]
    key = json.dumps(context, sort_keys=True, default=str)
    canon = _CANONS.get(key)
    if canon is None:
        if len(_CANONS) >= 64:
            _CANONS.clear()
        canon = _CANONS[key] = _Canon(namespaces_from_context(context))
    _LAST[:] = [(context, canon)]
    return canon


def prehash_string(event: Mapping[str, Any], *, context: object = None) -> str:
    """The CBV 2.0 pre-hash string of one EPCIS event given as its JSON dict.

    ``context`` is the JSON-LD @context that defines the event's CURIE prefixes (the
    document's, or the event's own); the GS1 and ``dv`` prefixes are always known.
    """
    canon = _canon_for(event.get("@context", context))

    # Most fields of an event are absent: those return "" before any list is built.
    def epcs(name: str) -> str:
        values = event.get(name)
        if not values:
            return ""
        return _listed(name, (canon.pair("epc", epc) for epc in values))

    def quantities(name: str) -> str:
        elements = event.get(name)
        if not elements:
            return ""
        texts = (canon.fields(q, _QUANTITY_FIELDS) for q in elements)
        return _listed(name, ("quantityElement" + text for text in texts if text))

    def typed(name: str, id_key: str, type_field: str) -> str:
        entries = event.get(name)
        if not entries:
            return ""
        texts = (
            canon.pair("type", entry.get("type"), field=type_field)
            + canon.pair(id_key, entry.get(id_key))
            for entry in entries
        )
        return _listed(name, texts)

    disposition = event.get("persistentDisposition")
    sensors = event.get("sensorElementList")
    sensor_parts = [_sensor_element(canon, e) for e in sensors] if sensors else []
    standard = [
        f"eventType={event.get('type', '')}",
        canon.pair("eventTime", event.get("eventTime")),
        canon.pair("eventTimeZoneOffset", event.get("eventTimeZoneOffset")),
        epcs("epcList"),
        canon.pair("parentID", event.get("parentID")),
        epcs("inputEPCList"),
        epcs("childEPCs"),
        quantities("quantityList"),
        quantities("childQuantityList"),
        quantities("inputQuantityList"),
        epcs("outputEPCList"),
        quantities("outputQuantityList"),
        canon.pair("action", event.get("action")),
        canon.pair("transformationID", event.get("transformationID")),
        canon.pair("bizStep", event.get("bizStep")),
        canon.pair("disposition", event.get("disposition")),
        _persistent_disposition(canon, disposition) if disposition else "",
        *(
            _listed(name, [canon.pair("id", (event.get(name) or {}).get("id"))])
            for name in ("readPoint", "bizLocation")
        ),
        typed("bizTransactionList", "bizTransaction", "bizTransactionType"),
        typed("sourceList", "source", "sourceDestType"),
        typed("destinationList", "destination", "sourceDestType"),
        "".join(sorted(part for part, _ in sensor_parts if part)),
    ]
    return "".join(standard) + "".join(_after_standard(canon, event, sensor_parts))


def _persistent_disposition(canon: _Canon, disposition: Mapping[str, Any]) -> str:
    return _listed(
        "persistentDisposition",
        [
            "".join(sorted(canon.pair("set", v) for v in disposition.get("set") or [])),
            "".join(sorted(canon.pair("unset", v) for v in disposition.get("unset") or [])),
        ],
    )


def _after_standard(
    canon: _Canon, event: Mapping[str, Any], sensor_parts: list[tuple[str, str]]
) -> list[str]:
    """What follows the standard fields, in this order (the reference's CBV 2.0 output): the
    ILMD, the extensions of readPoint, bizLocation and the sensor elements, then the event's
    own extensions, sorted."""
    remainder = []
    if "ilmd" in event:
        remainder.append("ilmd" + "".join(sorted(canon.extensions(event["ilmd"] or {}))))
    for name in ("readPoint", "bizLocation"):
        location = event.get(name)
        if not location or (len(location) == 1 and "id" in location):
            continue
        located = canon.extensions(location, _SKIP_LOCATION)
        if located:
            remainder.append(name + "".join(sorted(located)))
    remainder += sorted(rest for _, rest in sensor_parts if rest)
    remainder += sorted(canon.extensions(event, _SKIP_EVENT))
    return remainder


def event_hash_id(event: Mapping[str, Any], *, context: object = None) -> str:
    """The EPCIS Event Hash ID of an event dict: ``ni:///sha-256;<hex>?ver=CBV2.0``."""
    digest = hashlib.sha256(prehash_string(event, context=context).encode("utf-8")).hexdigest()
    return f"ni:///sha-256;{digest}?ver={HASH_VERSION}"
