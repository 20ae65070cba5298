"""Several processes appending at once never fork the log or leave gaps."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

from sqlalchemy import func, select

from digital_village.db import Database, track_cost
from digital_village.ledger import audit, keys
from digital_village.ledger.log import Ledger
from digital_village.ledger.models import LedgerCheckpoint, LedgerEntry

WORKERS = 4
APPENDS_EACH = 25
ORIGIN = "test.digital-village.example/ledger"


def _append_worker(url: str, key_path: str, worker: int) -> None:
    database = Database.from_url(url)
    ledger = Ledger.from_key_file(Path(key_path), ORIGIN)
    for n in range(APPENDS_EACH):
        with database.transaction(write=True) as session:
            ledger.append(session, kind="test.concurrent", data={"worker": worker, "n": n})
    database.dispose()


def test_parallel_appenders_make_one_gapless_log(
    committed_database_url: str, tmp_path: Path
) -> None:
    key_path = tmp_path / "ledger.key"
    keys.ensure_signing_key(key_path, ORIGIN)
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_append_worker, args=(committed_database_url, str(key_path), w))
        for w in range(WORKERS)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
        assert process.exitcode == 0
    database = Database.from_url(committed_database_url)
    with database.session() as session:
        seqs = session.scalars(select(LedgerEntry.seq).order_by(LedgerEntry.seq)).all()
        assert seqs == list(range(WORKERS * APPENDS_EACH))
        checkpoints = session.scalar(select(func.count()).select_from(LedgerCheckpoint))
        assert checkpoints == WORKERS * APPENDS_EACH
        report = audit.audit(session, origin=ORIGIN)
        assert report.ok, report.problems
    database.dispose()


def test_waiting_for_the_logs_lock_counts_as_waiting_not_holding(
    committed_database_url: str, tmp_path: Path
) -> None:
    # What a long job sizes its chunks on, and the access log reports: on PostgreSQL the
    # transaction begins at once and queues on the log's lock; on SQLite it queues to begin.
    key_path = tmp_path / "ledger.key"
    keys.ensure_signing_key(key_path, ORIGIN)
    ledger = Ledger.from_key_file(key_path, ORIGIN)
    database = Database.from_url(committed_database_url)
    held, release = threading.Event(), threading.Event()

    def hold_the_log() -> None:
        with database.transaction(write=True) as other:
            ledger.lock(other)
            held.set()
            release.wait(5)

    holder = threading.Thread(target=hold_the_log)
    holder.start()
    assert held.wait(5)
    threading.Timer(0.3, release.set).start()
    cost = track_cost()
    with database.transaction(write=True) as session:
        ledger.append(session, kind="test.concurrent", data={"waited": True})
    holder.join()
    database.dispose()
    assert cost.write_wait >= 0.25
    assert cost.write_hold < 0.25
