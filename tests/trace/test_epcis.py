"""EPCIS 2.0 models: schema conformance, validation errors, round trips and event hash IDs."""

from __future__ import annotations

import copy
import json
import random
import re
import string
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft7Validator, FormatChecker

from digital_village.trace import digital_link, epcis, event_hash, vocab
from digital_village.trace.epcis import EPCISParseError, ObjectEvent

from . import farm_chain

SCHEMA_PATH = Path(__file__).resolve().parents[2].parent / "shared/standards/EPCIS-JSON-Schema.json"
VECTORS = json.loads((Path(__file__).parent / "cbv_event_hash_vectors.json").read_text("utf-8"))
CREATED = datetime(2024, 6, 6, 9, 0, tzinfo=timezone(timedelta(hours=8)))


# jsonschema checks the "uri" and "date-time" formats only with optional packages that the
# project does not install; these strict stand-ins make the schema's format rules bite.
FORMATS = FormatChecker()


@FORMATS.checks("uri")
def _is_uri(value: object) -> bool:
    pattern = r"[A-Za-z][A-Za-z0-9+.\-]*:[^\s<>\"{}|\\^`]+"
    return not isinstance(value, str) or (
        value.isascii() and re.fullmatch(pattern, value) is not None
    )


@FORMATS.checks("date-time")
def _is_date_time(value: object) -> bool:
    pattern = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)"
    return not isinstance(value, str) or re.fullmatch(pattern, value) is not None


@pytest.fixture(scope="module")
def schema() -> Draft7Validator:
    if not SCHEMA_PATH.is_file():
        pytest.skip(f"official EPCIS 2.0 JSON Schema not found at {SCHEMA_PATH}")
    schema = json.loads(SCHEMA_PATH.read_text("utf-8"))
    return Draft7Validator(schema, format_checker=FORMATS)


def schema_errors(validator: Draft7Validator, instance: dict[str, Any]) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(instance)
    ]


def chain_document() -> epcis.EPCISDocument:
    events = [epcis.parse_event(event) for event in farm_chain.chain()]
    original = events[4]  # the harvest
    corrected = epcis.with_event_id(epcis.parse_event(farm_chain.harvesting(kilograms=1805)))
    declaration = epcis.parse_event(
        {
            **farm_chain.harvesting(),
            "errorDeclaration": {
                "declarationTime": "2024-05-21T09:00:00+08:00",
                "reason": "incorrect_data",
                "correctiveEventIDs": [corrected.event_id],
            },
        }
    )
    events = [*events, epcis.with_event_id(declaration), corrected]
    assert original.type == "ObjectEvent"
    return epcis.make_document([epcis.with_event_id(e) for e in events], creation_date=CREATED)


# --- the official schema accepts what the models produce -------------------------------------


def test_farming_chain_document_validates_against_official_schema(
    schema: Draft7Validator,
) -> None:
    dumped = epcis.dump_epcis(chain_document())
    assert dumped["@context"] == [
        "https://ref.gs1.org/standards/epcis/epcis-context.jsonld",
        {"dv": vocab.DV_VOCAB},
    ]
    assert len(dumped["epcisBody"]["eventList"]) == 10
    assert schema_errors(schema, dumped) == []
    # Every event also stands alone with its own @context, as the schema requires then.
    for event in chain_document().epcis_body.event_list:
        assert schema_errors(schema, epcis.dump_epcis(event)) == []


def test_schema_check_can_fail(schema: Draft7Validator) -> None:
    dumped = epcis.dump_epcis(chain_document())
    del dumped["epcisBody"]["eventList"][0]["action"]
    assert schema_errors(schema, dumped)


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda c: c["source"].rsplit("/", 1)[-1])
def test_published_documents_survive_the_models_and_the_schema(
    case: dict[str, Any], schema: Draft7Validator
) -> None:
    dumped = epcis.dump_epcis(epcis.parse_document(orjson.dumps(case["document"])))
    assert schema_errors(schema, dumped) == []


# --- invalid events are rejected, naming the field --------------------------------------------


def _without(event: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k not in keys}


