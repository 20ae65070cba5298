"""The EPCIS 2.0 query language: request parameters read into a :class:`SimpleEventQuery`.

The parameters are those of GS1 EPCIS 2.0 §8.2.7.1 (SimpleEventQuery) as the REST binding's
``query-schema.json`` names them. What the event table holds in columns (times, type, action,
bizStep, disposition, locations, eventID, EPCs) becomes SQL in ``epcis_query_run``; the rest
(quantities, sensor reports, extensions, ILMD, error declarations, transactions, sources and
destinations) becomes a predicate on the event's JSON (``epcis_query_match``).

A parameter this module does not know is refused with 400 naming it, never ignored: a partner
who misspells ``EQ_bizStep`` must not receive every event.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

from digital_village.errors import DomainError
from digital_village.trace import epcis_query_match as match

DEFAULT_PER_PAGE: Final = 30
MAX_PER_PAGE: Final = 1000
EVENT_TYPES: Final = (
    "ObjectEvent",
    "AggregationEvent",
    "AssociationEvent",
    "TransactionEvent",
    "TransformationEvent",
)
ACTIONS: Final = ("ADD", "OBSERVE", "DELETE")
# The fields MATCH_… parameters look at (EPCIS 2.0 §8.2.7.1), as trace_event_epc names them.
MATCH_FIELDS: Final[Mapping[str, tuple[str, ...]]] = {
    "MATCH_epc": ("epcList", "childEPCs"),
    "MATCH_parentID": ("parentID",),
    "MATCH_inputEPC": ("inputEPCList",),
    "MATCH_outputEPC": ("outputEPCList",),
    "MATCH_anyEPC": ("epcList", "childEPCs", "parentID", "inputEPCList", "outputEPCList"),
    "MATCH_epcClass": ("quantityList", "childQuantityList"),
    "MATCH_inputEPCClass": ("inputQuantityList",),
    "MATCH_outputEPCClass": ("outputQuantityList",),
    "MATCH_anyEPCClass": (
        "quantityList",
        "childQuantityList",
        "inputQuantityList",
        "outputQuantityList",
    ),
}
ORDER_FIELDS: Final = ("eventTime", "recordTime")
# Parameters that steer paging, not the result: left out of a query's fingerprint.
PAGING: Final = frozenset({"perPage", "nextPageToken"})


class QueryParameterError(DomainError):
    """A query parameter is unknown, malformed or not allowed with another (400)."""

    status = 400
    title = "Query parameter exception"
    exception: ClassVar[str] = "epcisException:QueryParameterException"

    def __init__(self, parameter: str, detail: str) -> None:
        super().__init__(detail, type=self.exception, parameter=parameter)


class QueryTooLarge(DomainError):
    """More events match than ``maxEventCount`` allows (413)."""

    status = 413
    title = "Query too large"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, type="epcisException:QueryTooLargeException")


@dataclass(frozen=True)
class Bound:
    """One comparison of a column with a value: ``op`` is GE, GT, LE or LT."""

    op: str
    value: dt.datetime


@dataclass
class SimpleEventQuery:
    """A parsed query: what SQL filters, what the JSON predicate checks, and the paging."""

    params: tuple[tuple[str, str], ...] = ()
    event_types: list[str] = field(default_factory=list)
    event_time: list[Bound] = field(default_factory=list)
    record_time: list[Bound] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    biz_steps: list[str] = field(default_factory=list)
    dispositions: list[str] = field(default_factory=list)
    read_points: list[str] = field(default_factory=list)
    biz_locations: list[str] = field(default_factory=list)
    event_ids: list[str] = field(default_factory=list)
    # MATCH_… name → identifiers (each parameter is one condition; values within it are OR).
    matches: dict[str, list[str]] = field(default_factory=dict)
    exists_error_declaration: bool = False
    # Checks on the event's JSON; all must hold.
    checks: list[match.Check] = field(default_factory=list)
    order_by: str | None = None
    descending: bool = False
    event_count_limit: int | None = None
    max_event_count: int | None = None
    per_page: int = DEFAULT_PER_PAGE
    next_page_token: str | None = None

    def fingerprint(self) -> str:
        """What a page token is bound to: every parameter but the paging ones."""
        text = "\n".join(f"{k}={v}" for k, v in sorted(self.params) if k not in PAGING)
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    @property
    def needs_json(self) -> bool:
        return bool(self.checks)


def values_of(raw: Sequence[str]) -> list[str]:
    """EPCIS lists travel as repeated parameters or as one value with '|' between items."""
    return [part for value in raw for part in value.split("|") if part]


def parse_time(name: str, value: str) -> dt.datetime:
    """An RFC 3339 time with its offset (a '+' read as a space by form decoding is put back)."""
    text = value.strip()
    if " " in text:
        text = re.sub(r" (\d{2}:?\d{2})$", r"+\1", text)
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise QueryParameterError(
            name, f"{name}: {value!r} is not an RFC 3339 time (2026-05-01T00:00:00+08:00)"
        ) from None
    if moment.tzinfo is None:
        raise QueryParameterError(
            name, f"{name} needs a UTC offset, e.g. 2026-05-01T00:00:00+08:00"
        )
    return moment


def parse_number(name: str, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise QueryParameterError(name, f"{name}: {value!r} is not a number") from None


def _integer(name: str, value: str, *, minimum: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise QueryParameterError(name, f"{name}: {value!r} is not an integer") from None
    if number < minimum:
        raise QueryParameterError(name, f"{name} must be at least {minimum}, got {number}")
    return number


def _one(name: str, raw: Sequence[str]) -> str:
    if len(raw) != 1:
        raise QueryParameterError(name, f"{name} takes one value, got {len(raw)}")
    return raw[0]


# --- the grammar ----------------------------------------------------------------------------

_COMPARE: Final = ("EQ", "GT", "GE", "LT", "LE")
_SENSOR_NUMBERS: Final = ("value", "minValue", "maxValue", "meanValue", "sDev", "percValue")
_UOM: Final = r"[A-Z0-9]{2,4}"
# A namespaced extension name (prefix:local) or a full URI of one.
_EXT: Final = r"(?:[A-Za-z][\w.-]*:[\w.-]+|https?://\S+)"

Handler = Callable[[SimpleEventQuery, str, Sequence[str], "re.Match[str]"], None]


def _set_list(attribute: str, expand: Callable[[str], list[str]] | None = None) -> Handler:
    def handle(query: SimpleEventQuery, name: str, raw: Sequence[str], _: re.Match[str]) -> None:
        values = values_of(raw)
        if not values:
            raise QueryParameterError(name, f"{name} needs at least one value")
        target: list[str] = getattr(query, attribute)
        for value in values:
            target.extend(expand(value) if expand else [value])

    return handle


def _event_type(query: SimpleEventQuery, name: str, raw: Sequence[str], _: re.Match[str]) -> None:
    for value in values_of(raw):
        if value not in EVENT_TYPES and ":" not in value:
            raise QueryParameterError(
                name,
                f"eventType {value!r} is not one of {', '.join(EVENT_TYPES)} "
                "nor the URI of an extension event type",
            )
        query.event_types.append(value)


def _action(query: SimpleEventQuery, name: str, raw: Sequence[str], _: re.Match[str]) -> None:
    for value in values_of(raw):
        if value not in ACTIONS:
            raise QueryParameterError(name, f"EQ_action {value!r} is not ADD, OBSERVE or DELETE")
        query.actions.append(value)


def _time_bound(attribute: str) -> Handler:
    def handle(
        query: SimpleEventQuery, name: str, raw: Sequence[str], found: re.Match[str]
    ) -> None:
        bounds: list[Bound] = getattr(query, attribute)
        bounds.append(Bound(found["op"], parse_time(name, _one(name, raw))))

    return handle


def _match(query: SimpleEventQuery, name: str, raw: Sequence[str], _: re.Match[str]) -> None:
    values = values_of(raw)
    if not values:
        raise QueryParameterError(name, f"{name} needs at least one identifier")
    query.matches.setdefault(name, []).extend(values)


def _exists_error_declaration(
    query: SimpleEventQuery, name: str, raw: Sequence[str], _: re.Match[str]
) -> None:
    query.exists_error_declaration = True


def _json_check(build: Callable[[str, Sequence[str], re.Match[str]], match.Check]) -> Handler:
    def handle(
        query: SimpleEventQuery, name: str, raw: Sequence[str], found: re.Match[str]
    ) -> None:
        query.checks.append(build(name, raw, found))

    return handle


def _compare_values(name: str, op: str, raw: Sequence[str]) -> match.Comparison:
    """EQ_ takes a list of values; the ordered comparisons take one number or time."""
    if op == "EQ":
        values = values_of(raw)
        if not values:
            raise QueryParameterError(name, f"{name} needs at least one value")
        return match.Comparison("EQ", tuple(values))
    value = _one(name, raw)
    if match.as_number(value) is None and match.as_time(value) is None:
        raise QueryParameterError(name, f"{name}: {value!r} is neither a number nor a time")
    return match.Comparison(op, (value,))


def _quantity(name: str, raw: Sequence[str], found: re.Match[str]) -> match.Check:
    op = found["op"]
    if op == "EQ":
        numbers = tuple(parse_number(name, value) for value in values_of(raw))
    else:
        numbers = (parse_number(name, _one(name, raw)),)
    return match.quantity_check(name, op, numbers, uom=found["uom"])


def _extension(where: str) -> Callable[[str, Sequence[str], re.Match[str]], match.Check]:
    def build(name: str, raw: Sequence[str], found: re.Match[str]) -> match.Check:
        inner = bool(found["inner"])
        if found["op"] == "EXISTS":
            return match.extension_check(name, where, found["field"], inner=inner, comparison=None)
        comparison = _compare_values(name, found["op"], raw)
        return match.extension_check(
            name, where, found["field"], inner=inner, comparison=comparison
        )

    return build


def _exists(name: str, _raw: Sequence[str], found: re.Match[str]) -> match.Check:
    return match.exists_check(name, found["field"])


def _typed_list(where: str) -> Callable[[str, Sequence[str], re.Match[str]], match.Check]:
    def build(name: str, raw: Sequence[str], found: re.Match[str]) -> match.Check:
        values = values_of(raw)
        if not values:
            raise QueryParameterError(name, f"{name} needs at least one value")
        return match.typed_list_check(name, where, found["type"], tuple(values))

    return build


def _error_field(where: str) -> Callable[[str, Sequence[str], re.Match[str]], match.Check]:
    def build(name: str, raw: Sequence[str], found: re.Match[str]) -> match.Check:
        if where == "reason":
            return match.error_reason_check(name, tuple(values_of(raw)))
        if where == "correctiveEventIDs":
            return match.corrective_check(name, tuple(values_of(raw)))
        moment = parse_time(name, _one(name, raw))
        return match.declaration_time_check(name, found["op"], moment)

    return build


Builder = Callable[[str, Sequence[str], "re.Match[str]"], match.Check]


def _field_contains(path: tuple[str, ...]) -> Builder:
    def build(name: str, raw: Sequence[str], _found: re.Match[str]) -> match.Check:
        values = values_of(raw)
        if not values:
            raise QueryParameterError(name, f"{name} needs at least one value")
        return match.path_contains_check(name, path, tuple(values))

    return build


def _sensor(name: str, raw: Sequence[str], found: re.Match[str]) -> match.Check:
    attribute, op = found["attr"], found["op"]
    if attribute in {"time", "startTime", "endTime"}:
        return match.sensor_check(name, attribute, op, (parse_time(name, _one(name, raw)),))
    if attribute == "booleanValue":
        value = _one(name, raw).lower()
        if value not in {"true", "false"}:
            raise QueryParameterError(name, f"{name}: {raw[0]!r} is not true or false")
        return match.sensor_check(name, attribute, "EQ", (value == "true",))
    if op == "EQ" and attribute not in _SENSOR_NUMBERS and attribute != "percRank":
        return match.sensor_check(name, attribute, "EQ", tuple(values_of(raw)))
    if op == "EQ":
        values = tuple(parse_number(name, v) for v in values_of(raw))
    else:
        values = (parse_number(name, _one(name, raw)),)
    return match.sensor_check(name, attribute, op, values, uom=found["uom"] or None)


def _sensor_list(name: str, _raw: Sequence[str], _found: re.Match[str]) -> match.Check:
    return match.exists_check(name, "sensorElementList")


def _master_data(query: SimpleEventQuery, name: str, raw: Sequence[str], _: re.Match[str]) -> None:
    raise QueryParameterError(
        name,
        f"{name} filters by master data attributes, which this repository does not keep "
        "(EPCISMasterData in a capture is accepted and ignored)",
    )


def _order_by(query: SimpleEventQuery, name: str, raw: Sequence[str], _: re.Match[str]) -> None:
    value = _one(name, raw)
    if value not in ORDER_FIELDS:
        raise QueryParameterError(name, f"orderBy {value!r}: sort by eventTime or recordTime")
    query.order_by = value


def _order_direction(
    query: SimpleEventQuery, name: str, raw: Sequence[str], _: re.Match[str]
) -> None:
    value = _one(name, raw).upper()
    if value not in {"ASC", "DESC"}:
        raise QueryParameterError(name, f"orderDirection {raw[0]!r} is not ASC or DESC")
    query.descending = value == "DESC"


def _count(attribute: str) -> Handler:
    def handle(query: SimpleEventQuery, name: str, raw: Sequence[str], _: re.Match[str]) -> None:
        setattr(query, attribute, _integer(name, _one(name, raw), minimum=1))

    return handle


def _per_page(query: SimpleEventQuery, name: str, raw: Sequence[str], _: re.Match[str]) -> None:
    query.per_page = _integer(name, _one(name, raw), minimum=1)
    if query.per_page > MAX_PER_PAGE:
        raise QueryParameterError(name, f"perPage must be 1..{MAX_PER_PAGE}, got {query.per_page}")


def _page_token(query: SimpleEventQuery, name: str, raw: Sequence[str], _: re.Match[str]) -> None:
    query.next_page_token = _one(name, raw)


def _ops(*ops: str) -> str:
    return "(?P<op>" + "|".join(ops) + ")"


_ORDERED = _ops("GT", "GE", "LT", "LE")
_ANY_OP = _ops(*_COMPARE)

# (pattern, handler): the first full match wins, so specific names come before patterns.
_RULES: Final[list[tuple[re.Pattern[str], Handler]]] = [
    (re.compile(p), h)
    for p, h in [
        (r"eventType", _event_type),
        (rf"{_ORDERED}_eventTime", _time_bound("event_time")),
        (rf"{_ORDERED}_recordTime", _time_bound("record_time")),
        (r"EQ_action", _action),
        (r"EQ_bizStep", _set_list("biz_steps", match.biz_step_spellings)),
        (r"EQ_disposition", _set_list("dispositions", match.disposition_spellings)),
        (r"(?:EQ|WD)_readPoint", _set_list("read_points")),
        (r"(?:EQ|WD)_bizLocation", _set_list("biz_locations")),
        (r"EQ_eventID", _set_list("event_ids")),
        ("|".join(MATCH_FIELDS), _match),
        (r"EXISTS_errorDeclaration", _exists_error_declaration),
        (r"(?P<op>GE|LT)_errorDeclaration_?Time", _json_check(_error_field("declarationTime"))),
        (r"EQ_errorReason", _json_check(_error_field("reason"))),
        (r"EQ_correctiveEventID", _json_check(_error_field("correctiveEventIDs"))),
        (r"EQ_transformationID", _json_check(_field_contains(("transformationID",)))),
        (
            r"EQ_persistentDisposition_set",
            _json_check(_field_contains(("persistentDisposition", "set"))),
        ),
        (
            r"EQ_persistentDisposition_unset",
            _json_check(_field_contains(("persistentDisposition", "unset"))),
        ),
        (rf"{_ANY_OP}_quantity(?:_(?P<uom>{_UOM}))?", _json_check(_quantity)),
        (r"EXISTS_sensorElementList", _json_check(_sensor_list)),
        (r"(?P<op>GE|LT)_(?P<attr>time|startTime|endTime)(?P<uom>)", _json_check(_sensor)),
        (
            r"(?P<op>EQ)_(?P<attr>type|deviceID|dataProcessingMethod|microorganism|"
            r"chemicalSubstance|bizRules|stringValue|booleanValue|hexBinaryValue|uriValue"
            r"|exception|component)(?P<uom>)",
            _json_check(_sensor),
        ),
        (rf"{_ANY_OP}_(?P<attr>percRank)(?P<uom>)", _json_check(_sensor)),
        (
            rf"{_ANY_OP}_(?P<attr>{'|'.join(_SENSOR_NUMBERS)})_(?P<uom>{_UOM})",
            _json_check(_sensor),
        ),
        (r"EQ_bizTransaction_(?P<type>\w+)", _json_check(_typed_list("bizTransactionList"))),
        (r"EQ_source_(?P<type>\w+)", _json_check(_typed_list("sourceList"))),
        (r"EQ_destination_(?P<type>\w+)", _json_check(_typed_list("destinationList"))),
        (r"HASATTR_.+|EQ_ATTR_.+", _master_data),
        (
            rf"(?P<op>EXISTS|EQ|GT|GE|LT|LE)_(?P<inner>INNER_)?ILMD_(?P<field>{_EXT})",
            _json_check(_extension("ilmd")),
        ),
        (
            rf"(?P<op>EXISTS|EQ|GT|GE|LT|LE)_(?P<inner>INNER_)?ERROR_DECLARATION_(?P<field>{_EXT})",
            _json_check(_extension("errorDeclaration")),
        ),
        (
            rf"(?P<op>EQ)_(?P<inner>INNER_)?readPoint_(?P<field>{_EXT})",
            _json_check(_extension("readPoint")),
        ),
        (
            rf"(?P<op>EQ)_(?P<inner>INNER_)?bizLocation_(?P<field>{_EXT})",
            _json_check(_extension("bizLocation")),
        ),
        (
            rf"(?P<op>EXISTS|EQ|GT|GE|LT|LE)_(?P<inner>INNER_)?(?P<field>{_EXT})",
            _json_check(_extension("event")),
        ),
        (rf"EXISTS_(?P<field>{'|'.join(match.STANDARD_FIELDS)})", _json_check(_exists)),
        (r"orderBy", _order_by),
        (r"orderDirection", _order_direction),
        (r"eventCountLimit", _count("event_count_limit")),
        (r"maxEventCount", _count("max_event_count")),
        (r"perPage", _per_page),
        (r"nextPageToken", _page_token),
    ]
]


def parse(
    params: Sequence[tuple[str, str]],
    *,
    namespaces: Mapping[str, str] | None = None,
    ignore: frozenset[str] = frozenset(),
) -> SimpleEventQuery:
    """Read query parameters (name, value pairs in request order) into a query.

    ``namespaces`` are the prefixes the client declared (the ``GS1-Extensions`` header), used
    to compare extension names written with another prefix or as full URIs. Names in ``ignore``
    belong to the route, not the query language (e.g. a WebSocket's ``stream``).
    """
    grouped: dict[str, list[str]] = {}
    for name, value in params:
        if name not in ignore:
            grouped.setdefault(name, []).append(value)
    query = SimpleEventQuery(
        params=tuple((k, v) for k, v in params if k not in ignore),
    )
    for name, raw in grouped.items():
        for pattern, handle in _RULES:
            found = pattern.fullmatch(name)
            if found is not None:
                handle(query, name, raw, found)
                break
        else:
            raise QueryParameterError(
                name,
                f"unknown query parameter {name!r}: not an EPCIS 2.0 query parameter "
                "(names are case-sensitive, e.g. EQ_bizStep, GE_eventTime, MATCH_epc)",
            )
    if query.event_count_limit is not None and query.max_event_count is not None:
        raise QueryParameterError(
            "eventCountLimit", "eventCountLimit and maxEventCount may not be given together"
        )
    if query.order_by is not None and "orderDirection" not in grouped:
        query.descending = True  # EPCIS: orderDirection defaults to DESC when orderBy is given
    if "orderDirection" in grouped and query.order_by is None:
        raise QueryParameterError("orderDirection", "orderDirection needs orderBy")
    for check in query.checks:
        check.bind(namespaces or {})
    return query


def as_params(query: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A stored named query's JSON (name → value or list) as request-style parameters."""
    pairs: list[tuple[str, str]] = []
    for name, value in query.items():
        if name == "@context":
            continue
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, bool):
                pairs.append((name, "true" if item else "false"))
            elif item is None:
                pairs.append((name, ""))
            else:
                pairs.append((name, str(item)))
    return pairs


def parse_extensions_header(value: str | None) -> dict[str, str]:
    """The ``GS1-Extensions`` header: ``prefix=namespace`` pairs separated by commas."""
    found: dict[str, str] = {}
    for part in (value or "").split(","):
        prefix, sep, namespace = part.strip().partition("=")
        if sep and prefix.strip() and namespace.strip():
            found[prefix.strip()] = namespace.strip().strip('"')
    return found
