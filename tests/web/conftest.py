"""Page fixtures: one database per backend holding a whole recorded season, built once.

The season (``demo.oil_season.record_season``: sowing to bottling, a corrected harvest, a
certificate, soil probes sealed day by day) has every kind of step the pages show. It is
committed once per test session into a database of its own; each test then works in a
transaction on it that is rolled back, so tests stay independent (scans, posted events) and fast.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from shapely.geometry import Polygon, box
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from digital_village import migrate
from digital_village.app import create_app
from digital_village.auth.actor import Actor
from digital_village.config import Settings
from digital_village.db import Database, make_engine
from digital_village.demo import oil_season as seasons
from digital_village.ledger import keys
from digital_village.ledger.log import Ledger
from digital_village.parcels import service as parcels
from digital_village.parcels.geometry import to_lonlat
from tests.conftest import PostgresServer, World
from tests.factories import GROUP, OTHER_VILLAGE, build_world

BASE = "https://dv.test"
ORIGIN = "pages.digital-village.example/ledger"
YEAR = 2026
# Names and phone numbers of the fixtures' households: no public page may show them.
PERSONAL = ("王建国", "李秀英", "13808380001", "13808380002", "0838-6200000")


def field(col: int, row: int = 0, size: float = 70.0) -> Polygon:
    x, y = 432_000.0 + col * (size + 10), 3_458_000.0 + row * (size + 10)
    shape: Polygon = to_lonlat(box(x, y, x + size, y + size * 0.8), 4544)
    return shape


@dataclass
class Pages:
    """The season database of one backend, and what is in it."""

    engine: Engine
    settings: Settings
    world: World
    season: seasons.Season
    parcels: list[str]
    other_parcel: str

    @property
    def bottle(self) -> str:
        return f"/01/{seasons.BOTTLE}/10/{self.season.bottle_lot}/21/{self.season.serials[0]}"

    @property
    def bottle_lot(self) -> str:
        return f"/01/{seasons.BOTTLE}/10/{self.season.bottle_lot}"


def register_fields(
    session: Session,
    ledger: Ledger,
    household_id: int,
    geometries: list[Polygon],
    *,
    fbfbm: str = GROUP,
    land_use: str = "0103",
) -> list[str]:
    """Register fields contracted by a household since September 2024; their DKBMs in order."""
    report = parcels.register_many(
        session=session,
        ledger=ledger,
        fbfbm=fbfbm,
        items=[
            parcels.ParcelIn(
                geometry=geometry, land_use=land_use, contractor_household_id=household_id
            )
            for geometry in geometries
        ],
        actor=Actor.operator(),
        valid_from=dt.date(2024, 9, 1),
    )
    return [created.dkbm for created in report.created]


def make_pages(url: str, folder: Path, *, bottles: int = 6, every_hours: int = 12) -> Pages:
    """Migrate the database at ``url`` and record the world and a whole season in it."""
    engine = make_engine(url)
    with engine.begin() as connection:
        migrate.upgrade(connection)
    settings = Settings(
        data_dir=folder,
        database_url=url,
        ledger_origin=ORIGIN,
        log_format="text",
        log_level="WARNING",
        public_base_url=BASE,
        rate_limit_public_per_minute=100_000,
        # Pages here show the count with their own scan, however busy the machine running them.
        scan_wait_ms=10_000,
    )
    keys.ensure_signing_key(settings.effective_ledger_key_path, settings.ledger_origin)
    ledger = Ledger.from_key_file(settings.effective_ledger_key_path, settings.ledger_origin)
    db = Database(engine)
    world = build_world(db)
    with db.transaction() as session:
        dkbms = register_fields(
            session, ledger, world.household_a, [field(col) for col in range(3)]
        )
        other = register_fields(
            session,
            ledger,
            world.household_b,
            [field(0, 4)],
            fbfbm=OTHER_VILLAGE + "00",
            land_use="0101",
        )
        season = seasons.record_season(
            session=session,
            ledger=ledger,
            base_url=BASE,
            cooperative_id=world.coop_a,
            parcels=dkbms[:2],
            year=YEAR,
            bottles=bottles,
            readings_every_hours=every_hours,
        )
    return Pages(
        engine=engine,
        settings=settings,
        world=world,
        season=season,
        parcels=dkbms,
        other_parcel=other[0],
    )


@pytest.fixture(scope="session")
def pages_db(
    backend: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Pages]:
    folder = tmp_path_factory.mktemp("pages")
    server: PostgresServer | None = None
    if backend == "sqlite":
        url = f"sqlite:///{folder / 'pages.db'}"
    else:
        server = request.getfixturevalue("postgres_server")
        url = server.create_database("dv_pages")
    pages = make_pages(url, folder)
    yield pages
    pages.engine.dispose()
    if server is not None:
        server.drop_database(url)


@pytest.fixture
def pages_connection(pages_db: Pages) -> Iterator[Connection]:
    with pages_db.engine.connect() as connection:
        outer = connection.begin()
        yield connection
        outer.rollback()


@pytest.fixture
def pages_app(pages_db: Pages, pages_connection: Connection) -> FastAPI:
    """The app on the season database, inside the test's transaction."""
    return create_app(pages_db.settings, database=Database(pages_connection))


@pytest.fixture
def pages_client(pages_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(pages_app, raise_server_exceptions=False, base_url=BASE) as client:
        yield client


def client_at(app: FastAPI, address: str) -> TestClient:
    """A client connecting from ``address`` (for scans from several networks)."""
    return TestClient(app, raise_server_exceptions=False, base_url=BASE, client=(address, 50000))


def html_of(client: TestClient, path: str, **headers: str) -> str:
    response = client.get(path, headers={"Accept": "text/html", **headers})
    assert response.status_code == 200, response.text[:500]
    assert response.headers["content-type"].startswith("text/html")
    return response.text
