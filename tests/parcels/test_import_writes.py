"""A parcel import checks every feature without locking anything, then stores in short write
transactions; a file too large is refused whole (413), a feature with too many vertices alone."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from shapely.geometry import Polygon, mapping
from sqlalchemy import Engine

from digital_village import migrate
from digital_village.app import create_app
from digital_village.auth.actor import Actor
from digital_village.config import Settings
from digital_village.db import Database, make_engine
from digital_village.ledger import keys
from digital_village.ledger.log import Ledger
from digital_village.parcels import io as parcel_io
from digital_village.parcels import registry
from digital_village.parcels import service as parcels
from digital_village.regions import service as regions
from tests.conftest import World
from tests.factories import GROUP, VILLAGE
from tests.parcels.conftest import field

ORIGIN = "imports.digital-village.example/ledger"


def _collection(shapes: list[Polygon]) -> dict[str, Any]:
    return {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "properties": {"land_use": "0103"}, "geometry": mapping(shape)}
            for shape in shapes
        ],
    }


@pytest.fixture
def sqlite_file(tmp_path: Path) -> Iterator[tuple[Engine, Ledger]]:
    """A database of its own, written for real: the test is about its write lock."""
    engine = make_engine(f"sqlite:///{tmp_path / 'imports.db'}")
    with engine.begin() as connection:
        migrate.upgrade(connection)
    keys.ensure_signing_key(tmp_path / "ledger.key", ORIGIN)
    ledger = Ledger.from_key_file(tmp_path / "ledger.key", ORIGIN)
    with Database(engine).transaction() as session:
        regions.seed_jingyang(session=session)
        regions.add_region(session=session, code=VILLAGE, name="民安村", actor=Actor.operator())
        regions.add_region(session=session, code=GROUP, name="一组", actor=Actor.operator())
    yield engine, ledger
    engine.dispose()


def test_checking_locks_nothing_and_storing_takes_short_chunks(
    sqlite_file: tuple[Engine, Ledger], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, ledger = sqlite_file
    database = Database(engine)
    shapes = [field(col, row, size=40, gap=10) for row in range(20) for col in range(30)]
    real_check = registry.check_many
    others: list[str] = []

    def check_while_others_write(**kwargs: Any) -> registry.Checked:
        checked = real_check(**kwargs)
        if others:  # the other writer's own check
            return checked
        # Another writer, meanwhile, gets the write lock (the import's read transaction is
        # still open: were it holding the lock, this would wait for ever and fail)...
        other = sqlite3.connect(engine.url.database or "", timeout=0.5, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
        other.close()
        # ...and what it registers is there when the import stores: a field over feature 7.
        others.append("registering")
        with database.transaction() as session:
            made = parcels.register_many(
                session=session,
                ledger=ledger,
                fbfbm=GROUP,
                items=[parcels.ParcelIn(geometry=shapes[7], land_use="0101")],
                actor=Actor.operator(),
            )
        others[0] = made.created[0].dkbm
        return checked

    monkeypatch.setattr(registry, "check_many", check_while_others_write)
    writes: list[float] = []
    report = parcel_io.import_features(
        database=database,
        ledger=ledger,
        source=parcel_io.read_geojson(_collection(shapes)),
        options=parcel_io.ImportOptions(fbfbm=GROUP),
        actor=Actor.operator(),
        writes=writes,
    )
    assert [(r.feature, r.reason) for r in report.rejected] == [
        (7, f"same shape as parcel {others[0]}, already registered (re-import?)")
    ]
    assert len(report.created) == len(shapes) - 1 and report.stored
    # Not one transaction holding the writer for the whole file: the first chunk is 50 features
    # and later ones are sized on how long chunks held the writer (bulk.next_chunk_size).
    assert len(writes) >= 2
    with database.session() as session:
        assert len(parcels.list_all_active(session=session)) == len(shapes)


def test_all_or_nothing_stores_nothing_when_a_parcel_registered_meanwhile_is_in_the_way(
    sqlite_file: tuple[Engine, Ledger], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, ledger = sqlite_file
    database = Database(engine)
    shapes = [field(col, 0, size=40, gap=10) for col in range(30)]
    real_check = registry.check_many

    raced: list[bool] = []

    def check_then_race(**kwargs: Any) -> registry.Checked:
        checked = real_check(**kwargs)
        if raced:  # the other writer's own check
            return checked
        raced.append(True)
        with database.transaction() as session:
            parcels.register_many(
                session=session,
                ledger=ledger,
                fbfbm=GROUP,
                items=[parcels.ParcelIn(geometry=shapes[29], land_use="0101")],
                actor=Actor.operator(),
            )
        return checked

    monkeypatch.setattr(registry, "check_many", check_then_race)
    report = parcel_io.import_features(
        database=database,
        ledger=ledger,
        source=parcel_io.read_geojson(_collection(shapes)),
        options=parcel_io.ImportOptions(fbfbm=GROUP, all_or_nothing=True),
        actor=Actor.operator(),
    )
    assert not report.stored and report.created == []
    assert [r.feature for r in report.rejected] == [29]
    with database.session() as session:
        assert len(parcels.list_all_active(session=session)) == 1  # only the other writer's


def test_an_import_beyond_the_limits_is_refused_whole_and_a_huge_feature_alone(
    settings: Settings, db: Database, world: World
) -> None:
    limited = settings.model_copy(
        update={"import_max_features": 3, "import_max_vertices": 60, "parcel_max_vertices": 12}
    )
    app = create_app(limited, database=db)
    jagged = Polygon(
        [(104.27 + 0.0001 * (i % 2), 31.26 + 0.00005 * i) for i in range(24)] + [(104.269, 31.2605)]
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        url = f"/api/v1/parcels/import?fbfbm={GROUP}"
        many = client.post(
            url, json=_collection([field(c, 0) for c in range(4)]), headers=world.auth("admin")
        )
        assert many.status_code == 413, many.text
        assert many.headers["content-type"] == "application/problem+json"
        assert "4 features" in many.json()["detail"] and "at most 3" in many.json()["detail"]
        heavy = client.post(url, json=_collection([jagged] * 3), headers=world.auth("admin"))
        assert heavy.status_code == 413 and "vertices" in heavy.json()["detail"]
        one = client.post(url, json=_collection([field(0, 0), jagged]), headers=world.auth("admin"))
        assert one.status_code == 200, one.text
        assert one.json()["rejected"] == [
            {"feature": 1, "reason": "26 vertices; a parcel has at most 12"}
        ]
        assert len(one.json()["created"]) == 1
