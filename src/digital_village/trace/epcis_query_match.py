"""Checks of EPCIS query parameters on an event's JSON: what the event table has no column for.

Each check is built once from one parameter and then called on each candidate event (the JSON
recorded in its ledger entry). Pure: no ORM, no web framework.

Vocabulary values compare in every spelling GS1 allows (a bare CBV word, its ``urn:epcglobal:cbv``
URN, its ``https://ref.gs1.org/cbv/`` URI); extension names compare by the namespace they
expand to (the event's own ``@context`` prefixes and the client's ``GS1-Extensions``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from digital_village.trace import vocab

JsonEvent = Mapping[str, Any]

# Top-level fields an EPCIS 2.0 event may carry (EXISTS_<field> accepts these and extensions).
STANDARD_FIELDS: Final = (
    "eventID",
    "eventTime",
    "eventTimeZoneOffset",
    "recordTime",
    "certificationInfo",
    "errorDeclaration",
    "epcList",
    "parentID",
    "childEPCs",
    "quantityList",
    "childQuantityList",
    "inputEPCList",
    "inputQuantityList",
    "outputEPCList",
    "outputQuantityList",
    "transformationID",
    "action",
    "bizStep",
    "disposition",
    "persistentDisposition",
    "readPoint",
    "bizLocation",
    "bizTransactionList",
    "sourceList",
    "destinationList",
    "sensorElementList",
    "ilmd",
)
_STANDARD: Final = frozenset({*STANDARD_FIELDS, "type", "@context"})
_QUANTITY_LISTS: Final = (
    "quantityList",
    "childQuantityList",
    "inputQuantityList",
    "outputQuantityList",
)
# Namespaces every event may use without declaring them.
KNOWN_NAMESPACES: Final[Mapping[str, str]] = {
    vocab.DV_PREFIX: vocab.DV_VOCAB,
    "gs1": "https://gs1.org/voc/",
    "cbv": "https://ref.gs1.org/cbv/",
}
_CBV_URN: Final = "urn:epcglobal:cbv:"
_CBV_URI: Final = "https://ref.gs1.org/cbv/"


def _spellings(urn_kind: str, uri_kind: str) -> Callable[[str], list[str]]:
    """Every way to write one CBV word of a code list (bare, URN, GS1 web URI)."""

    def expand(value: str) -> list[str]:
        word = value
        for prefix in (
            f"{_CBV_URN}{urn_kind}:",
            f"{_CBV_URI}{uri_kind}-",
            f"https://gs1.org/voc/{uri_kind}-",
            f"http://ns.gs1.org/cbv/{uri_kind}-",
        ):
            if value.startswith(prefix):
                word = value[len(prefix) :]
        if ":" in word:
            return [value]
        return [word, f"{_CBV_URN}{urn_kind}:{word}", f"{_CBV_URI}{uri_kind}-{word}"]

    return expand


_biz_step_words = _spellings("bizstep", "BizStep")
disposition_spellings = _spellings("disp", "Disp")
_error_reasons = _spellings("er", "ER")
_BTT = _spellings("btt", "BTT")
_SDT = _spellings("sdt", "SDT")


def biz_step_spellings(value: str) -> list[str]:
    """bizStep as stored: CBV steps as bare words, the project's steps as full URIs."""
    if value.startswith(f"{vocab.DV_PREFIX}:"):
        return [vocab.DV_VOCAB + value[len(vocab.DV_PREFIX) + 1 :]]
    return _biz_step_words(value)


def as_number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def as_time(value: object) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value
    if not isinstance(value, str) or "T" not in value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _ordered(op: str, left: Any, right: Any) -> bool:
    if op == "EQ":
        return bool(left == right)
    if op == "GT":
        return bool(left > right)
    if op == "GE":
        return bool(left >= right)
    if op == "LT":
        return bool(left < right)
    return bool(left <= right)


