"""SQLite's one writer, shared fairly: a long job stores in chunks and lets other writers in
between them; a waiting writer gets the lock soon after it is free; one that waits past the
busy timeout fails as the database being unavailable (503), not as a bug."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from digital_village import db
from digital_village.bulk import next_chunk_size, write_in_chunks
from digital_village.db import Database, Failure, failure_of, make_engine


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'writes.db'}")
    with Database(engine).transaction() as session:
        session.execute(text("CREATE TABLE t (x INTEGER)"))
    yield engine
    engine.dispose()


def _burn(seconds: float) -> None:
    """Work on the CPU (chunks are sized on CPU time, which sleeping does not use)."""
    until = time.thread_time() + seconds
    while time.thread_time() < until:
        pass


def test_another_writer_gets_in_between_the_chunks_of_a_long_job(engine: Engine) -> None:
    database = Database(engine)
    started = threading.Event()
    finished: dict[str, float] = {}

    def store(session: Session, chunk: Sequence[int]) -> None:
        session.execute(text("INSERT INTO t VALUES (:x)"), [{"x": x} for x in chunk])
        _burn(0.002 * len(chunk))
        started.set()

    def other_writer() -> None:
        started.wait(10)
        with database.transaction() as session:
            session.execute(text("INSERT INTO t VALUES (-1)"))
        finished["other"] = time.monotonic()

    other = threading.Thread(target=other_writer)
    other.start()
    durations: list[float] = []
    write_in_chunks(database, list(range(400)), store, first=10, durations=durations)
    finished["job"] = time.monotonic()
    other.join()
    assert len(durations) >= 4  # ~70 ms of work a chunk
    assert finished["other"] < finished["job"]  # it did not wait for the whole job


def test_a_job_can_cap_its_chunks(engine: Engine) -> None:
    database = Database(engine)
    sizes: list[int] = []

    def store(session: Session, chunk: Sequence[int]) -> None:
        session.execute(text("INSERT INTO t VALUES (:x)"), [{"x": x} for x in chunk])
        sizes.append(len(chunk))

    write_in_chunks(database, list(range(5)), store, most=1)  # the first chunk too
    assert sizes == [1, 1, 1, 1, 1]
    sizes.clear()
    write_in_chunks(database, list(range(100, 140)), store, first=1)
    assert sizes[1] >= 10  # uncapped, the second chunk grows at once


def test_a_waiting_writer_gets_the_lock_soon_after_it_is_free(engine: Engine) -> None:
    database = Database(engine)
    held = threading.Event()

    def hold_for(seconds: float) -> None:
        with database.transaction() as session:
            session.execute(text("INSERT INTO t VALUES (0)"))
            held.set()
            time.sleep(seconds)

    holder = threading.Thread(target=hold_for, args=(0.6,))
    holder.start()
    held.wait(5)
    cost = db.track_cost()
    with database.transaction() as session:
        session.execute(text("INSERT INTO t VALUES (1)"))
    holder.join()
    # SQLite's own busy handler, sleeping 100 ms at a time by then, came back up to 100 ms late.
    assert 0.5 < cost.write_wait < 0.7


def test_a_writer_kept_out_past_the_busy_timeout_is_told_the_database_is_unavailable(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "BUSY_TIMEOUT_S", 0.2)
    database = Database(engine)
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with database.transaction() as session:
            session.execute(text("INSERT INTO t VALUES (0)"))
            held.set()
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(5)
    try:
        with pytest.raises(Exception) as raised, database.transaction() as session:
            session.execute(text("INSERT INTO t VALUES (1)"))
    finally:
        release.set()
        holder.join()
    assert failure_of(raised.value) is Failure.UNAVAILABLE
    # The connection is fine afterwards; its other statements wait BUSY_TIMEOUT_S again.
    with database.transaction() as session:
        session.execute(text("INSERT INTO t VALUES (2)"))
        assert session.execute(text("PRAGMA busy_timeout")).scalar_one() == 200


def test_chunks_are_sized_on_the_hold_a_chunk_pays_whatever_its_size() -> None:
    # 1 ms an item and no fixed cost: 70 items make the 70 ms target.
    assert next_chunk_size([(50, 0.05), (60, 0.06)]) == 70
    # 20 ms every chunk pays plus 1 ms an item: what is left of the target, 50 items.
    assert next_chunk_size([(20, 0.04), (40, 0.06)]) == 50
    # 150 ms every chunk pays (a busy server's round trips): as many items again as that,
    # not ever fewer items for the same overhead; growing at most twofold a chunk.
    assert next_chunk_size([(10, 0.16), (20, 0.17)]) == 40
    assert next_chunk_size([(40, 0.19), (80, 0.23)]) == 150
    # Two chunks of nearly one size and nearly one hold (a busy machine's noise): the fit
    # takes nearly all for fixed cost, and the next chunk only doubles.
    assert next_chunk_size([(50, 0.062), (60, 0.0621)]) == 120
    # One chunk, or chunks of one size: its cost spread over its items.
    assert next_chunk_size([(100, 0.14)]) == 50
    assert next_chunk_size([(10, 5.0)]) == 10  # never below the smallest chunk
