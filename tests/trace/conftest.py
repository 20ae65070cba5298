"""Chain fixtures: products of cooperative A, parcels held since autumn 2024, event builders."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from shapely.geometry import Polygon, box
from sqlalchemy.orm import Session

from digital_village.auth.actor import Actor
from digital_village.config import Settings
from digital_village.gs1.keys import check_digit, gtin_check_digit
from digital_village.ledger.log import Ledger
from digital_village.parcels import service as parcels
from digital_village.parcels.geometry import to_lonlat
from digital_village.trace import builders, products
from tests.conftest import World
from tests.factories import GROUP, OTHER_VILLAGE

CHINA = builders.CHINA
BASE = "https://dv.test"
SEASON_START = dt.date(2024, 9, 1)


def gtin(payload12: str) -> str:
    """A GTIN-14 (a GTIN-13 with a leading zero) from 12 digits, check digit computed."""
    return "0" + payload12 + gtin_check_digit(payload12)


RAPESEED = gtin("690123450001")
OIL = gtin("690123450002")
BOTTLE = gtin("690123450003")
PADDY = gtin("690123450004")
RICE = gtin("690123450005")
CASE = f"{BASE}/00/16901234500000001{check_digit('16901234500000001')}"
OTHER_COOP_SEED = gtin("690123450009")


def at(month: int, day: int, hour: int = 9, year: int = 2025) -> dt.datetime:
    return dt.datetime(year, month, day, hour, 0, tzinfo=CHINA)


def _field(col: int, row: int, size: float = 60.0) -> Polygon:
    x, y = 430_000.0 + col * size, 3_459_000.0 + row * size
    shape: Polygon = to_lonlat(box(x, y, x + size, y + size), 4544)
    return shape


@dataclass
class Chain:
    """A village ready for a season: who holds which parcel, and the products."""

    world: World
    own: list[str]  # parcels of household A (coop A member)
    coop_operated: str  # contracted by nobody, operated by coop A
    foreign: str  # held by household B (coop B)
    ledger: Ledger

    def product_gtins(self) -> dict[str, str]:
        return {"rapeseed": RAPESEED, "oil": OIL, "bottle": BOTTLE}


@pytest.fixture
def ledger(settings: Settings) -> Ledger:
    return Ledger.from_key_file(settings.effective_ledger_key_path, settings.ledger_origin)


@pytest.fixture
def chain(session: Session, ledger: Ledger, world: World) -> Chain:
    operator = Actor.operator()
    items = [
        parcels.ParcelIn(
            geometry=_field(col, 0),
            land_use="0101",
            contractor_household_id=world.household_a,
        )
        for col in range(3)
    ]
    items.append(
        parcels.ParcelIn(
            geometry=_field(3, 0), land_use="0101", operator_cooperative_id=world.coop_a
        )
    )
    report = parcels.register_many(
        session=session,
        ledger=ledger,
        fbfbm=GROUP,
        items=items,
        actor=operator,
        valid_from=SEASON_START,
    )
    assert not report.rejected, report.rejected
    other = parcels.register_many(
        session=session,
        ledger=ledger,
        fbfbm=OTHER_VILLAGE + "00",
        items=[
            parcels.ParcelIn(
                geometry=_field(0, 5), land_use="0101", contractor_household_id=world.household_b
            )
        ],
        actor=operator,
        valid_from=SEASON_START,
    )
    assert not other.rejected, other.rejected
    for code, name, category, extra in (
        (RAPESEED, "油菜籽", "rapeseed", {}),
        (OIL, "天府菜油", "rapeseed_oil", {}),
        (BOTTLE, "天府菜油 5 L", "packaged", {"net_quantity": 5.0, "net_unit": "LTR"}),
        (PADDY, "稻谷", "paddy", {}),
        (RICE, "大米", "rice", {}),
    ):
        products.register_product(
            session=session,
            ledger=ledger,
            actor=operator,
            gtin=code,
            name=name,
            category=category,
            cooperative_id=world.coop_a,
            **extra,
        )
    products.register_product(
        session=session,
        ledger=ledger,
        actor=operator,
        gtin=OTHER_COOP_SEED,
        name="清平稻种",
        category="paddy",
        cooperative_id=world.coop_b,
    )
    session.flush()
    created = [c.dkbm for c in report.created]
    return Chain(
        world=world,
        own=created[:3],
        coop_operated=created[3],
        foreign=other.created[0].dkbm,
        ledger=ledger,
    )


def post_event(client: TestClient, world: World, role: str, event: dict[str, Any]) -> Any:
    return client.post("/api/v1/events", json=event, headers=world.auth(role))


def capture_doc(client: TestClient, world: World, role: str, events: list[dict[str, Any]]) -> Any:
    document = builders.document(events, created=at(6, 30))
    return client.post("/api/v1/epcis/capture", json=document, headers=world.auth(role))


def season(chain: Chain, *, kilograms: float = 1800.0) -> list[dict[str, Any]]:
    """Sowing to bottling on the household's first two parcels, as EPCIS events."""
    p1, p2 = chain.own[0], chain.own[1]
    return [
        builders.field_work("planting", dkbm=p1, when=at(10, 5, year=2024), base_url=BASE),
        builders.field_work("planting", dkbm=p2, when=at(10, 6, year=2024), base_url=BASE),
        builders.field_work(
            "fertilizing",
            dkbm=p1,
            when=at(2, 20),
            base_url=BASE,
            extensions={"dv:fertilizer": "复合肥 15-15-15"},
        ),
        builders.spraying(
            dkbm=p1,
            when=at(4, 10),
            base_url=BASE,
            pesticide="吡虫啉 10% WP",
            dose=1.2,
            dose_unit="KGM",
            interval_days=14,
        ),
        builders.harvest(
            gtin=RAPESEED,
            lot="RS-2025-001",
            kilograms=kilograms,
            dkbms=[p1, p2],
            when=at(5, 20),
            base_url=BASE,
        ),
        builders.transformation(
            step="pressing",
            inputs=[(RAPESEED, "RS-2025-001", 1000.0, "KGM")],
            outputs=[(OIL, "OIL-2025-007", 380.0, "LTR")],
            when=at(6, 3),
            base_url=BASE,
        ),
        builders.bottling(
            source=(OIL, "OIL-2025-007", 20.0, "LTR"),
            gtin=BOTTLE,
            lot="B-2025-007",
            serials=["0001", "0002", "0003", "0004"],
            when=at(6, 4),
            base_url=BASE,
        ),
        builders.packing(
            parent=CASE,
            gtin=BOTTLE,
            lot="B-2025-007",
            serials=["0001", "0002"],
            when=at(6, 5),
            base_url=BASE,
        ),
    ]