INVALID: list[tuple[str, dict[str, Any], str, str]] = [
    ("missing action", _without(farm_chain.shipping(), "action"), "/action", "Field required"),
    ("bad action", {**farm_chain.shipping(), "action": "MOVE"}, "/action", "ADD"),
    ("CBV URN", {**farm_chain.shipping(), "bizStep": "urn:epcglobal:cbv:bizstep:shipping"},
     "/bizStep", "use 'shipping'"),
    ("unknown bare word", {**farm_chain.shipping(), "bizStep": "harvesting"}, "/bizStep",
     "neither a standard bizStep nor a URI"),
    ("bad disposition", {**farm_chain.shipping(), "disposition": "gone"}, "/disposition",
     "disposition"),
    ("null field", {**farm_chain.shipping(), "disposition": None}, "/disposition",
     "null is not allowed"),
    ("no offset", {**farm_chain.shipping(), "eventTime": "2024-06-05T14:00:00"}, "/eventTime",
     "RFC 3339"),
    ("bad zone", {**farm_chain.shipping(), "eventTimeZoneOffset": "+8:00"},
     "/eventTimeZoneOffset", "pattern"),
    ("lower-case unit", {**farm_chain.harvesting(),
     "quantityList": [{"epcClass": farm_chain.RAPESEED_LOT, "quantity": 1, "uom": "kg"}]},
     "/quantityList/0/uom", "pattern"),
    ("quantity as text", {**farm_chain.harvesting(),
     "quantityList": [{"epcClass": farm_chain.RAPESEED_LOT, "quantity": "1"}]},
     "/quantityList/0/quantity", "JSON number"),
    ("extra quantity key", {**farm_chain.harvesting(),
     "quantityList": [{"epcClass": farm_chain.RAPESEED_LOT, "lot": "x"}]},
     "/quantityList/0/lot", "Extra inputs"),
    ("ilmd on OBSERVE", {**farm_chain.shipping(), "ilmd": {"dv:x": 1}}, "/ilmd", "action ADD"),
    ("no objects", _without(farm_chain.shipping(), "epcList"), "/epcList", "needs epcList"),
    ("duplicate EPC", {**farm_chain.shipping(), "epcList": [farm_chain.CASE] * 2}, "/epcList",
     "unique"),
    ("bare key", {**farm_chain.shipping(), "parcel": farm_chain.PARCEL}, "/parcel",
     "namespace prefix"),
    ("not a URI", {**farm_chain.shipping(), "readPoint": {"id": "press line 1"}},
     "/readPoint/id", "absolute URI"),
    ("transformation without outputs", _without(farm_chain.pressing(), "outputQuantityList"),
     "/outputEPCList", "needs outputs"),
    ("aggregation without children", _without(farm_chain.packing(), "childEPCs"), "/childEPCs",
     "childEPCs or childQuantityList"),
    ("association without parent", _without(farm_chain.probe_on_parcel(), "parentID"),
     "/parentID", "Field required"),
    ("unknown type", {**farm_chain.shipping(), "type": "ShippingEvent"}, "/type", "tag"),
    ("empty persistentDisposition", {**farm_chain.shipping(), "persistentDisposition": {}},
     "/persistentDisposition/set", "'set' or 'unset'"),
    ("sensor report without type", {**farm_chain.soil_moisture(), "sensorElementList": [
        {"sensorReport": [{"value": 1}]}]}, "/sensorElementList/0/sensorReport/0/type",
     "Field required"),
    ("bad error reason", {**farm_chain.shipping(), "errorDeclaration": {
        "declarationTime": "2024-06-06T00:00:00Z", "reason": "oops"}},
     "/errorDeclaration/reason", "error reason"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "event", "pointer", "message"), INVALID, ids=[c[0] for c in INVALID]
)
def test_invalid_event_is_rejected_naming_the_field(
    name: str, event: dict[str, Any], pointer: str, message: str
) -> None:
    with pytest.raises(EPCISParseError) as caught:
        epcis.parse_event(event)
    problems = caught.value.problems
    assert [p.pointer for p in problems] == [pointer], problems
    assert message in problems[0].message


@pytest.mark.parametrize(
    ("name", "event", "pointer", "message"), INVALID, ids=[c[0] for c in INVALID]
)
def test_official_schema_rejects_the_same_events(
    name: str, event: dict[str, Any], pointer: str, message: str, schema: Draft7Validator
) -> None:
    assert schema_errors(schema, {"@context": epcis.default_context(), **event})


