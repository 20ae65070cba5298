"""Building blocks of the EPCIS 2.0 models: field types and the two kinds of EPCIS object.

Each field type validates what the EPCIS 2.0 JSON Schema checks for that field and reports
errors with a message that says what is expected. EPCIS objects either forbid unknown keys
(:class:`ClosedObject`) or have an extension point for namespaced keys
(:class:`ExtensibleObject`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from functools import cache
from typing import Annotated, Any, Final, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    PlainValidator,
    SerializerFunctionWrapHandler,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_serializer,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from digital_village.trace import vocab

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:[^\s<>\"{}|\\^`]+$")
_EXTENSION_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:\S+$")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def field_error(field: str, message: str) -> PydanticCustomError:
    # The field travels in ctx so that parse errors can point at it with a JSON pointer even
    # when the rule spans several fields and pydantic reports it on the whole object.
    return PydanticCustomError(
        "epcis_rule", "{field}: {message}", {"field": field, "message": message}
    )


def _uri(value: str) -> str:
    if not value.isascii() or not _URI.match(value):
        raise PydanticCustomError(
            "epcis_uri",
            "'{value}' is not an absolute URI (scheme:rest, no spaces, non-ASCII percent-encoded)",
            {"value": value},
        )
    return value


# JSON-LD 1.1 §9.4 (blank node identifiers): "_:" and a label, legal wherever an @id is.
_BLANK_NODE = re.compile(r"^_:[^\s<>\"{}|\\^`]+$")


def _node_id(value: str) -> str:
    if value.isascii() and _BLANK_NODE.match(value):
        return value
    return _uri(value)


def _rfc3339(value: object) -> object:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise PydanticCustomError(
            "epcis_time",
            "must be an RFC 3339 date-time with an offset, e.g. 2024-05-01T08:30:00+08:00",
        )
    return value


def _number(value: object) -> int | float:
    # JSON numbers only: booleans and numeric strings are refused, as the schema does.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError("epcis_number", "must be a JSON number")
    if isinstance(value, float) and not math.isfinite(value):
        raise PydanticCustomError("epcis_number", "must be a finite number")
    return value


def _unique(values: list[str]) -> list[str]:
    if len(set(values)) != len(values):
        raise PydanticCustomError("epcis_unique", "list items must be unique")
    return values


def _vocabulary(
    kind: str, words: frozenset[str], forbidden: re.Pattern[str]
) -> Callable[[str], str]:
    def check(value: str) -> str:
        if value in words:
            return value
        if forbidden.match(value):
            bare = re.split(r"[:/-]", value)[-1]
            raise PydanticCustomError(
                "epcis_vocabulary",
                "standard {kind} values are written as bare words in EPCIS 2.0 JSON: "
                "use '{bare}' instead of '{value}'",
                {"kind": kind, "bare": bare, "value": value},
            )
        if ":" not in value:
            raise PydanticCustomError(
                "epcis_vocabulary",
                "'{value}' is neither a standard {kind} nor a URI",
                {"value": value, "kind": kind},
            )
        return _uri(value)

    return check


def _context(value: object) -> str | dict[str, Any] | list[str | dict[str, Any]]:
    if isinstance(value, str):
        return _uri(value)
    if isinstance(value, dict):
        return value
    if isinstance(value, list) and all(isinstance(item, str | dict) for item in value):
        for item in value:
            if isinstance(item, str):
                _uri(item)
        return value
    raise PydanticCustomError("epcis_context", "must be a URI, an object or a list of those")


def _certification_info(value: object) -> str | list[str]:
    if isinstance(value, str):
        return _uri(value)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return [_uri(item) for item in value]
    raise PydanticCustomError("epcis_uri", "must be a URI or a list of URIs")


Uri = Annotated[str, AfterValidator(_uri)]
NodeId = Annotated[str, AfterValidator(_node_id)]
"""A JSON-LD node identifier: an absolute URI or a blank node (``_:document1``)."""
Time = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]
Number = Annotated[float | int, PlainValidator(_number)]
TimeZoneOffset = Annotated[
    str, StringConstraints(pattern=r"^[+-]((0[0-9]|1[0-3]):[0-5][0-9]|14:00)$")
]
Uom = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9]{2,3}$")]
EpcList = Annotated[list[Uri], AfterValidator(_unique)]
Context = Annotated[str | dict[str, Any] | list[str | dict[str, Any]], PlainValidator(_context)]
CertificationInfo = Annotated[str | list[str], PlainValidator(_certification_info)]
BizStep = Annotated[
    str, AfterValidator(_vocabulary("bizStep", vocab.CBV_BIZSTEPS, vocab.CBV_URI_FORBIDDEN))
]
Disposition = Annotated[
    str,
    AfterValidator(_vocabulary("disposition", vocab.CBV_DISPOSITIONS, vocab.CBV_URI_FORBIDDEN)),
]
BizTransactionType = Annotated[
    str,
    AfterValidator(
        _vocabulary(
            "business transaction type", vocab.CBV_BIZ_TRANSACTION_TYPES, vocab.CBV_URI_FORBIDDEN
        )
    ),
]
SourceDestType = Annotated[
    str,
    AfterValidator(
        _vocabulary("source/destination type", vocab.CBV_SOURCE_DEST_TYPES, vocab.CBV_URI_FORBIDDEN)
    ),
]
ErrorReason = Annotated[
    str,
    AfterValidator(_vocabulary("error reason", vocab.CBV_ERROR_REASONS, vocab.CBV_URI_FORBIDDEN)),
]
MeasurementType = Annotated[
    str,
    AfterValidator(
        _vocabulary("measurement type", vocab.GS1_MEASUREMENT_TYPES, vocab.GS1_VOC_URI_FORBIDDEN)
    ),
]
SensorAlertType = Annotated[
    str,
    AfterValidator(
        _vocabulary("sensor alert", vocab.CBV_SENSOR_ALERT_TYPES, vocab.GS1_VOC_URI_FORBIDDEN)
    ),
]
Component = Annotated[
    str,
    AfterValidator(_vocabulary("component", vocab.CBV_COMPONENTS, vocab.CBV_URI_FORBIDDEN)),
]
DispositionSet = Annotated[list[Disposition], Field(min_length=1), AfterValidator(_unique)]
HexBinary = Annotated[str, StringConstraints(pattern=r"^[A-Fa-f0-9]+$")]


def check_extension_keys(keys: Sequence[str]) -> None:
    for key in keys:
        if not _EXTENSION_KEY.match(key):
            raise field_error(
                key, "unknown field; extension fields need a namespace prefix such as 'dv:'"
            )


def check_extension_values(extra: Mapping[str, Any]) -> None:
    """Every extension value is JSON data (a model's extra keys may hold anything)."""
    for key, value in extra.items():
        if type(value) in _JSON_SCALARS:
            continue
        try:
            _JSON_VALUE.validate_python(value)
        except ValidationError:
            raise field_error(key, "an extension value must be JSON data") from None


def _ilmd_keys(value: dict[str, JsonValue]) -> dict[str, JsonValue]:
    check_extension_keys(list(value))
    return value


Ilmd = Annotated[dict[str, JsonValue], AfterValidator(_ilmd_keys)]


def check_farm_step(
    event_type: str, biz_step: str | None, action: str | None, extensions: Mapping[str, Any]
) -> None:
    """Enforce the project catalogue for events whose bizStep is a farming step."""
    if biz_step is None or not biz_step.startswith(vocab.DV_BIZSTEP):
        return
    step = vocab.farm_step(biz_step)
    if step is None:
        raise field_error("bizStep", f"'{biz_step}' is not a project farming step")
    if step.event_type != event_type:
        raise field_error("bizStep", f"{step.key} is recorded as a {step.event_type}")
    if step.action is not None and action != step.action:
        raise field_error("action", f"{step.key} events have action {step.action}")
    for required in step.required_fields:
        _check_required_extension(required, extensions.get(required.key))


def _check_required_extension(required: vocab.ExtensionField, value: object) -> None:
    key = required.key
    if value is None:
        raise field_error(key, f"required ({required.label_en} / {required.label_zh})")
    if required.kind == "string" and not (isinstance(value, str) and value.strip()):
        raise field_error(key, "must be a non-empty string")
    if required.kind == "integer" and (
        isinstance(value, bool) or not isinstance(value, int) or value < 0
    ):
        raise field_error(key, "must be a whole number >= 0")
    if required.kind == "quantity":
        amount = value.get(f"{vocab.DV_PREFIX}:quantity") if isinstance(value, dict) else None
        unit = value.get(f"{vocab.DV_PREFIX}:uom") if isinstance(value, dict) else None
        if (
            isinstance(amount, bool)
            or not isinstance(amount, int | float)
            or amount <= 0
            or not isinstance(unit, str)
            or not re.fullmatch(r"[A-Z0-9]{2,3}", unit)
        ):
            raise field_error(
                key, 'must be {"dv:quantity": <positive number>, "dv:uom": "<Rec 20 code>"}'
            )


_JSON_VALUE: TypeAdapter[JsonValue] = TypeAdapter(JsonValue)
_CONFIG = ConfigDict(
    alias_generator=to_camel,
    validate_by_name=True,
    validate_by_alias=True,
    serialize_by_alias=True,
)


# Extension values of these types are JSON data as they stand.
_JSON_SCALARS: Final = frozenset({str, int, float, bool, type(None)})


@cache
def _json_names(model: type[BaseModel]) -> frozenset[str]:
    """The JSON names of a model's standard fields (fixed once the class exists)."""
    return frozenset(info.alias or name for name, info in model.model_fields.items())


def _reject_nulls(model: type[BaseModel], data: Any) -> Any:
    # The schema has no nullable fields; None is how a model says "absent", so an explicit
    # JSON null under a standard key would silently vanish on the way out.
    if isinstance(data, Mapping):
        aliases = _json_names(model)
        for key, value in data.items():
            if value is None and key in aliases:
                raise field_error(key, "null is not allowed; leave the field out instead")
    return data


class ClosedObject(BaseModel):
    """An EPCIS object without an extension point (the schema forbids other keys)."""

    model_config = ConfigDict(**_CONFIG, extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        return _reject_nulls(cls, data)


class ExtensibleObject(BaseModel):
    """An EPCIS object with an extension point: other keys must be namespaced; they are kept."""

    model_config = ConfigDict(**_CONFIG, extra="allow")

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        return _reject_nulls(cls, data)

    @model_validator(mode="after")
    def _namespaced_extensions(self) -> Self:
        extra = self.model_extra or {}
        check_extension_keys(list(extra))
        check_extension_values(extra)
        return self

    @model_serializer(mode="wrap")
    def _keep_extensions(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        dumped: dict[str, Any] = handler(self)
        # Extensions go out verbatim: exclude_none must not drop a null that one carries.
        dumped.update(self.model_extra or {})
        return dumped

    @property
    def extensions(self) -> dict[str, Any]:
        """The extension fields, keyed as written (``"dv:parcel"``)."""
        return dict(self.model_extra or {})
