"""EPCIS 2.0 event model: Pydantic v2 mirrors of the official EPCIS 2.0 JSON Schema.

The models accept and produce EPCIS 2.0 JSON/JSON-LD: ``model_validate`` takes the JSON keys
(``eventTime``, ``bizStep``, ...) and :func:`dump_epcis` writes them back. Every rule the schema
enforces (required fields per event type, CBV enumerations, bare CBV words instead of URNs,
unit code syntax, ILMD only on ADD, ...) is enforced here too, and each error names its field.
Extension fields are namespaced keys (``"dv:parcel"``) and survive a round trip unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal, Self, TypeVar, cast

import orjson
from pydantic import (
    Discriminator,
    Field,
    JsonValue,
    StringConstraints,
    Tag,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from digital_village.trace import event_hash
from digital_village.trace.epcis_fields import (
    BizStep,
    BizTransactionType,
    CertificationInfo,
    ClosedObject,
    Component,
    Context,
    Disposition,
    DispositionSet,
    EpcList,
    ErrorReason,
    ExtensibleObject,
    HexBinary,
    Ilmd,
    MeasurementType,
    NodeId,
    Number,
    SensorAlertType,
    SourceDestType,
    Time,
    TimeZoneOffset,
    Uom,
    Uri,
    check_extension_values,
    check_farm_step,
    field_error,
)
from digital_village.trace.vocab import DV_PREFIX, DV_VOCAB, EPCIS_CONTEXT_URL, Action


class ReadPoint(ExtensibleObject):
    """Where the event was observed (a parcel, a press, a scanner)."""

    id: Uri


class BizLocation(ExtensibleObject):
    """Where the objects are expected to be after the event."""

    id: Uri


class QuantityElement(ClosedObject):
    """An amount of a class of objects (a lot), optionally with a UN/ECE Rec 20 unit."""

    epc_class: Uri
    quantity: Number | None = None
    uom: Uom | None = None


class PersistentDisposition(ClosedObject):
    """Dispositions set or unset on the objects until changed again."""

    set_values: DispositionSet | None = Field(default=None, alias="set")
    unset_values: DispositionSet | None = Field(default=None, alias="unset")

    @model_validator(mode="after")
    def _set_or_unset(self) -> Self:
        if self.set_values is None and self.unset_values is None:
            raise field_error("set", "persistentDisposition needs 'set' or 'unset'")
        return self


class BizTransaction(ClosedObject):
    """A business transaction (purchase order, invoice, ...) the event belongs to."""

    type: BizTransactionType | None = None
    biz_transaction: Uri


class Source(ClosedObject):
    """Where the objects come from (owning party, possessing party or location)."""

    type: SourceDestType
    source: Uri


class Destination(ClosedObject):
    """Where the objects go to (owning party, possessing party or location)."""

    type: SourceDestType
    destination: Uri


class ErrorDeclaration(ExtensibleObject):
    """Marks the event as erroneous; corrective events are listed by their eventIDs."""

    declaration_time: Time
    reason: ErrorReason | None = None
    corrective_event_ids: list[Uri] | None = Field(default=None, alias="correctiveEventIDs")


class SensorMetadata(ExtensibleObject):
    """Facts shared by the reports of one sensor element."""

    time: Time | None = None
    device_id: Uri | None = Field(default=None, alias="deviceID")
    device_metadata: Uri | None = None
    raw_data: Uri | None = None
    start_time: Time | None = None
    end_time: Time | None = None
    data_processing_method: Uri | None = None
    biz_rules: Uri | None = None


class SensorReport(ExtensibleObject):
    """One sensor measurement (temperature, soil moisture, ...)."""

    type: MeasurementType
    exception: SensorAlertType | None = None
    device_id: Uri | None = Field(default=None, alias="deviceID")
    device_metadata: Uri | None = None
    raw_data: Uri | None = None
    data_processing_method: Uri | None = None
    biz_rules: Uri | None = None
    time: Time | None = None
    microorganism: Uri | None = None
    chemical_substance: Uri | None = None
    coordinate_reference_system: Uri | None = None
    value: Number | None = None
    component: Component | None = None
    string_value: str | None = None
    boolean_value: bool | None = Field(default=None, strict=True)
    hex_binary_value: HexBinary | None = None
    uri_value: Uri | None = None
    min_value: Number | None = None
    max_value: Number | None = None
    mean_value: Number | None = None
    s_dev: Number | None = None
    perc_rank: Number | None = None
    perc_value: Number | None = None
    uom: str | None = None


class SensorElement(ExtensibleObject):
    """Sensor reports with their shared metadata."""

    sensor_metadata: SensorMetadata | None = None
    sensor_report: list[SensorReport] = Field(min_length=1)


class _EventBase(ExtensibleObject):
    """Fields shared by every EPCIS event type."""

    type: str
    context: Context | None = Field(default=None, alias="@context")
    event_time: Time
    record_time: Time | None = None
    event_time_zone_offset: TimeZoneOffset
    event_id: Uri | None = Field(default=None, alias="eventID")
    certification_info: CertificationInfo | None = None
    error_declaration: ErrorDeclaration | None = None
    biz_step: BizStep | None = None
    disposition: Disposition | None = None
    read_point: ReadPoint | None = None
    biz_location: BizLocation | None = None
    biz_transaction_list: list[BizTransaction] | None = None
    source_list: list[Source] | None = None
    destination_list: list[Destination] | None = None
    sensor_element_list: list[SensorElement] | None = None

    @model_validator(mode="after")
    def _farm_step_rules(self) -> Self:
        check_farm_step(self.type, self.biz_step, getattr(self, "action", None), self.extensions)
        return self


def _needs_one_of(
    event: _EventBase, candidates: Sequence[tuple[str, Sequence[Any] | None]], message: str
) -> None:
    if getattr(event, "action", None) == "DELETE":
        return
    if not any(values for _, values in candidates):
        raise field_error(candidates[0][0], message)


class ObjectEvent(_EventBase):
    """Something happened to objects: observed, created (ADD) or retired (DELETE)."""

    type: Literal["ObjectEvent"] = "ObjectEvent"
    action: Action
    epc_list: EpcList | None = None
    quantity_list: list[QuantityElement] | None = None
    persistent_disposition: PersistentDisposition | None = None
    ilmd: Ilmd | None = None

    @model_validator(mode="after")
    def _object_rules(self) -> Self:
        sensed = bool(self.sensor_element_list) and self.read_point is not None
        if self.epc_list is None and not self.quantity_list and not sensed:
            raise field_error(
                "epcList",
                "an ObjectEvent needs epcList, a non-empty quantityList, "
                "or sensorElementList with readPoint",
            )
        if self.ilmd is not None and self.action != "ADD":
            raise field_error("ilmd", "instance/lot master data is only allowed on action ADD")
        return self


class _ParentChildEvent(_EventBase):
    """Fields and rule of the events about a parent and its children."""

    action: Action
    parent_id: Uri | None = Field(default=None, alias="parentID")
    child_epcs: list[Uri] | None = Field(default=None, alias="childEPCs")
    child_quantity_list: list[QuantityElement] | None = None

    @model_validator(mode="after")
    def _children(self) -> Self:
        _needs_one_of(
            self,
            [("childEPCs", self.child_epcs), ("childQuantityList", self.child_quantity_list)],
            "needs non-empty childEPCs or childQuantityList unless action is DELETE",
        )
        return self


class AggregationEvent(_ParentChildEvent):
    """Objects were packed into (ADD) or taken out of (DELETE) a parent, such as a case."""

    type: Literal["AggregationEvent"] = "AggregationEvent"


class AssociationEvent(_ParentChildEvent):
    """Objects were associated with a parent (a sensor with a pallet, a crate with a field)."""

    type: Literal["AssociationEvent"] = "AssociationEvent"
    parent_id: Uri = Field(alias="parentID")


class TransactionEvent(_EventBase):
    """Objects were tied to (ADD) or released from (DELETE) business transactions."""

    type: Literal["TransactionEvent"] = "TransactionEvent"
    action: Action
    biz_transaction_list: list[BizTransaction] = Field(min_length=1)
    parent_id: Uri | None = Field(default=None, alias="parentID")
    epc_list: EpcList | None = None
    quantity_list: list[QuantityElement] | None = None

    @model_validator(mode="after")
    def _objects(self) -> Self:
        _needs_one_of(
            self,
            [("epcList", self.epc_list), ("quantityList", self.quantity_list)],
            "needs non-empty epcList or quantityList unless action is DELETE",
        )
        return self


class TransformationEvent(_EventBase):
    """Inputs were consumed and outputs produced (pressing seed into oil, milling grain)."""

    type: Literal["TransformationEvent"] = "TransformationEvent"
    input_epc_list: EpcList | None = Field(default=None, alias="inputEPCList")
    input_quantity_list: list[QuantityElement] | None = None
    output_epc_list: EpcList | None = Field(default=None, alias="outputEPCList")
    output_quantity_list: list[QuantityElement] | None = None
    transformation_id: Uri | None = Field(default=None, alias="transformationID")
    persistent_disposition: PersistentDisposition | None = None
    ilmd: Ilmd | None = None

    @model_validator(mode="after")
    def _inputs_and_outputs(self) -> Self:
        has_input = bool(self.input_epc_list) or bool(self.input_quantity_list)
        has_output = bool(self.output_epc_list) or bool(self.output_quantity_list)
        if has_input and has_output:
            return self
        if self.transformation_id is not None and (has_input or has_output):
            return self
        if not has_input:
            raise field_error(
                "inputEPCList",
                "needs inputs and outputs, or a transformationID with inputs or outputs "
                "(inputEPCList/inputQuantityList)",
            )
        raise field_error(
            "outputEPCList",
            "needs outputs (outputEPCList/outputQuantityList) or a transformationID",
        )


EVENT_TYPES: frozenset[str] = frozenset(
    (
        "ObjectEvent",
        "AggregationEvent",
        "AssociationEvent",
        "TransactionEvent",
        "TransformationEvent",
    )
)
_EXTENDED: Final = "ExtendedEvent"


class ExtendedEvent(_EventBase):
    """An event of a type EPCIS leaves open to extension (GS1's schema: ``Extended-Event``).

    Its ``type`` is a URI other than the five standard names; it has the fields every event
    has, and any others as sent (the schema constrains no other key of such an event).
    """

    type: Uri

    @model_validator(mode="after")
    def _namespaced_extensions(self) -> Self:
        check_extension_values(self.model_extra or {})
        return self


def _event_tag(value: Any) -> str | None:
    kind = value.get("type") if isinstance(value, Mapping) else getattr(value, "type", None)
    if kind in EVENT_TYPES:
        return str(kind)
    if isinstance(kind, str) and ":" in kind:
        return _EXTENDED
    return None


EventModel = (
    ObjectEvent
    | AggregationEvent
    | AssociationEvent
    | TransactionEvent
    | TransformationEvent
    | ExtendedEvent
)
Event = Annotated[
    Annotated[ObjectEvent, Tag("ObjectEvent")]
    | Annotated[AggregationEvent, Tag("AggregationEvent")]
    | Annotated[AssociationEvent, Tag("AssociationEvent")]
    | Annotated[TransactionEvent, Tag("TransactionEvent")]
    | Annotated[TransformationEvent, Tag("TransformationEvent")]
    | Annotated[ExtendedEvent, Tag(_EXTENDED)],
    Discriminator(
        _event_tag,
        custom_error_type="epcis_event_type",
        custom_error_message="type must be ObjectEvent, AggregationEvent, AssociationEvent, "
        "TransactionEvent, TransformationEvent, or a URI naming an extension event type",
    ),
]


def default_context() -> list[str | dict[str, Any]]:
    """The JSON-LD @context the project writes: GS1's EPCIS context plus the ``dv`` prefix."""
    return [EPCIS_CONTEXT_URL, {DV_PREFIX: DV_VOCAB}]


class EPCISBody(ExtensibleObject):
    """The body of an EPCIS document."""

    event_list: list[Event]


class EPCISDocument(ExtensibleObject):
    """An EPCIS 2.0 document: a list of events with a JSON-LD context.

    ``@context``, ``type`` and ``schemaVersion`` are required, as the schema requires them:
    :func:`make_document` fills them in for documents the project writes.
    """

    context: Context = Field(alias="@context")
    type: Literal["EPCISDocument"]
    schema_version: Annotated[str, StringConstraints(pattern=r"^\d+(\.\d+)*$")]
    creation_date: Time
    id: NodeId | None = None
    instance_identifier: str | None = None
    sender: str | None = None
    receiver: str | None = None
    epcis_header: dict[str, JsonValue] | None = None
    epcis_body: EPCISBody


@dataclass(frozen=True, slots=True)
class Problem:
    """One validation problem, located by a JSON pointer into the parsed document."""

    pointer: str
    message: str

    def __str__(self) -> str:
        return f"{self.pointer}: {self.message}"


class EPCISParseError(ValueError):
    """The input is not a valid EPCIS 2.0 document or event; ``problems`` says where and why."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


def _escape(token: object) -> str:
    return str(token).replace("~", "~0").replace("/", "~1")


def problems_from(error: ValidationError) -> list[Problem]:
    """Turn a pydantic ValidationError into problems with JSON pointers (RFC 6901)."""
    problems = []
    for detail in error.errors():
        loc = list(detail["loc"])
        # A discriminated union adds the event type as a pseudo path step: drop it.
        path = [
            step
            for index, step in enumerate(loc)
            if not (
                (step in EVENT_TYPES or step == _EXTENDED)
                and (index == 0 or isinstance(loc[index - 1], int))
            )
        ]
        message = detail["msg"]
        context = detail.get("ctx") or {}
        if detail["type"] == "epcis_rule":
            path.append(context["field"])
            message = context["message"]
        elif detail["type"] in {"union_tag_invalid", "union_tag_not_found", "epcis_event_type"}:
            path.append("type")
        pointer = "".join(f"/{_escape(step)}" for step in path)
        problems.append(Problem(pointer, message))
    return problems


def _load(data: bytes | str | Mapping[str, Any]) -> Any:
    if isinstance(data, Mapping):
        return data
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise EPCISParseError([Problem("", f"invalid JSON: {exc}")]) from exc


def parse_document(data: bytes | str | Mapping[str, Any]) -> EPCISDocument:
    """Parse an EPCIS 2.0 JSON document; raise EPCISParseError listing every problem."""
    try:
        return EPCISDocument.model_validate(_load(data))
    except ValidationError as exc:
        raise EPCISParseError(problems_from(exc)) from exc


_EVENT_ADAPTER: TypeAdapter[EventModel] = TypeAdapter(Event)


def parse_event(data: bytes | str | Mapping[str, Any]) -> EventModel:
    """Parse one EPCIS 2.0 event (any of the five types) from JSON or a dict."""
    try:
        return _EVENT_ADAPTER.validate_python(_load(data))
    except ValidationError as exc:
        raise EPCISParseError(problems_from(exc)) from exc


def dump_epcis(model: EPCISDocument | EventModel, *, standalone: bool = True) -> dict[str, Any]:
    """Dump a document or event to its EPCIS JSON-LD dict (aliases, no None values).

    A standalone event gets the project's @context, which the schema requires at top level;
    pass ``standalone=False`` for an event that will sit inside a document's eventList.
    """
    dumped: dict[str, Any] = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    if standalone and not isinstance(model, EPCISDocument) and "@context" not in dumped:
        dumped = {"@context": default_context(), **dumped}
    return dumped


def make_document(
    events: Sequence[EventModel], *, creation_date: datetime | None = None
) -> EPCISDocument:
    """Wrap events in an EPCIS document with the project's @context."""
    return EPCISDocument.model_validate(
        {
            "@context": default_context(),
            "type": "EPCISDocument",
            "schemaVersion": "2.0",
            "creationDate": creation_date or datetime.now(UTC),
            "epcisBody": EPCISBody(event_list=list(events)),
        }
    )


EventT = TypeVar("EventT", bound=EventModel)


def compute_event_id(event: EventModel, *, context: object = None) -> str:
    """The CBV 2.0 EPCIS Event Hash ID of an event (``ni:///sha-256;...?ver=CBV2.0``).

    ``context`` is the @context of the enclosing document when the event has none itself;
    without either, the project's default context (GS1 + ``dv``) defines the prefixes.
    """
    return event_hash.event_hash_id(
        dump_epcis(event, standalone=False), context=context or default_context()
    )


def with_event_id(event: EventT, *, context: object = None) -> EventT:
    """Return a copy of the event whose eventID is its CBV 2.0 Event Hash ID."""
    updated = event.model_copy(update={"event_id": compute_event_id(event, context=context)})
    return cast(EventT, updated)  # model_copy keeps the class; mypy loses it over the union