FARM_RULES = [
    ("spraying without pesticide name", _without(farm_chain.spraying(), "dv:pesticideName"),
     "/dv:pesticideName", "农药名称"),
    ("spraying with text dose", {**farm_chain.spraying(), "dv:dose": "1.2 L"}, "/dv:dose",
     "dv:quantity"),
    ("negative pre-harvest interval", {**farm_chain.spraying(), "dv:preHarvestIntervalDays": -1},
     "/dv:preHarvestIntervalDays", ">= 0"),
    ("harvest that does not create the lot", {**farm_chain.harvesting(), "action": "OBSERVE",
     "ilmd": None}, "/action", "ADD"),
    ("pressing as an ObjectEvent", {**farm_chain.shipping(),
     "bizStep": vocab.PRESSING.uri}, "/bizStep", "TransformationEvent"),
    ("unknown project step", {**farm_chain.shipping(), "bizStep": f"{vocab.DV_BIZSTEP}weeding"},
     "/bizStep", "not a project farming step"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "event", "pointer", "message"), FARM_RULES, ids=[c[0] for c in FARM_RULES]
)
def test_farming_step_rules(name: str, event: dict[str, Any], pointer: str, message: str) -> None:
    event = {k: v for k, v in event.items() if v is not None}
    with pytest.raises(EPCISParseError) as caught:
        epcis.parse_event(event)
    assert [(p.pointer, message in p.message) for p in caught.value.problems] == [(pointer, True)]


def test_document_errors_carry_json_pointers_per_event() -> None:
    events = farm_chain.chain()
    events[3] = {**events[3], "bizStep": "urn:epcglobal:cbv:bizstep:sensor_reporting"}
    events[5] = _without(events[5], "eventTime")
    document = {"@context": epcis.default_context(), "type": "EPCISDocument",
                "schemaVersion": "2.0", "creationDate": "2024-06-06T09:00:00+08:00",
                "epcisBody": {"eventList": events}}  # fmt: skip
    with pytest.raises(EPCISParseError) as caught:
        epcis.parse_document(orjson.dumps(document))
    lines = str(caught.value).splitlines()
    assert lines == [
        "/epcisBody/eventList/3/bizStep: standard bizStep values are written as bare words in "
        "EPCIS 2.0 JSON: use 'sensor_reporting' instead of "
        "'urn:epcglobal:cbv:bizstep:sensor_reporting'",
        "/epcisBody/eventList/5/eventTime: Field required",
    ]


def test_invalid_json_is_a_parse_error() -> None:
    with pytest.raises(EPCISParseError, match="invalid JSON"):
        epcis.parse_document(b'{"type": "EPCISDocument",')


def test_document_requires_body_and_creation_date() -> None:
    with pytest.raises(EPCISParseError) as caught:
        epcis.parse_document(b'{"type": "EPCISDocument"}')
    assert {p.pointer for p in caught.value.problems} == {
        "/@context",
        "/schemaVersion",
        "/creationDate",
        "/epcisBody",
    }


@pytest.mark.parametrize("key", ["@context", "type", "schemaVersion"])
def test_a_document_lacking_what_the_schema_requires_is_refused(
    key: str, schema: Draft7Validator
) -> None:
    document = epcis.dump_epcis(chain_document())
    del document[key]
    assert schema_errors(schema, document)
    with pytest.raises(EPCISParseError) as caught:
        epcis.parse_document(document)
    assert [(p.pointer, p.message) for p in caught.value.problems] == [
        (f"/{key}", "Field required")
    ]


# --- extensions and round trips ----------------------------------------------------------------


def test_extension_fields_round_trip_unchanged() -> None:
    source = farm_chain.spraying()
    source["readPoint"] = {"id": farm_chain.PARCEL, "dv:plot": {"dv:row": [1, 2, 3]}}
    event = epcis.parse_event(orjson.dumps(source))
    assert event.extensions["dv:dose"] == {"dv:quantity": 1.2, "dv:uom": "LTR"}
    assert event.read_point is not None
    assert event.read_point.extensions == {"dv:plot": {"dv:row": [1, 2, 3]}}
    dumped = epcis.dump_epcis(event, standalone=False)
    assert {k: v for k, v in dumped.items() if k.startswith("dv:")} == {
        k: v for k, v in source.items() if k.startswith("dv:")
    }
    assert dumped["readPoint"] == source["readPoint"]
    assert epcis.parse_event(dumped) == event


