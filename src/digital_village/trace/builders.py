"""EPCIS 2.0 events for the usual steps of a season, as JSON dicts ready to capture.

Pure: the CLI, the demo, the benchmark and the tests build their events here, so that what
they record is what a farmer's app or a partner's system would send.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, Final

from digital_village.trace.epcis import default_context
from digital_village.trace.identifiers import lot_uri, parcel_uri, serial_uri
from digital_village.trace.vocab import (
    DV_BIZSTEP,
    HARVESTING,
    MILLING,
    PRESSING,
    SPRAYING,
)

CHINA: Final = dt.timezone(dt.timedelta(hours=8))
Quantity = tuple[str, str, float, str]  # GTIN, lot, quantity, unit


def _time(moment: dt.datetime) -> tuple[str, str]:
    if moment.tzinfo is None:
        raise ValueError("event times need a timezone")
    offset = moment.utcoffset() or dt.timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    text = f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    return moment.isoformat(timespec="seconds"), text


def _event(kind: str, when: dt.datetime, **fields: Any) -> dict[str, Any]:
    event_time, offset = _time(when)
    return {"type": kind, "eventTime": event_time, "eventTimeZoneOffset": offset, **fields}


def _quantities(items: Sequence[Quantity], base_url: str) -> list[dict[str, Any]]:
    return [
        {"epcClass": lot_uri(base_url, gtin, lot), "quantity": quantity, "uom": unit}
        for gtin, lot, quantity, unit in items
    ]


def field_work(
    step: str,
    *,
    dkbm: str,
    when: dt.datetime,
    base_url: str,
    extensions: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Planting, fertilizing, irrigating (OBSERVE on the parcel) with optional dv: fields."""
    uri = parcel_uri(base_url, dkbm)
    return _event(
        "ObjectEvent",
        when,
        action="OBSERVE",
        bizStep=f"{DV_BIZSTEP}{step}",
        epcList=[],
        readPoint={"id": uri},
        bizLocation={"id": uri},
        **(extensions or {}),
    )


def spraying(
    *,
    dkbm: str,
    when: dt.datetime,
    base_url: str,
    pesticide: str,
    dose: float,
    dose_unit: str,
    interval_days: int,
) -> dict[str, Any]:
    """Crop protection on a parcel, with the pesticide, dose and pre-harvest interval."""
    uri = parcel_uri(base_url, dkbm)
    return _event(
        "ObjectEvent",
        when,
        action="OBSERVE",
        bizStep=SPRAYING.uri,
        epcList=[],
        readPoint={"id": uri},
        bizLocation={"id": uri},
        **{
            "dv:pesticideName": pesticide,
            "dv:dose": {"dv:quantity": dose, "dv:uom": dose_unit},
            "dv:preHarvestIntervalDays": interval_days,
        },
    )


def harvest(
    *,
    gtin: str,
    lot: str,
    kilograms: float,
    dkbms: Sequence[str],
    when: dt.datetime,
    base_url: str,
    ilmd: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A harvest: an ADD of a new lot weighed in KGM, from one or more parcels."""
    parcels = [parcel_uri(base_url, dkbm) for dkbm in dkbms]
    return _event(
        "ObjectEvent",
        when,
        action="ADD",
        bizStep=HARVESTING.uri,
        disposition="active",
        quantityList=_quantities([(gtin, lot, kilograms, "KGM")], base_url),
        readPoint={"id": parcels[0]},
        ilmd={"dv:parcels": parcels, "dv:harvestDate": when.date().isoformat(), **(ilmd or {})},
    )


def transformation(
    *,
    step: str,
    inputs: Sequence[Quantity],
    outputs: Sequence[Quantity],
    when: dt.datetime,
    base_url: str,
    read_point: str | None = None,
    ilmd: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A TransformationEvent (pressing, milling, or a CBV step for splits and merges)."""
    biz_step = {"pressing": PRESSING.uri, "milling": MILLING.uri}.get(step, step)
    fields: dict[str, Any] = {
        "bizStep": biz_step,
        "inputQuantityList": _quantities(inputs, base_url),
        "outputQuantityList": _quantities(outputs, base_url),
    }
    if read_point is not None:
        fields["readPoint"] = {"id": read_point}
    if ilmd:
        fields["ilmd"] = ilmd
    return _event("TransformationEvent", when, **fields)


def bottling(
    *,
    source: Quantity,
    gtin: str,
    lot: str,
    serials: Sequence[str],
    when: dt.datetime,
    base_url: str,
) -> dict[str, Any]:
    """Filling bulk (oil in LTR) into serialised items (AI 21) of a new lot."""
    return _event(
        "TransformationEvent",
        when,
        bizStep="commissioning",
        inputQuantityList=_quantities([source], base_url),
        outputEPCList=[serial_uri(base_url, gtin, serial, lot) for serial in serials],
    )


def packing(
    *,
    parent: str,
    gtin: str,
    lot: str,
    serials: Sequence[str],
    when: dt.datetime,
    base_url: str,
) -> dict[str, Any]:
    """Packing serialised items into a case (an SSCC or any container URI)."""
    return _event(
        "AggregationEvent",
        when,
        action="ADD",
        bizStep="packing",
        disposition="in_progress",
        parentID=parent,
        childEPCs=[serial_uri(base_url, gtin, serial, lot) for serial in serials],
    )


def document(events: Sequence[dict[str, Any]], *, created: dt.datetime) -> dict[str, Any]:
    """An EPCIS 2.0 document around events, with the project's @context."""
    return {
        "@context": default_context(),
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": _time(created)[0],
        "epcisBody": {"eventList": list(events)},
    }
