"""The publisher signs checkpoints apart from appends: once per size, soon after, never skipped."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from digital_village.app import create_app
from digital_village.config import Settings
from digital_village.db import Database
from digital_village.ledger import audit, batch, keys, log, note, publisher
from digital_village.ledger.log import EntryIn, Ledger
from digital_village.ledger.models import LedgerCheckpoint
from digital_village.ledger.publisher import Published, Publisher

ORIGIN = "test.digital-village.example/ledger"


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    """A ledger that leaves signing to a publisher, as a serving process's does."""
    key_path = tmp_path / "ledger.key"
    keys.ensure_signing_key(key_path, ORIGIN)
    return Ledger.from_key_file(key_path, ORIGIN, sign_on_append=False)


@pytest.fixture
def database(committed_database_url: str) -> Iterator[Database]:
    """A database of the current backend whose commits are real (publishers see them)."""
    opened = Database.from_url(committed_database_url)
    yield opened
    opened.dispose()


def append(database: Database, ledger: Ledger, count: int = 1) -> None:
    with database.transaction() as session:
        ledger.append_many(session, [EntryIn("test.event", {"n": n}) for n in range(count)])


def sizes(database: Database) -> list[int]:
    with database.session() as session:
        query = select(LedgerCheckpoint.size).order_by(LedgerCheckpoint.size)
        return list(session.scalars(query))


def test_appends_leave_signing_to_one_checkpoint_heard_by_listeners(
    database: Database, ledger: Ledger
) -> None:
    for _ in range(5):
        append(database, ledger)
    assert sizes(database) == []
    with database.session() as session:
        # Not covered yet: a batch proof has no checkpoint to prove against.
        assert publisher.uncovered(session) == (5, 0)
    heard: list[Published] = []
    published = publisher.publish_now(database, ledger, [heard.append])
    assert published is not None and published.size == 5
    assert heard == [published]
    assert publisher.publish_now(database, ledger, [heard.append]) is None
    assert heard == [published]
    append(database, ledger, 3)
    with database.session() as session:
        document = batch.batch_proof(session, [4, 6])
        assert (document["size"], document["pending"], document["log_size"]) == (5, [6], 8)
    publisher.publish_now(database, ledger, [heard.append])
    assert sizes(database) == [5, 8]
    assert [p.size for p in heard] == [5, 8]
    with database.session() as session:
        stored = log.checkpoint_at(session, 8)
        assert heard[-1].note == stored.note and heard[-1].root_hash == stored.root_hash
        assert note.Checkpoint.parse(note.open_note(stored.note, ledger.vkey).text).size == 8
        report = audit.audit(session, origin=ORIGIN)
    assert report.ok, report.problems
    assert report.checkpoints == 2


def test_a_background_publisher_covers_an_append_within_a_second(
    database: Database, ledger: Ledger
) -> None:
    running = Publisher(database, ledger).start()
    try:
        append(database, ledger)
        appended = time.monotonic()
        while not sizes(database) and time.monotonic() - appended < 2:
            time.sleep(0.02)
        assert sizes(database) == [1]
        assert time.monotonic() - appended < publisher.MAX_DELAY_S
    finally:
        running.stop()


def test_concurrent_publishers_sign_each_size_once_at_most_every_interval(
    database: Database, ledger: Ledger
) -> None:
    """Workers of one server each run a publisher; the database decides which one signs."""
    heard: list[int] = []
    publishers = [
        Publisher(database, ledger, interval=0.1, listeners=[lambda p: heard.append(p.size)])
        for _ in range(3)
    ]
    for each in publishers:
        each.start()
    stop = time.monotonic() + 1.5
    try:

        def appender() -> None:
            while time.monotonic() < stop:
                append(database, ledger)
                time.sleep(0.005)

        threads = [threading.Thread(target=appender) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for each in publishers:
            each.stop()
    signed = sizes(database)
    with database.session() as session:
        stored = log.entry_count(session)
        times = list(
            session.scalars(select(LedgerCheckpoint.created_at).order_by(LedgerCheckpoint.size))
        )
        report = audit.audit(session, origin=ORIGIN)
    # The last stop signed what was left, and every size was announced once, by its signer.
    assert signed[-1] == stored
    assert sorted(heard) == signed
    assert 5 <= len(signed) <= 1.5 / 0.1 + 2
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    # All but the final flush came at least an interval apart, whichever process signed.
    assert min(gaps[:-1]) >= 0.1
    assert report.ok, report.problems


def test_a_failing_listener_does_not_stop_publishing(database: Database, ledger: Ledger) -> None:
    heard: list[int] = []

    def broken(_: Published) -> None:
        raise RuntimeError("witness away")

    running = Publisher(database, ledger, listeners=[broken, lambda p: heard.append(p.size)])
    append(database, ledger, 2)
    assert running.publish_now() is not None
    append(database, ledger)
    assert running.publish_now() is not None
    assert heard == [2, 3] and sizes(database) == [2, 3]


def test_a_serving_app_appends_without_signing_and_flushes_on_shutdown(
    committed_database_url: str,
    tmp_path: Path,
) -> None:
    settings = Settings(
        data_dir=tmp_path,
        database_url=committed_database_url,
        ledger_origin=ORIGIN,
        log_format="text",
        log_level="WARNING",
    )
    keys.ensure_signing_key(settings.effective_ledger_key_path, settings.ledger_origin)
    app = create_app(settings)
    running: Publisher = app.state.publisher
    # Long enough that only the shutdown flush can sign within this test.
    running.interval = 60
    with TestClient(app) as client:
        ledger = running.ledger()
        assert ledger.sign_on_append is False
        append(app.state.db, ledger, 4)
        assert client.get("/api/v1/ledger/checkpoint").status_code == 404
        proof = client.get("/api/v1/ledger/entries/2/proof")
        assert proof.status_code == 404 and "not covered" in proof.json()["detail"]
    database = Database.from_url(committed_database_url)
    assert sizes(database) == [4]
    database.dispose()


def test_the_audit_allows_the_publisher_its_moment_but_not_more(
    database: Database, ledger: Ledger
) -> None:
    append(database, ledger, 3)
    publisher.publish_now(database, ledger)
    append(database, ledger, 2)
    # Appended just before the audit; the checkpoint comes half a second into it.
    late = threading.Timer(0.5, publisher.publish_now, (database, ledger))
    late.start()
    with database.session() as session:
        report = audit.audit(session, origin=ORIGIN)
    late.join()
    assert report.ok, report.problems
    # No publisher: the entries stay uncovered and the audit names the gap.
    append(database, ledger)
    with database.session() as session:
        report = audit.audit(session, origin=ORIGIN)
    assert [p.index for p in report.problems] == [5]
    assert "no signed checkpoint covers entries 5 to 5" in report.problems[0].what