def test_harvest_ilmd_keeps_unicode_and_numbers() -> None:
    event = epcis.parse_event(orjson.dumps(farm_chain.harvesting()))
    assert isinstance(event, ObjectEvent)
    assert event.ilmd == farm_chain.harvesting()["ilmd"]
    assert epcis.dump_epcis(event)["ilmd"]["dv:variety"] == "中双11号"


_SEGMENT = st.text(string.ascii_letters + string.digits + "-._~", min_size=1, max_size=10)
URIS = st.builds(lambda a, b: f"https://{a}.example/{b}", _SEGMENT, _SEGMENT)
TIMES = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2099, 12, 31),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5))]),
).map(lambda moment: moment.isoformat())
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**12), 10**12) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["dv:a", "dv:b", "gs1:c"]), inner, max_size=3)
    ),
    max_leaves=8,
)
QUANTITIES = st.fixed_dictionaries(
    {"epcClass": URIS},
    optional={
        "quantity": st.integers(0, 10**9) | st.floats(0, 1e9, allow_nan=False),
        "uom": st.sampled_from([unit.value for unit in vocab.UnitCode]),
    },
)
OBJECT_EVENTS = st.fixed_dictionaries(
    {
        "type": st.just("ObjectEvent"),
        "eventTime": TIMES,
        "eventTimeZoneOffset": st.sampled_from(["+08:00", "-05:00", "+00:00", "+14:00"]),
        "action": st.sampled_from(["ADD", "OBSERVE", "DELETE"]),
        "epcList": st.lists(URIS, unique=True, max_size=4),
    },
    optional={
        "quantityList": st.lists(QUANTITIES, max_size=3),
        "bizStep": st.sampled_from(sorted(vocab.CBV_BIZSTEPS)) | URIS,
        "disposition": st.sampled_from(sorted(vocab.CBV_DISPOSITIONS)),
        "readPoint": st.builds(lambda uri: {"id": uri}, URIS),
        "recordTime": TIMES,
        "dv:note": JSON_VALUES,
        "dv:parcel": URIS,
    },
)


@settings(max_examples=150, deadline=None)
@given(OBJECT_EVENTS)
def test_model_to_dict_to_model_round_trip(source: dict[str, Any]) -> None:
    event = epcis.parse_event(source)
    dumped = epcis.dump_epcis(event, standalone=False)
    again = epcis.parse_event(orjson.loads(orjson.dumps(dumped)))
    assert again == event
    assert epcis.dump_epcis(again, standalone=False) == dumped
    assert {k: v for k, v in dumped.items() if k.startswith("dv:")} == {
        k: v for k, v in source.items() if k.startswith("dv:")
    }


# --- event hash IDs -----------------------------------------------------------------------------


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda c: c["source"].rsplit("/", 1)[-1])
def test_event_hash_matches_published_vectors(case: dict[str, Any]) -> None:
    document = case["document"]
    events = document["epcisBody"]["eventList"]
    computed = [event_hash.event_hash_id(e, context=document["@context"]) for e in events]
    assert computed == case["hashes"]


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda c: c["source"].rsplit("/", 1)[-1])
def test_event_hash_survives_parsing_into_models(case: dict[str, Any]) -> None:
    document = epcis.parse_document(orjson.dumps(case["document"]))
    ids = [
        epcis.compute_event_id(e, context=document.context) for e in document.epcis_body.event_list
    ]
    assert ids == case["hashes"]


def test_prehash_string_of_a_published_event() -> None:
    case = VECTORS["cases"][0]  # TimeStampRoundOff: milliseconds rounded half up, DL host moved
    prehash = event_hash.prehash_string(case["document"]["epcisBody"]["eventList"][0])
    assert prehash == (
        "eventType=ObjectEventeventTime=2023-02-02T11:04:03.142ZeventTimeZoneOffset=+01:00"
        "epcListepc=https://id.gs1.org/00/040123451111111110action=OBSERVE"
        "bizStep=https://ref.gs1.org/cbv/BizStep-shipping"
        "disposition=https://ref.gs1.org/cbv/Disp-in_transit"
        "readPointid=https://id.gs1.org/414/4012345000115"
    )


def _shuffled(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: _shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        return [_shuffled(v, rng) for v in value]
    return value


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(farm_chain.chain()), st.randoms(use_true_random=False))
def test_event_id_is_stable_under_key_reordering(
    source: dict[str, Any], rng: random.Random
) -> None:
    reordered = _shuffled(source, rng)
    expected = epcis.compute_event_id(epcis.parse_event(source))
    assert event_hash.event_hash_id(reordered) == expected
    assert epcis.compute_event_id(epcis.parse_event(reordered)) == expected