@dataclass(frozen=True)
class Comparison:
    """A parameter's operator and its value(s), compared with a field's value."""

    op: str
    values: tuple[Any, ...]

    def holds(self, found: object) -> bool:
        if isinstance(found, list):
            return any(self.holds(item) for item in found)
        if isinstance(found, dict):
            # An extension value may be a JSON-LD value object.
            return "@value" in found and self.holds(found["@value"])
        for wanted in self.values:
            if self.op == "EQ" and found == wanted:
                return True
            if isinstance(found, bool) or isinstance(wanted, bool):
                if self.op == "EQ" and str(found).lower() == str(wanted).lower():
                    return True
                continue
            number, target = as_number(found), as_number(wanted)
            if number is not None and target is not None:
                if _ordered(self.op, number, target):
                    return True
                continue
            moment, when = as_time(found), as_time(wanted)
            if moment is not None and when is not None and _ordered(self.op, moment, when):
                return True
        return False


@dataclass
class Check:
    """One parameter's condition on an event's JSON."""

    name: str
    test: Callable[[JsonEvent, Callable[[str], str]], bool]
    # Extension names resolved against the client's namespaces once they are known.
    client_namespaces: dict[str, str] = field(default_factory=dict)

    def bind(self, namespaces: Mapping[str, str]) -> None:
        self.client_namespaces = dict(namespaces)

    def __call__(self, event: JsonEvent) -> bool:
        names = event_namespaces(event)

        def expand(key: str) -> str:
            return expand_name(key, names)

        return self.test(event, expand)

    def expand_query_name(self, name: str, event: JsonEvent) -> str:
        return expand_name(name, {**event_namespaces(event), **self.client_namespaces})


def event_namespaces(event: JsonEvent) -> dict[str, str]:
    """Prefixes the event declares in its own @context, over the ones every event may use."""
    found = dict(KNOWN_NAMESPACES)
    context = event.get("@context")
    for entry in context if isinstance(context, list) else [context]:
        if isinstance(entry, dict):
            found.update({k: v for k, v in entry.items() if isinstance(v, str)})
    return found


def expand_name(name: str, namespaces: Mapping[str, str]) -> str:
    """An extension name as a full URI (``prefix:local`` through the namespaces)."""
    if name.startswith(("http://", "https://")):
        return name
    prefix, sep, local = name.partition(":")
    if sep and prefix in namespaces:
        return namespaces[prefix] + local
    return name


