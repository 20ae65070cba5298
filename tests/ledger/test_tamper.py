"""Rows edited directly in the database, behind the application's back: the audit names each.

A whole small season (parcels, field work, a harvest, seals of soil readings) is recorded
through the real services, then one row is changed with plain SQL per test: an entry's bytes,
a reading inside a sealed day, the geometry of a parcel that sealed events name, the newest
checkpoints. Runs on SQLite and, with DV_TEST_POSTGRES_URL, on PostgreSQL.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pytest
import shapely
from shapely import affinity
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.orm import Session

from digital_village import audit
from digital_village.config import Settings
from digital_village.db import Database
from digital_village.demo import oil_season as seasons
from digital_village.iot.models import Reading, ReadingSeal
from digital_village.ledger.log import Ledger
from digital_village.ledger.models import LedgerCheckpoint, LedgerEntry
from digital_village.parcels.models import Parcel
from digital_village.trace.models import Event
from tests.factories import build_world
from tests.web.conftest import BASE, field, register_fields


@dataclass
class Recorded:
    db: Database
    ledger: Ledger
    season: seasons.Season

    def audit(self) -> audit.AuditReport:
        with self.db.session() as session:
            return audit.audit(session, origin=self.ledger.origin)

    def write(self) -> Session:
        return self.db.session(write=True)


@pytest.fixture
def recorded(db: Database, settings: Settings) -> Recorded:
    ledger = Ledger.from_key_file(settings.effective_ledger_key_path, settings.ledger_origin)
    world = build_world(db)
    with db.transaction() as session:
        dkbms = register_fields(session, ledger, world.household_a, [field(0), field(1)])
        season = seasons.record_season(
            session=session,
            ledger=ledger,
            base_url=BASE,
            cooperative_id=world.coop_a,
            parcels=dkbms,
            year=2026,
            bottles=2,
            readings_every_hours=24,
            devices_on=1,
        )
    return Recorded(db, ledger, season)


def test_an_honest_season_passes_the_whole_audit(recorded: Recorded) -> None:
    report = recorded.audit()
    assert report.ok, report.problems
    assert report.parcels == 2
    assert report.seals == recorded.season.seals > 100
    assert report.readings == recorded.season.readings


def test_an_entry_whose_bytes_were_edited_is_named(recorded: Recorded) -> None:
    with recorded.write() as session:
        seq, body = session.execute(
            select(LedgerEntry.seq, LedgerEntry.body)
            .join(Event, Event.ledger_seq == LedgerEntry.seq)
            .where(Event.biz_step.endswith("harvesting"))
            .order_by(LedgerEntry.seq.desc())
            .limit(1)
        ).one()
        forged = body.replace(b'"quantity":', b'"quantity":1', 1)
        assert forged != body
        session.execute(update(LedgerEntry).where(LedgerEntry.seq == seq).values(body=forged))
        session.commit()
    report = recorded.audit()
    assert not report.ok
    assert report.problems[0].index == seq
    assert "entry edited" in report.problems[0].what


def sealed_reading(session: Session) -> tuple[Reading, ReadingSeal]:
    reading = session.scalars(
        select(Reading).where(Reading.seal_id.is_not(None)).order_by(Reading.time_ms).offset(40)
    ).first()
    assert reading is not None
    made = session.get(ReadingSeal, reading.seal_id)
    assert made is not None
    return reading, made


@pytest.mark.parametrize("change", [0.5, -40.0])
def test_a_reading_edited_inside_a_sealed_day_is_named(recorded: Recorded, change: float) -> None:
    """Inside the sealed range the day is named; outside it, the reading itself too."""
    with recorded.write() as session:
        reading, made = sealed_reading(session)
        key = (reading.device_id, reading.metric_id, reading.time_ms)
        edited = reading.value + change
        session.execute(
            update(Reading)
            .where(
                Reading.device_id == key[0], Reading.metric_id == key[1], Reading.time_ms == key[2]
            )
            .values(value=edited)
        )
        session.commit()
        subject = f"seal:{made.parcel_dkbm}/{made.day.isoformat()}/{made.part}"
        seq = made.ledger_seq
    report = recorded.audit()
    assert [(p.index, p.subject) for p in report.problems] == [(seq, subject)]
    what = report.problems[0].what
    assert "no longer hash to the sealed root" in what
    if abs(change) > 10:
        assert f"device {key[0]}" in what and f"(value {edited:g})" in what


def test_a_reading_removed_from_a_sealed_day_is_named(recorded: Recorded) -> None:
    with recorded.write() as session:
        reading, made = sealed_reading(session)
        session.execute(
            delete(Reading).where(
                Reading.device_id == reading.device_id,
                Reading.metric_id == reading.metric_id,
                Reading.time_ms == reading.time_ms,
            )
        )
        session.commit()
        subject = f"seal:{made.parcel_dkbm}/{made.day.isoformat()}/{made.part}"
    report = recorded.audit()
    assert [p.subject for p in report.problems] == [subject]
    assert "removed" in report.problems[0].what


def test_an_edited_seal_row_is_named(recorded: Recorded) -> None:
    with recorded.write() as session:
        _reading, made = sealed_reading(session)
        session.execute(
            update(ReadingSeal).where(ReadingSeal.id == made.id).values(count=made.count + 1)
        )
        session.commit()
        subject = f"seal:{made.parcel_dkbm}/{made.day.isoformat()}/{made.part}"
    report = recorded.audit()
    assert [p.subject for p in report.problems] == [subject]
    assert "seal row edited" in report.problems[0].what


def referenced_parcel(session: Session, season: seasons.Season) -> str:
    """A parcel that sealed EPCIS events (field work, the harvest) name as their bizLocation."""
    dkbm = season.parcels[0]
    named = session.scalar(
        select(func.count()).select_from(Event).where(Event.biz_location.endswith(dkbm))
    )
    assert named
    return dkbm


def test_the_edited_geometry_of_a_parcel_that_events_name_is_named(recorded: Recorded) -> None:
    """Moved 30 m east, with the hash column and bounding box rewritten to match."""
    with recorded.write() as session:
        dkbm = referenced_parcel(session, recorded.season)
        parcel = session.scalars(select(Parcel).where(Parcel.dkbm == dkbm)).one()
        moved = affinity.translate(shapely.from_wkb(parcel.geometry_wkb), xoff=0.0003)
        wkb = shapely.to_wkb(moved, output_dimension=2, byte_order=1)
        min_lon, min_lat, max_lon, max_lat = moved.bounds
        session.execute(
            update(Parcel)
            .where(Parcel.id == parcel.id)
            .values(
                geometry_wkb=wkb,
                geometry_sha256=hashlib.sha256(wkb).hexdigest(),
                min_lon=min_lon,
                min_lat=min_lat,
                max_lon=max_lon,
                max_lat=max_lat,
            )
        )
        session.commit()
    report = recorded.audit()
    assert [p.subject for p in report.problems] == [f"parcel:{dkbm}"]
    assert "geometry edited" in report.problems[0].what


def test_an_edited_postgis_geometry_is_named(recorded: Recorded) -> None:
    if recorded.db.dialect != "postgresql":
        pytest.skip("the PostGIS column exists on PostgreSQL only")
    with recorded.write() as session:
        dkbm = referenced_parcel(session, recorded.season)
        session.execute(
            text("UPDATE parcel SET geom = ST_Translate(geom, 0.0003, 0) WHERE dkbm = :dkbm"),
            {"dkbm": dkbm},
        )
        session.commit()
    report = recorded.audit()
    assert [p.subject for p in report.problems] == [f"parcel:{dkbm}"]
    assert "geom edited" in report.problems[0].what


def test_removed_newest_checkpoints_are_named(recorded: Recorded) -> None:
    """The server would serve an old signed checkpoint as current."""
    with recorded.write() as session:
        sizes = session.scalars(
            select(LedgerCheckpoint.size).order_by(LedgerCheckpoint.size.desc()).limit(3)
        ).all()
        session.execute(delete(LedgerCheckpoint).where(LedgerCheckpoint.size > sizes[-1]))
        session.commit()
    report = recorded.audit()
    assert [p.index for p in report.problems] == [sizes[-1]]
    assert "an old checkpoint would be served as current" in report.problems[0].what