def test_event_id_ignores_list_order_and_time_notation() -> None:
    source = farm_chain.packing()
    swapped = {**source, "childEPCs": source["childEPCs"][::-1],
               "eventTime": "2024-06-04T01:00:00.000Z"}  # fmt: skip
    assert event_hash.event_hash_id(swapped) == event_hash.event_hash_id(source)


CHANGES = [
    ("quantity", lambda e: e["quantityList"][0].update(quantity=1851)),
    ("unit", lambda e: e["quantityList"][0].update(uom="TNE")),
    ("bizStep", lambda e: e.update(bizStep="commissioning")),
    ("time", lambda e: e.update(eventTime="2024-05-20T16:30:00.001+08:00")),
    ("ilmd value", lambda e: e["ilmd"].update({"dv:variety": "中双12号"})),
    ("new extension", lambda e: e.update({"dv:operator": "张三"})),
    ("readPoint", lambda e: e.update(readPoint={"id": farm_chain.WAREHOUSE})),
]


@pytest.mark.parametrize(("name", "change"), CHANGES, ids=[c[0] for c in CHANGES])
def test_event_id_changes_when_a_field_changes(name: str, change: Any) -> None:
    source = farm_chain.harvesting()
    changed = copy.deepcopy(source)
    change(changed)
    before = epcis.compute_event_id(epcis.parse_event(source))
    assert epcis.compute_event_id(epcis.parse_event(changed)) != before


def test_with_event_id_sets_a_cbv_hash_id() -> None:
    event = epcis.with_event_id(epcis.parse_event(farm_chain.pressing()))
    assert event.event_id is not None
    assert event.event_id.startswith("ni:///sha-256;")
    assert event.event_id.endswith("?ver=CBV2.0")
    assert len(event.event_id.split(";")[1].split("?")[0]) == 64
    # An existing eventID does not feed into the hash: recomputing is idempotent.
    assert epcis.compute_event_id(event) == event.event_id


def test_error_declaration_keeps_the_declared_event_id() -> None:
    document = chain_document()
    events = document.epcis_body.event_list
    original, declaration, corrected = events[4], events[8], events[9]
    assert declaration.error_declaration is not None
    assert declaration.event_id == original.event_id  # EPCIS: same event, declared erroneous
    assert declaration.error_declaration.corrective_event_ids == [corrected.event_id]
    assert corrected.event_id != original.event_id


# --- GS1 identifiers inside the hash -------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("urn:epc:id:sgtin:0614141.107346.2018", "https://id.gs1.org/01/10614141073464/21/2018"),
        ("urn:epc:id:sscc:0614141.1234567890", "https://id.gs1.org/00/106141412345678908"),
        ("urn:epc:id:sgln:0012345.11111.400", "https://id.gs1.org/414/0012345111112/254/400"),
        ("urn:epc:id:sgln:4012345.00225.0", "https://id.gs1.org/414/4012345002256"),
        ("urn:epc:class:lgtin:4012345.012345.998877", "https://id.gs1.org/01/04012345123456/10/998877"),
        ("urn:epc:idpat:sgtin:4012345.098765.*", "https://id.gs1.org/01/04012345987652"),
        (f"{farm_chain.BOTTLES[0]}?11=240604", f"https://id.gs1.org/01/{farm_chain.OIL_GTIN}/21/0001"),
        (farm_chain.RAPESEED_LOT, f"https://id.gs1.org/01/{farm_chain.RAPESEED_GTIN}/10/RS-2024-001"),
        ("https://example.com/gtin/9506000134352/lot/A1", "https://id.gs1.org/01/09506000134352/10/A1"),
        (farm_chain.PARCEL, None),
        ("geo:30.67,104.06", None),
        ("urn:epc:id:sgtin:0614141.10734.2018", None),
    ],
)  # fmt: skip
def test_digital_link_normalisation(uri: str, expected: str | None) -> None:
    assert digital_link.normalise(uri) == expected


def test_check_digit_known_answers() -> None:
    assert digital_link.check_digit("0950600013435") == "2"  # GTIN 09506000134352
    assert digital_link.check_digit("10614141073464"[:-1]) == "4"
