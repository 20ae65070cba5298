"""Two captures using the same lot at the same moment: one wins, the other is told the lot is
used up. On PostgreSQL the lot row is locked for the capture's transaction; on SQLite writers
queue on the database lock. Each case runs twice: checked under the log's lock, and checked
first in a read session beside it (as the API captures), where a capture that finds the log
grown between its checks and its lock checks again."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digital_village.auth.actor import Actor
from digital_village.db import Database
from digital_village.errors import Conflict
from digital_village.ledger import keys
from digital_village.ledger.log import Ledger
from digital_village.parcels import service as parcels
from digital_village.trace import builders, capture, products, writing
from digital_village.trace.epcis import parse_event
from digital_village.trace.models import Event, Lot
from tests.factories import GROUP, build_world
from tests.trace.conftest import BASE, OIL, RAPESEED, SEASON_START, _field, at

ORIGIN = "test.digital-village.example/ledger"


@pytest.fixture(params=[False, True], ids=["checked under the lock", "checked first"])
def checked_first(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def _capture(
    database: Database, ledger: Ledger, event: dict[str, Any], *, checked_first: bool = False
) -> capture.CaptureResult:
    reader = database.side_reader() if checked_first else None
    try:
        with database.transaction() as session:
            return capture.capture(
                session=session,
                ledger=ledger,
                actor=Actor.operator(),
                events=[parse_event(event)],
                base_url=BASE,
                pointer=None,
                reader=reader,
            )
    finally:
        if reader is not None:
            reader.close()


def _village(url: str, tmp_path: Path) -> tuple[Database, Ledger, str]:
    """A committed database with one parcel of household A, rapeseed and oil of coop A."""
    key = tmp_path / "ledger.key"
    keys.ensure_signing_key(key, ORIGIN)
    ledger = Ledger.from_key_file(key, ORIGIN)
    database = Database.from_url(url)
    world = build_world(database)
    operator = Actor.operator()
    with database.transaction() as session:
        report = parcels.register_many(
            session=session,
            ledger=ledger,
            fbfbm=GROUP,
            items=[
                parcels.ParcelIn(
                    geometry=_field(0, 0),
                    land_use="0101",
                    contractor_household_id=world.household_a,
                )
            ],
            actor=operator,
            valid_from=SEASON_START,
        )
        for code, category in ((RAPESEED, "rapeseed"), (OIL, "rapeseed_oil")):
            products.register_product(
                session=session,
                ledger=ledger,
                actor=operator,
                gtin=code,
                name=category,
                category=category,
                cooperative_id=world.coop_a,
            )
    return database, ledger, report.created[0].dkbm


def test_concurrent_consumers_never_use_a_lot_twice(
    committed_database_url: str, tmp_path: Path, checked_first: bool
) -> None:
    database, ledger, dkbm = _village(committed_database_url, tmp_path)
    _capture(
        database,
        ledger,
        builders.harvest(
            gtin=RAPESEED, lot="RS-1", kilograms=1000, dkbms=[dkbm], when=at(5, 20), base_url=BASE
        ),
    )
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def press(out_lot: str) -> None:
        event = builders.transformation(
            step="pressing",
            inputs=[(RAPESEED, "RS-1", 600.0, "KGM")],
            outputs=[(OIL, out_lot, 230.0, "LTR")],
            when=at(6, 3),
            base_url=BASE,
        )
        start.wait()
        try:
            _capture(database, ledger, event, checked_first=checked_first)
            outcomes.append("stored")
        except Conflict as error:
            outcomes.append(error.detail)

    threads = [threading.Thread(target=press, args=(f"OIL-{n}",)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes)[-1] == "stored", outcomes
    assert "holds 400 KGM; this event consumes 600 KGM" in sorted(outcomes)[0], outcomes
    with database.session() as session:
        lot = session.scalar(select(Lot).where(Lot.gtin == RAPESEED, Lot.lot == "RS-1"))
        assert lot is not None and (lot.produced, lot.consumed) == (1000.0, 600.0)
    database.dispose()


@pytest.mark.parametrize("same_event", [True, False], ids=["same event", "same new lot"])
def test_concurrent_captures_never_make_a_lot_or_an_event_twice(
    committed_database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    same_event: bool,
    checked_first: bool,
) -> None:
    database, ledger, dkbm = _village(committed_database_url, tmp_path)
    # Hold each capture between its checks and its writes for a moment, so that both have
    # checked before either writes unless the first one keeps the second out meanwhile.
    both_checked = threading.Barrier(2)
    write = writing.write

    def slow_write(*args: Any, **kwargs: Any) -> Any:
        with contextlib.suppress(threading.BrokenBarrierError):
            both_checked.wait(timeout=2)
        return write(*args, **kwargs)

    monkeypatch.setattr(writing, "write", slow_write)
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def harvest(kilograms: float) -> None:
        event = builders.harvest(
            gtin=RAPESEED,
            lot="RS-1",
            kilograms=kilograms,
            dkbms=[dkbm],
            when=at(5, 20),
            base_url=BASE,
        )
        start.wait()
        try:
            _capture(database, ledger, event, checked_first=checked_first)
            outcomes.append("stored")
        except Conflict as error:
            outcomes.append(error.detail)
        except Exception as error:  # the outcome under test
            outcomes.append(repr(error))

    amounts = (1000.0, 1000.0) if same_event else (1000.0, 900.0)
    threads = [threading.Thread(target=harvest, args=(kg,)) for kg in amounts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert outcomes.count("stored") == 1, outcomes
    (refused,) = [outcome for outcome in outcomes if outcome != "stored"]
    assert ("was already captured" if same_event else "already exists") in refused, outcomes
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(Event)) == 1
        lot = session.scalar(select(Lot).where(Lot.gtin == RAPESEED, Lot.lot == "RS-1"))
        assert lot is not None and lot.produced in amounts
    database.dispose()


def _harvest(dkbm: str, lot: str, kilograms: float = 1000.0) -> dict[str, Any]:
    return builders.harvest(
        gtin=RAPESEED, lot=lot, kilograms=kilograms, dkbms=[dkbm], when=at(5, 20), base_url=BASE
    )


def _press(out_lot: str, kilograms: float) -> dict[str, Any]:
    return builders.transformation(
        step="pressing",
        inputs=[(RAPESEED, "RS-1", kilograms, "KGM")],
        outputs=[(OIL, out_lot, kilograms * 0.38, "LTR")],
        when=at(6, 3),
        base_url=BASE,
    )


def _count_checks(monkeypatch: pytest.MonkeyPatch, after: Any = None) -> list[str]:
    """Where each pressing capture was checked ("beside": in the read session beside the
    writer; "locked": in the writer's session, under the lock); ``after(where)`` runs after
    each of those checks, before the capture goes on."""
    where: list[str] = []
    check = capture._check

    def counted(session: Session, request: Any, **options: Any) -> Any:
        if request.events[0].type != "TransformationEvent":
            return check(session, request, **options)
        writer = session.connection().get_execution_options().get("dv_write", False)
        where.append("locked" if writer else "beside")
        result = check(session, request, **options)
        if after is not None:
            after(where[-1])
        return result

    monkeypatch.setattr(capture, "_check", counted)
    return where


def _stored_after_checks_beside(
    database: Database, ledger: Ledger, events: list[dict[str, Any]]
) -> Callable[[str], None]:
    """For ``_count_checks``: after each check beside the writer, the next of ``events`` is
    captured (under its own lock) before the checked capture takes the lock."""
    waiting = iter(events)

    def after(where: str) -> None:
        event = next(waiting, None) if where == "beside" else None
        if event is not None:
            _capture(database, ledger, event)

    return after


def test_checked_first_a_capture_writes_what_it_checked_in_one_try(
    committed_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database, ledger, dkbm = _village(committed_database_url, tmp_path)
    _capture(database, ledger, _harvest(dkbm, "RS-1"), checked_first=True)
    where = _count_checks(monkeypatch)
    result = _capture(database, ledger, _press("OIL-1", 600.0), checked_first=True)
    assert where == ["beside"]
    with database.session() as session:
        # The lot read in the read session is updated through the writer's session.
        lot = session.scalar(select(Lot).where(Lot.gtin == RAPESEED, Lot.lot == "RS-1"))
        assert lot is not None and (lot.produced, lot.consumed) == (1000.0, 600.0)
        stored = session.scalar(select(Event).where(Event.event_id == result.events[0].event_id))
        assert stored is not None and stored.ledger_seq == result.events[0].ledger_seq
    database.dispose()


def test_checked_first_a_capture_checks_again_when_the_log_grew_meanwhile(
    committed_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database, ledger, dkbm = _village(committed_database_url, tmp_path)
    _capture(database, ledger, _harvest(dkbm, "RS-1"))
    # Between this capture's checks and its lock, another takes 600 of the 1,000 kg.
    another_press = _stored_after_checks_beside(database, ledger, [_press("OIL-1", 600.0)])
    where = _count_checks(monkeypatch, after=another_press)
    with pytest.raises(Conflict, match="holds 400 KGM; this event consumes 500 KGM"):
        _capture(database, ledger, _press("OIL-2", 500.0), checked_first=True)
    # Checked beside the writer, the other press (checked under its lock), checked again.
    assert where == ["beside", "locked", "beside"]
    with database.session() as session:
        lot = session.scalar(select(Lot).where(Lot.gtin == RAPESEED, Lot.lot == "RS-1"))
        assert lot is not None and lot.consumed == 600.0
        assert session.scalar(select(func.count()).select_from(Event)) == 2
    database.dispose()


def test_checked_first_a_capture_keeps_its_checks_when_what_was_appended_meanwhile_is_unrelated(
    committed_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database, ledger, dkbm = _village(committed_database_url, tmp_path)
    _capture(database, ledger, _harvest(dkbm, "RS-1"))
    # Another lot harvested between the checks and the lock.
    another_lot = _stored_after_checks_beside(database, ledger, [_harvest(dkbm, "RS-2", 500.0)])
    where = _count_checks(monkeypatch, after=another_lot)
    _capture(database, ledger, _press("OIL-1", 600.0), checked_first=True)
    assert where == ["beside"]
    with database.session() as session:
        lots = {lot.lot: lot.consumed for lot in session.scalars(select(Lot))}
        assert (lots["RS-1"], lots["RS-2"]) == (600.0, 0.0)
    database.dispose()


def test_checked_first_a_capture_checks_under_the_lock_when_its_lots_keep_changing(
    committed_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database, ledger, dkbm = _village(committed_database_url, tmp_path)
    _capture(database, ledger, _harvest(dkbm, "RS-1"))
    # 10 kg of the lot pressed after every check.
    presses = [_press(f"OTHER-{number}", 10.0) for number in range(capture.OPTIMISTIC_TRIES)]
    another_press = _stored_after_checks_beside(database, ledger, presses)
    where = _count_checks(monkeypatch, after=another_press)
    result = _capture(database, ledger, _press("OIL-1", 600.0), checked_first=True)
    tries = capture.OPTIMISTIC_TRIES
    # Each other press is checked under its own lock and counted too.
    assert where == ["beside", "locked"] * tries + ["locked"]
    with database.session() as session:
        stored = session.scalar(select(Event).where(Event.event_id == result.events[0].event_id))
        assert stored is not None
        lot = session.scalar(select(Lot).where(Lot.gtin == RAPESEED, Lot.lot == "RS-1"))
        assert lot is not None and lot.consumed == 600.0 + 10.0 * tries
    database.dispose()
