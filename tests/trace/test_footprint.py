"""Which entries appended between a capture's checks and its lock make it check again."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from digital_village.trace.footprint import Footprint

DKBM = "5106031012010100001"
OTHER_DKBM = "5106031012010100002"
EVENT_ID = "ni:///sha-256;aa?ver=CBV2.0"


def _footprint(*, names_items: bool = False, reads_holders: bool = True) -> Footprint:
    return Footprint(
        event_ids=frozenset({EVENT_ID}),
        lots=frozenset({"06901234500011/RS-1"}),
        gtins=frozenset({"06901234500011"}),
        parcels=frozenset({DKBM}),
        names_items=names_items,
        reads_holders=reads_holders,
    )


def _entry(data: dict[str, Any]) -> bytes:
    return orjson.dumps({"chain": {"key": None, "prev": None}, "data": data})


def _event(event_id: str = "ni:///sha-256;bb?ver=CBV2.0", **fields: Any) -> dict[str, Any]:
    return {"eventID": event_id, "type": "ObjectEvent", **fields}


@pytest.mark.parametrize(
    ("data", "touched"),
    [
        ({"event": _event(), "effects": {"lots": {"06901234500011/RS-2": {}}}}, False),
        ({"event": _event(EVENT_ID)}, True),  # the same event, or a declaration of it
        ({"event": _event(), "effects": {"lots": {"06901234500011/RS-1": {}}}}, True),
        ({"event": _event(epcList=["https://id.example/01/06901234500011/21/7"])}, False),
        ({"not an event": 1}, True),
    ],
    ids=["another lot", "same eventID", "one of its lots", "items, none named", "unreadable"],
)
def test_events_touch_a_capture_by_its_events_and_lots(data: dict[str, Any], touched: bool) -> None:
    assert _footprint().touched_by("trace.epcis_event", None, _entry(data)) is touched


def test_events_naming_items_touch_a_capture_that_names_items() -> None:
    data = {"event": _event(childEPCs=["https://id.example/01/06901234500011/21/7"])}
    assert _footprint(names_items=True).touched_by("trace.epcis_event", None, _entry(data))
    made = {"event": _event(), "effects": {"units": {"06901234500011/7": "06901234500011/L"}}}
    assert _footprint(names_items=True).touched_by("trace.epcis_event", None, _entry(made))


def test_other_kinds_by_what_they_name() -> None:
    footprint = _footprint()
    body = _entry({"dkbm": OTHER_DKBM})
    assert not footprint.touched_by("iot.readings.sealed", None, body)
    assert not footprint.touched_by("trace.certificate.issued", "lot:06901234500011/RS-1", body)
    assert footprint.touched_by("trace.product.changed", "product:06901234500011", body)
    assert not footprint.touched_by("trace.product.registered", "product:06901234500028", body)
    assert footprint.touched_by("parcel.changed", f"parcel:{DKBM}", body)
    assert not footprint.touched_by("parcel.registered", f"parcel:{OTHER_DKBM}", body)
    # A split names its parent in its child's entry.
    split = _entry({"dkbm": OTHER_DKBM, "parents": [DKBM]})
    assert footprint.touched_by("parcel.registered", f"parcel:{OTHER_DKBM}", split)
    assert footprint.touched_by("contract.changed", "contract:X", body)
    assert not _footprint(reads_holders=False).touched_by("household.changed", None, body)
    assert footprint.touched_by("something.new", None, body)
