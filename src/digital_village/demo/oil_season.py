"""A whole season of 天府菜油, recorded through the real services, for the page tests and bench.

Sowing rapeseed in October on a household's parcels, base fertilizer, top-dressing, irrigation,
one spraying with its pre-harvest interval, the harvest in May (first recorded with a typing
error and corrected by an EPCIS errorDeclaration), pressing, bottling into serialised 5 L
bottles, a residue inspection and a 承诺达标合格证 — and soil probes on the parcels reporting
moisture and temperature all season, sealed day by day on the ledger.

Everything goes through the same paths as the API: products and certificates through
``trace.products``, events through ``trace.capture`` (EPCIS 2.0 parsing, the capture rules,
the ledger), devices through ``iot.devices``, readings through ``iot.ingest`` and the daily
seals through ``iot.seal``. The page tests, the browser tests and ``scripts/bench_pages.py`` use
it: one small season with every kind of step the pages show, a correction and a certificate.
(``dv demo`` records the sample village's larger season with ``demo.village_season`` and
``demo.village_net``; its pages were checked by hand in Chromium.)
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from digital_village.auth.actor import Actor
from digital_village.gs1.keys import gtin_check_digit
from digital_village.iot import devices, ingest, seal, shapes
from digital_village.ledger.log import Ledger
from digital_village.parcels import service as parcels_service
from digital_village.trace import builders, capture, products, tracing
from digital_village.trace.epcis import compute_event_id, default_context, parse_event
from digital_village.trace.identifiers import lot_uri
from digital_village.trace.models import Product

CHINA: Final = builders.CHINA


def make_gtin(payload12: str) -> str:
    """A GTIN-14 with indicator 0 from 12 digits (company prefix and item reference)."""
    return "0" + payload12 + gtin_check_digit(payload12)


# The sample cooperative's products (GS1 company prefix 6901234, fictitious).
RAPESEED: Final = make_gtin("690123400101")
OIL: Final = make_gtin("690123400102")
BOTTLE: Final = make_gtin("690123400103")


@dataclass
class Season:
    """What one recorded season made: its lots, the bottles' serials and the parcels."""

    year: int
    parcels: list[str]
    rapeseed_lot: str
    oil_lot: str
    bottle_lot: str
    serials: list[str]
    certificate: str | None = None
    devices: list[int] = field(default_factory=list)
    readings: int = 0
    seals: int = 0

    @property
    def harvest_day(self) -> dt.date:
        return dt.date(self.year, 5, 18)


def _at(year: int, month: int, day: int, hour: int = 9) -> dt.datetime:
    return dt.datetime(year, month, day, hour, 0, tzinfo=CHINA)


def ensure_products(*, session: Session, ledger: Ledger, cooperative_id: int) -> None:
    """Register the three products of the season for the cooperative (once)."""
    existing = set(session.scalars(select(Product.gtin)))
    for gtin, name, category, extra in (
        (RAPESEED, "油菜籽", "rapeseed", {}),
        (OIL, "天府菜油", "rapeseed_oil", {}),
        (BOTTLE, "天府菜油 5 L", "packaged", {"net_quantity": 5.0, "net_unit": "LTR"}),
    ):
        if gtin in existing:
            continue
        products.register_product(
            session=session,
            ledger=ledger,
            actor=Actor.operator(),
            gtin=gtin,
            name=name,
            category=category,
            cooperative_id=cooperative_id,
            **extra,  # type: ignore[arg-type]
        )
    session.flush()


def _capture(
    session: Session, ledger: Ledger, base_url: str, events: Sequence[dict[str, Any]]
) -> list[capture.CapturedEvent]:
    result = capture.capture(
        session=session,
        ledger=ledger,
        actor=Actor.operator(),
        events=[parse_event(event) for event in events],
        base_url=base_url,
        context=default_context(),
    )
    return list(result.events)


def _declaration(event: dict[str, Any], when: dt.datetime, corrective: str) -> dict[str, Any]:
    declared = dict(event)
    declared["errorDeclaration"] = {
        "declarationTime": when.isoformat(timespec="seconds"),
        "reason": "incorrect_data",
        "correctiveEventIDs": [corrective],
    }
    return declared


