"""The scan writer: scans of bottles' pages are stored by one background thread, all that are
waiting in one transaction, each counted as if stored alone; a page waits for its scan's commit
only briefly and is served without it otherwise (the scan is stored later, or dropped and
counted); shutdown stores every scan handed over."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager

import httpx
import pytest
from sqlalchemy import Engine, delete, func, select
from sqlalchemy.exc import OperationalError

from digital_village.app import create_app
from digital_village.db import Database
from digital_village.demo import oil_season as seasons
from digital_village.web import scan_writer, scans
from digital_village.web.models import Scan
from tests.web.conftest import BASE, Pages, client_at

HTML = {"Accept": "text/html"}
AT = dt.datetime(2026, 7, 1, 9, tzinfo=dt.UTC)


def submit(writer: scan_writer.ScanWriter, item: scans.ScanIn) -> Future[scans.ScanSummary]:
    future = writer.submit(item)
    assert future is not None, "the writer dropped a scan"
    return future


def scan(serial: str, network: int, *, minutes: int = 0) -> scans.ScanIn:
    return scans.ScanIn(
        gtin=seasons.BOTTLE,
        serial=serial,
        network=f"10.{network}.0.0/24",
        geo=None,
        at=AT + dt.timedelta(minutes=minutes),
    )


def rows(engine: Engine, serial: str) -> int:
    with engine.connect() as connection:
        return connection.execute(
            select(func.count()).select_from(Scan).where(Scan.serial == serial)
        ).scalar_one()


@pytest.fixture
def engine(migrated_engine: Engine) -> Iterator[Engine]:
    """The suite's database, written for real (committed); this test's serials removed after."""
    yield migrated_engine
    with migrated_engine.begin() as connection:
        connection.execute(delete(Scan).where(Scan.serial.like("W%")))


@contextmanager
def write_lock_held(engine: Engine) -> Iterator[None]:
    """Another connection holds the scans' write lock until the block ends."""
    # SQLite: BEGIN IMMEDIATE takes the database's write lock.
    with engine.execution_options(dv_write=True).connect() as connection, connection.begin():
        if engine.dialect.name == "postgresql":
            connection.exec_driver_sql("LOCK TABLE web_scan IN ACCESS EXCLUSIVE MODE")
        yield


def test_waiting_scans_share_one_transaction_and_count_in_order(engine: Engine) -> None:
    writer = scan_writer.ScanWriter(Database(engine))
    try:
        with write_lock_held(engine):
            futures = [submit(writer, scan("W1", network)) for network in range(40)]
            time.sleep(0.3)  # the writer has taken what was waiting and waits for the lock
            futures += [submit(writer, scan("W1", network)) for network in range(40, 60)]
        counts = [future.result(timeout=30).count for future in futures]
    finally:
        writer.stop()
    assert counts == list(range(1, 61))  # each saw exactly the scans handed over before it
    assert writer.stored == 60
    assert writer.batches <= 3  # group commit: not one transaction per scan
    assert rows(engine, "W1") == 60


def test_a_repeat_from_the_same_network_counts_once_in_a_batch(engine: Engine) -> None:
    writer = scan_writer.ScanWriter(Database(engine))
    try:
        with write_lock_held(engine):
            futures = [submit(writer, scan("W2", 7, minutes=i)) for i in range(5)]
        found = [future.result(timeout=30) for future in futures]
    finally:
        writer.stop()
    assert [summary.count for summary in found] == [1, 1, 1, 1, 1]
    assert rows(engine, "W2") == 1


def test_stop_stores_every_scan_handed_over_and_the_writer_starts_again(engine: Engine) -> None:
    writer = scan_writer.ScanWriter(Database(engine))
    futures = [submit(writer, scan("W3", network)) for network in range(25)]
    writer.stop()
    assert all(future.done() for future in futures)
    assert rows(engine, "W3") == 25
    # A scan after stop starts a new thread.
    assert submit(writer, scan("W3", 99)).result(timeout=30).count == 26
    writer.stop()


def test_a_scan_that_cannot_be_stored_fails_alone(engine: Engine) -> None:
    writer = scan_writer.ScanWriter(Database(engine))
    naive = scans.ScanIn(seasons.BOTTLE, "W4", "10.1.0.0/24", None, dt.datetime(2026, 7, 1, 9))
    try:
        with write_lock_held(engine):
            good = [submit(writer, scan("W4", network)) for network in range(3)]
            bad = submit(writer, naive)
            good.append(submit(writer, scan("W4", 3)))
        assert [future.result(timeout=30).count for future in good] == [1, 2, 3, 4]
        with pytest.raises(Exception, match="naive datetime"):
            bad.result(timeout=30)
    finally:
        writer.stop()
    assert rows(engine, "W4") == 4


