"""Net fixtures: parcels registered through the map's service, and devices installed on them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest
from shapely.geometry import Polygon, box
from sqlalchemy.orm import Session

from digital_village.auth.actor import Actor
from digital_village.config import Settings
from digital_village.db import Database
from digital_village.iot import devices
from digital_village.ledger.log import Ledger
from digital_village.parcels import service as parcels
from digital_village.parcels.geometry import to_lonlat
from tests.conftest import World
from tests.factories import GROUP

# CGCS2000 / 3-degree GK CM 105E metres near 孝泉镇; away from the parcels tests' grid.
ORIGIN_E, ORIGIN_N = 431_000.0, 3_460_000.0
SIZE = 100.0
INSTALLED = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def field(col: int) -> Polygon:
    """A 100 m square field, ``col`` fields east of the origin."""
    x = ORIGIN_E + col * (SIZE + 20)
    shape: Polygon = to_lonlat(box(x, ORIGIN_N, x + SIZE, ORIGIN_N + SIZE), 4544)
    return shape


@dataclass
class Farm:
    """Three parcels (two of cooperative A, one of B) and a DL-5TM on the first."""

    parcels: list[str]
    device_id: int
    token: str
    generic_id: int
    generic_token: str
    # Reads of raw readings: the manager of cooperative A, whose devices these are.
    reader: dict[str, str]

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}"}


def register_fields(session: Session, ledger: Ledger, world: World) -> list[str]:
    """Register the three fields; holdings valid from 2025 so past installations are in scope."""
    report = parcels.register_many(
        session=session,
        ledger=ledger,
        fbfbm=GROUP,
        items=[
            parcels.ParcelIn(
                geometry=field(col),
                land_use="0103",
                contractor_household_id=world.household_a if col < 2 else None,
                operator_cooperative_id=world.coop_a if col < 2 else world.coop_b,
            )
            for col in range(3)
        ],
        actor=Actor.operator(),
        valid_from=dt.date(2025, 1, 1),
    )
    assert not report.rejected, report.rejected
    session.flush()
    return [created.dkbm for created in report.created]


@pytest.fixture
def ledger(settings: Settings) -> Ledger:
    return Ledger.from_key_file(settings.effective_ledger_key_path, settings.ledger_origin)


@pytest.fixture
def farm(db: Database, world: World, ledger: Ledger) -> Farm:
    with db.transaction() as session:
        dkbms = register_fields(session, ledger, world)
        probe = devices.register_device(
            session=session,
            ledger=ledger,
            actor=Actor.operator(),
            model="DL-5TM",
            parcel=dkbms[0],
            dev_eui="70B3D57BA0000001",
            cooperative=str(world.coop_a),
            installed_at=INSTALLED,
        )
        generic = devices.register_device(
            session=session,
            ledger=ledger,
            actor=Actor.operator(),
            model="generic",
            parcel=dkbms[1],
            cooperative=str(world.coop_a),
            installed_at=INSTALLED,
        )
        return Farm(
            parcels=dkbms,
            device_id=probe.device.id,
            token=probe.token,
            generic_id=generic.device.id,
            generic_token=generic.token,
            reader=world.auth("manager"),
        )


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def recent(minutes_ago: float) -> dt.datetime:
    """A time shortly before now, on whole seconds."""
    return (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=minutes_ago)).replace(microsecond=0)
