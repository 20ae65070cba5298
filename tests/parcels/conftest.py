"""Parcel fixtures: a ledger, and fields laid out in GK metres near 孝泉镇 (EPSG:4544)."""

from __future__ import annotations

import pytest
from shapely.geometry import Polygon, box
from sqlalchemy.orm import Session

from digital_village.auth.actor import Actor
from digital_village.config import Settings
from digital_village.ledger.log import Ledger
from digital_village.parcels import service as parcels
from digital_village.parcels.geometry import to_lonlat
from tests.conftest import World
from tests.factories import GROUP

# A whole-metre corner in CGCS2000 / 3-degree GK CM 105E, about 104.27 E, 31.26 N.
ORIGIN_E, ORIGIN_N = 430_000.0, 3_459_000.0


def field(col: int, row: int, size: float = 50.0, gap: float = 0.0) -> Polygon:
    """A square field in a grid: column and row count from the origin, ``size`` metres wide."""
    x = ORIGIN_E + col * (size + gap)
    y = ORIGIN_N + row * (size + gap)
    shape: Polygon = to_lonlat(box(x, y, x + size, y + size), 4544)
    return shape


def gk_box(x0: float, y0: float, x1: float, y1: float) -> Polygon:
    """A rectangle given in EPSG:4544 metres relative to the origin, as lon/lat."""
    shape: Polygon = to_lonlat(
        box(ORIGIN_E + x0, ORIGIN_N + y0, ORIGIN_E + x1, ORIGIN_N + y1), 4544
    )
    return shape


@pytest.fixture
def ledger(settings: Settings) -> Ledger:
    return Ledger.from_key_file(settings.effective_ledger_key_path, settings.ledger_origin)


@pytest.fixture
def grid(session: Session, ledger: Ledger, world: World) -> list[str]:
    """Four 50 m fields, 2 × 2, in GROUP: contractor household A, operator coop A."""
    report = parcels.register_many(
        session=session,
        ledger=ledger,
        fbfbm=GROUP,
        items=[
            parcels.ParcelIn(
                geometry=field(col, row),
                land_use="0101",
                contractor_household_id=world.household_a,
                operator_cooperative_id=world.coop_a,
                crops=(("2026-summer", "水稻"), ("2026-winter", "油菜")),
            )
            for row in range(2)
            for col in range(2)
        ],
        actor=Actor.operator(),
    )
    assert not report.rejected, report.rejected
    session.flush()
    return [created.dkbm for created in report.created]