def test_when_the_database_is_away_a_batch_fails_at_once(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    busy = sqlite3.OperationalError("database is locked")
    busy.sqlite_errorcode = 5  # SQLITE_BUSY: waited out busy_timeout
    calls: list[str] = []

    def unavailable(session: object, item: scans.ScanIn) -> scans.ScanSummary:
        calls.append(item.serial)
        raise OperationalError("INSERT INTO web_scan ...", {}, busy)

    monkeypatch.setattr(scans, "store", unavailable)
    writer = scan_writer.ScanWriter(Database(engine))
    try:
        with write_lock_held(engine):
            futures = [submit(writer, scan("W5", network)) for network in range(10)]
            time.sleep(0.3)
        for future in futures:
            with pytest.raises(OperationalError, match="locked"):
                future.result(timeout=30)
    finally:
        writer.stop()
    # Each batch tried once; retrying its scans one by one would wait on the database again.
    assert len(calls) <= 3


@pytest.fixture
def committed(pages_db: Pages) -> Iterator[Pages]:
    """The season database without a test transaction: scans are really committed."""
    yield pages_db
    with pages_db.engine.begin() as connection:
        connection.execute(delete(Scan).where(Scan.serial.in_(("0005", "0006"))))


def test_a_scan_acknowledged_by_the_page_is_stored_and_survives_shutdown(
    committed: Pages,
) -> None:
    app = create_app(committed.settings, database=Database(committed.engine))
    bottle = committed.bottle.replace("/21/0001", "/21/0005")
    shown = []
    for address in ("203.0.113.5", "198.51.100.5", "192.0.2.5"):
        with client_at(app, address) as client:  # each block ends with the app's shutdown
            html = client.get(bottle, headers=HTML).text
            found = re.search(r'data-scans="(\d+)"', html)
            assert found, html[:300]
            shown.append(int(found.group(1)))
    assert shown == [1, 2, 3]
    assert rows(committed.engine, "0005") == 3
    assert app.state.resolver.scans.stored == 3


def test_pages_answered_at_once_each_count_their_own_scan(committed: Pages) -> None:
    app = create_app(committed.settings, database=Database(committed.engine))
    bottle = "/page" + committed.bottle.replace("/21/0001", "/21/0006")

    async def scan_from(network: int) -> int:
        transport = httpx.ASGITransport(app=app, client=(f"10.{network}.9.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            response = await client.get(bottle, headers=HTML)
        assert response.status_code == 200, response.text[:300]
        found = re.search(r'data-scans="(\d+)"', response.text)
        assert found
        return int(found.group(1))

    async def scan_all() -> list[int]:
        return await asyncio.gather(*(scan_from(network) for network in range(24)))

    try:
        # A loop of its own on another thread: browser tests in this worker keep one running.
        with ThreadPoolExecutor(1) as thread:
            shown = thread.submit(asyncio.run, scan_all()).result()
    finally:
        app.state.resolver.close()
    # Each page counted its own scan and those committed before it: no two pages agree.
    assert sorted(shown) == list(range(1, 25))
    assert rows(committed.engine, "0006") == 24


def test_a_page_whose_scan_cannot_be_stored_in_time_is_served_and_the_scan_stored_later(
    committed: Pages,
) -> None:
    settings = committed.settings.model_copy(update={"scan_wait_ms": 100})
    app = create_app(settings, database=Database(committed.engine))
    bottle = committed.bottle.replace("/21/0001", "/21/0005")
    with client_at(app, "203.0.113.15") as client:
        client.get(bottle, headers=HTML)  # the view is built and kept; one scan stored
        with write_lock_held(committed.engine):  # a long write holds the database's writer
            started = time.monotonic()
            response = client.get(bottle.replace("/21/0005", "/21/0006"), headers=HTML)
            waited = time.monotonic() - started
        assert response.status_code == 200
        assert waited < 2.0  # served without its scan; not held by the lock
        assert "data-scans=" not in response.text  # no count it could vouch for
        metrics = client.get("/metrics").text
    # Shutdown stores what was handed over: the late scan is stored, not lost.
    assert rows(committed.engine, "0006") == 1
    assert app.state.resolver.scans.late == 1
    assert 'dv_scans_total{outcome="late"} 1.0' in metrics


def test_a_scan_that_fails_to_store_is_dropped_and_counted_and_the_page_served(
    committed: Pages, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(session: object, item: scans.ScanIn) -> scans.ScanSummary:
        raise OperationalError("INSERT INTO web_scan ...", {}, sqlite3.OperationalError("disk I/O"))

    app = create_app(committed.settings, database=Database(committed.engine))
    bottle = committed.bottle.replace("/21/0001", "/21/0005")
    with client_at(app, "203.0.113.16") as client:
        client.get(bottle, headers=HTML)
        monkeypatch.setattr(scans, "store", broken)
        response = client.get(bottle, headers=HTML)
        metrics = client.get("/metrics").text
    assert response.status_code == 200
    # The count as this process last stored it, from the first view.
    assert 'data-scans="1"' in response.text
    assert app.state.resolver.scans.dropped == 1
    assert 'dv_scans_total{outcome="dropped"} 1.0' in metrics
    assert 'dv_scans_total{outcome="stored"} 1.0' in metrics


def test_beyond_the_waiting_limit_scans_are_dropped_not_queued(engine: Engine) -> None:
    writer = scan_writer.ScanWriter(Database(engine), max_waiting=5)
    try:
        with write_lock_held(engine):
            futures = [writer.submit(scan("W6", network)) for network in range(3)]
            time.sleep(0.3)  # the writer took those three and waits for the lock
            futures += [writer.submit(scan("W6", network)) for network in range(3, 12)]
        kept = [future for future in futures if future is not None]
        assert len(kept) == 3 + 5 and writer.dropped == 4
        assert [future.result(timeout=30).count for future in kept] == list(range(1, 9))
    finally:
        writer.stop()
    assert rows(engine, "W6") == 8