def field_events(*, parcels: Sequence[str], year: int, base_url: str) -> list[dict[str, Any]]:
    """Sowing to the last spraying, on every parcel (the autumn before ``year`` to spring)."""
    events: list[dict[str, Any]] = []
    for index, dkbm in enumerate(parcels):
        day = 6 + index
        events += [
            builders.field_work(
                "fertilizing",
                dkbm=dkbm,
                when=_at(year - 1, 10, day, 8),
                base_url=base_url,
                extensions={
                    "dv:fertilizer": "复合肥 15-15-15",
                    "dv:amount": {"dv:quantity": 40.0, "dv:uom": "KGM"},
                },
            ),
            builders.field_work(
                "planting",
                dkbm=dkbm,
                when=_at(year - 1, 10, day + 2),
                base_url=base_url,
                extensions={"dv:crop": "油菜", "dv:variety": "川油36"},
            ),
            builders.field_work(
                "fertilizing",
                dkbm=dkbm,
                when=_at(year, 2, 18 + index),
                base_url=base_url,
                extensions={
                    "dv:fertilizer": "尿素",
                    "dv:amount": {"dv:quantity": 10.0, "dv:uom": "KGM"},
                },
            ),
            builders.field_work(
                "irrigating",
                dkbm=dkbm,
                when=_at(year, 3, 12 + index, 7),
                base_url=base_url,
                extensions={"dv:water": {"dv:quantity": 30.0, "dv:uom": "MMT"}},
            ),
            builders.spraying(
                dkbm=dkbm,
                when=_at(year, 3, 28 + index, 7),
                base_url=base_url,
                pesticide="吡虫啉 10% 可湿性粉剂",
                dose=20.0,
                dose_unit="GRM",
                interval_days=14,
            ),
        ]
    return events


def record_season(
    *,
    session: Session,
    ledger: Ledger,
    base_url: str,
    cooperative_id: int,
    parcels: Sequence[str],
    year: int,
    bottles: int = 24,
    readings_every_hours: int = 3,
    devices_on: int = 2,
    seed: int = 2026,
    seal_readings: bool = True,
) -> Season:
    """Record the season ending in May of ``year`` on these parcels (held by the cooperative's
    members, or operated by it) and return what it made. Commits nothing."""
    if not parcels:
        raise ValueError("a season needs at least one parcel")
    rng = random.Random(seed)
    ensure_products(session=session, ledger=ledger, cooperative_id=cooperative_id)
    suffix = f"{year}-01"
    season = Season(
        year=year,
        parcels=list(parcels),
        rapeseed_lot=f"RS{suffix}",
        oil_lot=f"OIL{suffix}",
        bottle_lot=f"B{suffix}",
        serials=[f"{n:04d}" for n in range(1, bottles + 1)],
    )
    area = sum(parcels_service.get_parcel(session=session, dkbm=dkbm).area_mu for dkbm in parcels)
    kilograms = round(area * 165.0, 1)  # a good Sichuan rapeseed year: ~165 kg/亩
    season.devices = _install_probes(
        session=session,
        ledger=ledger,
        parcels=list(parcels)[:devices_on],
        year=year,
        cooperative_id=cooperative_id,
    )
    work = field_events(parcels=parcels, year=year, base_url=base_url)
    _capture(session, ledger, base_url, work)
    _record_harvest(session, ledger, base_url, season, kilograms)
    _record_processing(session, ledger, base_url, season, kilograms, bottles)
    season.readings = _record_readings(
        session=session,
        device_ids=season.devices,
        start=_at(year - 1, 10, 8, 0),
        end=_at(year, 5, 19, 0),
        every_hours=readings_every_hours,
        rng=rng,
    )
    if seal_readings:
        season.seals = len(seal.seal_days(session=session, ledger=ledger))
    return season


def _record_harvest(
    session: Session, ledger: Ledger, base_url: str, season: Season, kilograms: float
) -> None:
    """The harvest, first keyed in with a slipped decimal point, then corrected the same
    evening: the declaration and the corrective event are captured together."""
    year, parcels = season.year, season.parcels
    harvest_time = _at(year, 5, 18, 10)
    wrong = builders.harvest(
        gtin=RAPESEED,
        lot=season.rapeseed_lot,
        kilograms=kilograms * 10,
        dkbms=list(parcels),
        when=harvest_time,
        base_url=base_url,
    )
    _capture(session, ledger, base_url, [wrong])
    right = builders.harvest(
        gtin=RAPESEED,
        lot=season.rapeseed_lot,
        kilograms=kilograms,
        dkbms=list(parcels),
        when=harvest_time.replace(minute=5),
        base_url=base_url,
    )
    right_id = compute_event_id(parse_event(right))
    _capture(
        session,
        ledger,
        base_url,
        [_declaration(wrong, _at(year, 5, 18, 19), right_id), right],
    )