def _walk(value: object) -> Iterator[tuple[str, object]]:
    """Every (key, value) pair nested in a JSON value, at any depth."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key, item
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)


def _extension_items(container: Mapping[str, Any]) -> Iterator[tuple[str, object]]:
    for key, value in container.items():
        if key not in _STANDARD and not key.startswith("@"):
            yield key, value


def extension_check(
    name: str, where: str, field_name: str, *, inner: bool, comparison: Comparison | None
) -> Check:
    """EQ_/GT_/…/EXISTS_ on an extension field: of the event (``where`` = "event"), of its
    ILMD, error declaration, readPoint or bizLocation; ``inner`` looks below the top level."""
    check = Check(name, lambda _event, _expand: False)

    def test(event: JsonEvent, expand: Callable[[str], str]) -> bool:
        container = event if where == "event" else event.get(where)
        if not isinstance(container, dict):
            return False
        wanted = check.expand_query_name(field_name, event)
        pairs: Iterator[tuple[str, object]]
        if inner:
            pairs = (pair for _, top in _extension_items(container) for pair in _walk(top))
        else:
            pairs = _extension_items(container)
        for key, value in pairs:
            if key != field_name and expand(key) != wanted:
                continue
            if comparison is None or comparison.holds(value):
                return True
        return False

    check.test = test
    return check


def exists_check(name: str, field_name: str) -> Check:
    return Check(name, lambda event, _expand: event.get(field_name) not in (None, [], {}))


def quantity_check(name: str, op: str, numbers: tuple[float, ...], *, uom: str | None) -> Check:
    """EQ_/GT_/GE_/LT_/LE_quantity[_UOM]: some quantity element of the event satisfies it."""
    comparison = Comparison(op, numbers)

    def test(event: JsonEvent, _expand: Callable[[str], str]) -> bool:
        for list_name in _QUANTITY_LISTS:
            for element in event.get(list_name) or []:
                if not isinstance(element, dict) or "quantity" not in element:
                    continue
                if uom is not None and element.get("uom") != uom:
                    continue
                if comparison.holds(element["quantity"]):
                    return True
        return False

    return Check(name, test)


def typed_list_check(name: str, list_name: str, type_word: str, values: tuple[str, ...]) -> Check:
    """EQ_bizTransaction_<type>, EQ_source_<type>, EQ_destination_<type>."""
    member = {"bizTransactionList": "bizTransaction", "sourceList": "source"}.get(
        list_name, "destination"
    )
    spell = _BTT if list_name == "bizTransactionList" else _SDT
    types = set(spell(type_word))
    wanted = set(values)

    def test(event: JsonEvent, _expand: Callable[[str], str]) -> bool:
        for element in event.get(list_name) or []:
            if not isinstance(element, dict):
                continue
            kind = element.get("type")
            if list_name == "bizTransactionList" and kind is None:
                continue
            if kind in types and element.get(member) in wanted:
                return True
        return False

    return Check(name, test)


def error_reason_check(name: str, values: tuple[str, ...]) -> Check:
    reasons = {spelling for value in values for spelling in _error_reasons(value)}

    def test(event: JsonEvent, _expand: Callable[[str], str]) -> bool:
        declaration = event.get("errorDeclaration")
        return isinstance(declaration, dict) and declaration.get("reason") in reasons

    return Check(name, test)


def corrective_check(name: str, values: tuple[str, ...]) -> Check:
    wanted = set(values)

    def test(event: JsonEvent, _expand: Callable[[str], str]) -> bool:
        declaration = event.get("errorDeclaration")
        if not isinstance(declaration, dict):
            return False
        return bool(wanted.intersection(declaration.get("correctiveEventIDs") or []))

    return Check(name, test)


def declaration_time_check(name: str, op: str, moment: dt.datetime) -> Check:
    def test(event: JsonEvent, _expand: Callable[[str], str]) -> bool:
        declaration = event.get("errorDeclaration")
        if not isinstance(declaration, dict):
            return False
        when = as_time(declaration.get("declarationTime"))
        return when is not None and _ordered(op, when, moment)

    return Check(name, test)


def path_contains_check(name: str, path: Sequence[str], values: tuple[str, ...]) -> Check:
    """The value at ``path`` (a string or a list of strings) is one of ``values``."""
    wanted = set(values)

    def test(event: JsonEvent, _expand: Callable[[str], str]) -> bool:
        found: Any = event
        for step in path:
            if not isinstance(found, dict):
                return False
            found = found.get(step)
        items = found if isinstance(found, list) else [found]
        return any(isinstance(item, str) and item in wanted for item in items)

    return Check(name, test)


def _measurement(value: object) -> str | None:
    """A measurement type by its local name (``Temperature``, ``gs1:Temperature``, full URI)."""
    if not isinstance(value, str):
        return None
    for prefix in ("gs1:", "https://gs1.org/voc/", "https://ref.gs1.org/voc/"):
        if value.startswith(prefix):
            return value[len(prefix) :]
    return value


# Report attributes read from the sensor metadata when a report does not give them.
_METADATA_FALLBACK: Final = frozenset(
    {"time", "deviceID", "dataProcessingMethod", "bizRules", "startTime", "endTime"}
)


def sensor_check(
    name: str, attribute: str, op: str, values: tuple[Any, ...], *, uom: str | None = None
) -> Check:
    """A sensor report parameter: some report (with its element's metadata) satisfies it.

    ``GE_value_CEL`` compares ``value`` of reports in CEL; ``EQ_type`` compares measurement
    types by local name; time, deviceID, dataProcessingMethod and bizRules fall back to the
    element's sensorMetadata; startTime and endTime are the metadata's.
    """
    if attribute == "type":
        values = tuple(_measurement(v) for v in values)
    comparison = Comparison(op, values)

    def test(event: JsonEvent, _expand: Callable[[str], str]) -> bool:
        for element in event.get("sensorElementList") or []:
            if not isinstance(element, dict):
                continue
            metadata = element.get("sensorMetadata") or {}
            for report in element.get("sensorReport") or []:
                if not isinstance(report, dict):
                    continue
                if uom is not None and report.get("uom") != uom:
                    continue
                found = report.get(attribute)
                if found is None and attribute in _METADATA_FALLBACK:
                    found = metadata.get(attribute)
                if found is None:
                    continue
                if attribute == "type":
                    found = _measurement(found)
                if isinstance(found, str) and attribute in {"time", "startTime", "endTime"}:
                    found = as_time(found)
                if comparison.holds(found):
                    return True
        return False

    return Check(name, test)
