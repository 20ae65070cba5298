"""A realistic rapeseed chain as EPCIS 2.0 JSON events, shared by the trace tests."""

from __future__ import annotations

from typing import Any

from digital_village.gs1.keys import check_digit
from digital_village.trace.vocab import DV_BIZSTEP

HOST = "https://trace.dv.example.cn"
DKBM = "5101141012030100012"
PARCEL = f"{HOST}/p/{DKBM}"
PRESS_LINE = f"{HOST}/loc/press-line-1"
WAREHOUSE = f"{HOST}/loc/warehouse-1"


def gtin(company_and_item: str) -> str:
    """A GTIN-14 (indicator 0) from 12 digits of company prefix and item reference."""
    digits = "0" + company_and_item
    return digits + check_digit(digits)


SEED_GTIN = gtin("690123450001")
RAPESEED_GTIN = gtin("690123450002")
OIL_GTIN = gtin("690123450003")
PESTICIDE_GTIN = gtin("690987650001")
SSCC17 = "16901234500000001"  # extension digit 1, company prefix 6901234, serial reference
SSCC = SSCC17 + check_digit(SSCC17)
SEED_LOT = f"{HOST}/01/{SEED_GTIN}/10/SEED-2024-03"
RAPESEED_LOT = f"{HOST}/01/{RAPESEED_GTIN}/10/RS-2024-001"
OIL_LOT = f"{HOST}/01/{OIL_GTIN}/10/OIL-2024-007"
CASE = f"{HOST}/00/{SSCC}"
BOTTLES = [f"{HOST}/01/{OIL_GTIN}/10/OIL-2024-007/21/{serial}" for serial in ("0001", "0002")]
SOIL_PROBE = f"{HOST}/8004/6901234SOIL07"


def _event(kind: str, time: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "eventTime": time, "eventTimeZoneOffset": "+08:00", **fields}


def planting() -> dict[str, Any]:
    return _event(
        "ObjectEvent",
        "2024-03-02T08:15:00+08:00",
        action="OBSERVE",
        bizStep=f"{DV_BIZSTEP}planting",
        quantityList=[{"epcClass": SEED_LOT, "quantity": 12.5, "uom": "KGM"}],
        readPoint={"id": PARCEL},
        bizLocation={"id": PARCEL},
        **{"dv:parcel": PARCEL, "dv:crop": "油菜 rapeseed"},
    )


def spraying() -> dict[str, Any]:
    return _event(
        "ObjectEvent",
        "2024-04-10T07:00:00.250+08:00",
        action="OBSERVE",
        bizStep=f"{DV_BIZSTEP}spraying",
        quantityList=[{"epcClass": f"{HOST}/01/{PESTICIDE_GTIN}", "quantity": 1.2, "uom": "LTR"}],
        readPoint={"id": PARCEL},
        **{
            "dv:parcel": PARCEL,
            "dv:pesticideName": "吡虫啉 imidacloprid 10% WP",
            "dv:dose": {"dv:quantity": 1.2, "dv:uom": "LTR"},
            "dv:preHarvestIntervalDays": 14,
        },
    )


def soil_moisture() -> dict[str, Any]:
    return _event(
        "ObjectEvent",
        "2024-04-20T12:00:00+08:00",
        action="OBSERVE",
        bizStep="sensor_reporting",
        readPoint={"id": PARCEL},
        sensorElementList=[
            {
                "sensorMetadata": {"time": "2024-04-20T12:00:00+08:00", "deviceID": SOIL_PROBE},
                "sensorReport": [
                    {"type": "RelativeHumidity", "value": 31.5, "uom": "P1"},
                    {"type": "Temperature", "value": 18.25, "uom": "CEL"},
                ],
            }
        ],
    )


def probe_on_parcel() -> dict[str, Any]:
    return _event(
        "AssociationEvent",
        "2024-03-01T09:00:00+08:00",
        action="ADD",
        bizStep="installing",
        parentID=PARCEL,
        childEPCs=[SOIL_PROBE],
        readPoint={"id": PARCEL},
    )


def harvesting(kilograms: float = 1850) -> dict[str, Any]:
    return _event(
        "ObjectEvent",
        "2024-05-20T16:30:00+08:00",
        action="ADD",
        bizStep=f"{DV_BIZSTEP}harvesting",
        disposition="active",
        quantityList=[{"epcClass": RAPESEED_LOT, "quantity": kilograms, "uom": "KGM"}],
        readPoint={"id": PARCEL},
        bizLocation={"id": WAREHOUSE},
        ilmd={
            "dv:parcel": PARCEL,
            "dv:harvestDate": "2024-05-20",
            "dv:variety": "中双11号",
            "dv:moisturePercent": 8.5,
        },
    )


def pressing() -> dict[str, Any]:
    return _event(
        "TransformationEvent",
        "2024-06-03T10:00:00+08:00",
        bizStep=f"{DV_BIZSTEP}pressing",
        inputQuantityList=[{"epcClass": RAPESEED_LOT, "quantity": 1000, "uom": "KGM"}],
        outputQuantityList=[{"epcClass": OIL_LOT, "quantity": 380, "uom": "LTR"}],
        readPoint={"id": PRESS_LINE},
        ilmd={"dv:pressing": "cold", "dv:bestBefore": "2025-06-03"},
    )


def packing() -> dict[str, Any]:
    return _event(
        "AggregationEvent",
        "2024-06-04T09:00:00+08:00",
        action="ADD",
        bizStep="packing",
        disposition="in_progress",
        parentID=CASE,
        childEPCs=list(BOTTLES),
        readPoint={"id": PRESS_LINE},
    )


def shipping() -> dict[str, Any]:
    return _event(
        "ObjectEvent",
        "2024-06-05T14:00:00+08:00",
        action="OBSERVE",
        bizStep="shipping",
        disposition="in_transit",
        epcList=[CASE],
        readPoint={"id": WAREHOUSE},
        bizTransactionList=[{"type": "inv", "bizTransaction": f"{HOST}/doc/inv-2024-0605"}],
        sourceList=[{"type": "owning_party", "source": f"{HOST}/party/coop-1"}],
        destinationList=[{"type": "owning_party", "destination": f"{HOST}/party/shop-9"}],
    )


def chain() -> list[dict[str, Any]]:
    """Every event of the chain, in time order."""
    return [
        probe_on_parcel(),
        planting(),
        spraying(),
        soil_moisture(),
        harvesting(),
        pressing(),
        packing(),
        shipping(),
    ]