def _record_processing(
    session: Session,
    ledger: Ledger,
    base_url: str,
    season: Season,
    kilograms: float,
    bottles: int,
) -> None:
    """Pressing, bottling, a residue inspection and the bottles' 承诺达标合格证."""
    year = season.year
    oil_litres = round(kilograms * 0.38, 1)
    bottled_litres = 5.0 * bottles
    processing = [
        builders.transformation(
            step="pressing",
            inputs=[(RAPESEED, season.rapeseed_lot, kilograms, "KGM")],
            outputs=[(OIL, season.oil_lot, oil_litres, "LTR")],
            when=_at(year, 6, 2, 8),
            base_url=base_url,
        ),
        builders.bottling(
            source=(OIL, season.oil_lot, bottled_litres, "LTR"),
            gtin=BOTTLE,
            lot=season.bottle_lot,
            serials=season.serials,
            when=_at(year, 6, 5, 14),
            base_url=base_url,
        ),
        inspection(
            gtin=BOTTLE,
            lot=season.bottle_lot,
            when=_at(year, 6, 6, 10),
            base_url=base_url,
        ),
    ]
    _capture(session, ledger, base_url, processing)
    bottle_lot = products.get_lot(session=session, gtin=BOTTLE, lot=season.bottle_lot)
    certificate = products.issue_certificate(
        session=session,
        ledger=ledger,
        actor=Actor.operator(),
        gtin=BOTTLE,
        lot=season.bottle_lot,
        contact="0838-6200000",
        basis=["self_testing", "internal_quality_control"],
        origin=tracing.origin_of_lot(session=session, lot=bottle_lot),
        issued_on=dt.date(year, 6, 6),
    )
    season.certificate = certificate.number


def inspection(*, gtin: str, lot: str, when: dt.datetime, base_url: str) -> dict[str, Any]:
    """A residue test of a lot (CBV ``inspecting``), passed: disposition ``conformant``."""
    offset = when.utcoffset() or dt.timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    return {
        "type": "ObjectEvent",
        "eventTime": when.isoformat(timespec="seconds"),
        "eventTimeZoneOffset": f"{'-' if minutes < 0 else '+'}{abs(minutes) // 60:02d}:"
        f"{abs(minutes) % 60:02d}",
        "action": "OBSERVE",
        "bizStep": "inspecting",
        "disposition": "conformant",
        "epcList": [],
        "quantityList": [{"epcClass": lot_uri(base_url, gtin, lot), "quantity": 1.0, "uom": "H87"}],
        "dv:inspection": "农药残留快速检测（GB/T 5009.199）",
        "dv:result": "合格",
    }


def _install_probes(
    *, session: Session, ledger: Ledger, parcels: list[str], year: int, cooperative_id: int
) -> list[int]:
    made = []
    for dkbm in parcels:
        registered = devices.register_device(
            session=session,
            ledger=ledger,
            actor=Actor.operator(),
            model="DL-5TM",
            parcel=dkbm,
            name=f"土壤墒情 {dkbm[-5:]}",
            cooperative=str(cooperative_id),
            installed_at=_at(year - 1, 10, 1).astimezone(dt.UTC),
        )
        made.append(registered.device.id)
    return made


def _soil(day_of_season: float, hour: int, rng: random.Random, wet: float) -> tuple[float, float]:
    """Plausible soil moisture (%) and temperature (°C) under winter rapeseed near Deyang."""
    # Temperature: ~17 °C in early October, ~6 °C in mid January, ~21 °C in mid May, with a
    # small daily swing that lags the air.
    seasonal = 13.5 - 7.5 * math.cos(2 * math.pi * (day_of_season - 100) / 365)
    daily = 1.6 * math.sin(2 * math.pi * (hour - 9) / 24)
    temperature = seasonal + daily + rng.gauss(0, 0.3)
    moisture = 21.0 + wet + rng.gauss(0, 0.4)
    return round(min(max(moisture, 8.0), 45.0), 2), round(temperature, 2)


def _record_readings(
    *,
    session: Session,
    device_ids: Sequence[int],
    start: dt.datetime,
    end: dt.datetime,
    every_hours: int,
    rng: random.Random,
) -> int:
    stored = 0
    now_ms = shapes.datetime_to_ms(dt.datetime.now(dt.UTC))
    for offset, device_id in enumerate(device_ids):
        device = devices.get_device(session=session, device_id=device_id)
        items: list[dict[str, Any]] = []
        wet = 6.0
        moment = start
        while moment < end:
            local = moment.astimezone(CHINA)
            if local.hour == 0:
                # Rain on about one day in six wets the soil; it dries back over days.
                wet = wet * 0.88 + (rng.uniform(3, 8) if rng.random() < 0.17 else 0.0)
            day = (local - start).total_seconds() / 86400
            moisture, temperature = _soil(day, local.hour, rng, wet + offset)
            time = shapes.ms_to_rfc3339(shapes.datetime_to_ms(moment))
            items.append({"metric": "soil_moisture", "time": time, "value": moisture})
            items.append({"metric": "soil_temperature", "time": time, "value": temperature})
            moment += dt.timedelta(hours=every_hours)
        checked = shapes.check_json({"readings": items}, now_ms=now_ms, device_id=device.id)
        result = ingest.ingest_checked(session=session, device=device, checked=checked)
        stored += result.accepted
    return stored
