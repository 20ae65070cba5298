"""Ledger benchmark: appends, proofs, offline verification and the full audit, on SQLite or
PostgreSQL.

Prints each figure, then one JSON object as the last line. Measured:

- ``append_batched_per_s``: entries per second appended 1,000 to a transaction;
- ``concurrent_single_per_s``: one entry per transaction from ``--clients`` threads in each of
  ``--processes`` processes (like requests on ``dv serve --workers N``), with each process's
  publisher signing checkpoints (ledger/publisher.py); ``publish_lag_p99_ms``/``_max_ms`` is how
  long an entry waited for a checkpoint covering it, ``checkpoints_per_s`` how many were signed;
  ``concurrent_single_signing_per_s`` the same clients with a checkpoint signed in every
  transaction (how the log worked before the publisher), for comparison;
- ``proof_p50_ms``/``proof_p99_ms``: one tlog-proof built server-side (the route's work: the
  entry, the newest checkpoint, the stored hashes), at the log's size, ``--entries``;
- ``audit_entries_per_s``: the log's full audit (`dv ledger verify` without the record checks);
- ``raw_canonical_insert_per_s`` (SQLite): canonical JSON + leaf hash + a bare executemany of
  the same rows, the machine's limit for the work without the log's bookkeeping.

    python scripts/bench_ledger.py [--quick] [--entries N] [--runs R] [--postgres URL]
        [--processes P] [--clients C] [--seconds S] [--audit-only FILE]

``--audit-only FILE`` measures the audit alone on a SQLite log kept in FILE: the first run makes
it (``--entries`` appended 1,000 to a transaction), later runs audit the same file.

The bars (docs/BENCHMARKS.md): concurrent single appends >= 2,000/s on SQLite, the audit
>= 200,000 entries/s, a proof at 1,000,000 entries < 1 ms.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import os
import random
import sqlite3
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import rfc8785
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from digital_village import migrate
from digital_village.db import Database, make_engine
from digital_village.ledger import audit, keys, log, merkle
from digital_village.ledger.log import EntryIn, Ledger
from digital_village.ledger.publisher import Publisher
from digital_village.ledger.verify import verify_proof

ORIGIN = "bench.digital-village.example/ledger"


def event(n: int) -> dict[str, Any]:
    return {
        "type": "ObjectEvent",
        "bizStep": "https://w3id.org/digital-village/voc/bizstep/harvesting",
        "eventTime": "2026-05-12T08:30:00+08:00",
        "lot": f"RS2026-{n:07d}",
        "quantity": {"value": 1000 + n % 500, "uom": "KGM"},
        "parcel": f"510603101201010{n % 99999:04d}",
    }


def timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@contextmanager
def fresh_database(folder: Path, postgres: str | None) -> Iterator[str]:
    """A migrated, empty database: a file in ``folder``, or a throwaway PostgreSQL one."""
    if postgres is None:
        url = f"sqlite:///{folder / 'ledger.db'}"
        admin = None
    else:
        admin = create_engine(
            make_url(postgres).set(database="postgres"), isolation_level="AUTOCOMMIT"
        )
        name = f"dv_bench_ledger_{uuid.uuid4().hex[:8]}"
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(postgres).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    with engine.begin() as connection:
        migrate.upgrade(connection)
    engine.dispose()
    try:
        yield url
    finally:
        if admin is not None:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


def _client_process(
    url: str, key_path: str, sign: bool, clients: int, seconds: float, start_at: float, out: Any
) -> None:
    """One serving process: ``clients`` threads appending one entry per transaction, and (when
    not signing in each transaction) a publisher."""
    database = Database.from_url(url)
    ledger = Ledger.from_key_file(Path(key_path), ORIGIN, sign_on_append=sign)
    publisher = None if sign else Publisher(database, ledger).start()
    counts = [0] * clients
    pid = os.getpid()

    def client(number: int) -> None:
        while time.time() < start_at:
            time.sleep(0.001)
        stop = start_at + seconds
        n = 0
        while time.time() < stop:
            with database.transaction() as session:
                ledger.append(
                    session,
                    kind="bench.event",
                    data=event(n),
                    chain_key=f"lot:{pid}/{number}/{n // 20}",
                )
            n += 1
        counts[number] = n

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if publisher is not None:
        publisher.stop()
    database.dispose()
    out.put(sum(counts))


def concurrent_single(
    url: str, key_path: Path, *, sign: bool, processes: int, clients: int, seconds: float
) -> dict[str, float]:
    """Single-entry transactions from processes × clients at once; appends/s and publish lag."""
    database = Database.from_url(url)
    with database.session() as session:
        before = log.entry_count(session)
        signed_before = session.scalar(text("SELECT count(*) FROM ledger_checkpoint")) or 0
    database.dispose()
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    start_at = time.time() + 3.0  # every process started and connected
    workers = [
        context.Process(
            target=_client_process,
            args=(url, str(key_path), sign, clients, seconds, start_at, queue),
        )
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    appended = sum(queue.get(timeout=seconds + 120) for _ in workers)
    for worker in workers:
        worker.join(timeout=60)
    database = Database.from_url(url)
    with database.session() as session:
        size = log.entry_count(session)
        assert size == before + appended, (size, before, appended)
        assert (log.latest_checkpoint(session) or ["none"]).size == size
        signed = (
            session.scalar(text("SELECT count(*) FROM ledger_checkpoint")) or 0
        ) - signed_before
        lags = _publish_lags(session, before) if not sign else []
    database.dispose()
    key = "concurrent_single_signing" if sign else "concurrent_single"
    figures = {f"{key}_per_s": appended / seconds}
    if not sign:
        ordered = sorted(lags)
        figures["publish_lag_p99_ms"] = ordered[int(0.99 * (len(ordered) - 1))] * 1000
        figures["publish_lag_max_ms"] = ordered[-1] * 1000
        figures["checkpoints_per_s"] = signed / seconds
    return figures


def _publish_lags(session: Any, start: int) -> list[float]:
    """For each entry from ``start``: seconds from its append to the first checkpoint over it."""
    checkpoints = session.execute(
        text("SELECT size, created_at FROM ledger_checkpoint WHERE size > :s ORDER BY size"),
        {"s": start},
    ).all()
    entries = session.execute(
        text("SELECT seq, created_at FROM ledger_entry WHERE seq >= :s ORDER BY seq"),
        {"s": start},
    ).all()
    lags: list[float] = []
    position = 0
    for seq, created in entries:
        while checkpoints[position][0] <= seq:
            position += 1
        lags.append(_time(checkpoints[position][1]) - _time(created))
    return lags


def _time(value: Any) -> float:
    """A stored timestamp (naive UTC; text on SQLite) in seconds."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return float(value.replace(tzinfo=dt.UTC).timestamp())


def run_once(entries: int, folder: Path, args: argparse.Namespace) -> dict[str, float]:
    figures: dict[str, float] = {}
    key_path = folder / "ledger.key"
    keys.ensure_signing_key(key_path, ORIGIN)
    with fresh_database(folder, args.postgres) as url:
        for sign in (False, True):
            figures.update(
                concurrent_single(
                    url,
                    key_path,
                    sign=sign,
                    processes=args.processes,
                    clients=args.clients,
                    seconds=args.seconds,
                )
            )
        database = Database.from_url(url)
        ledger = Ledger.from_key_file(key_path, ORIGIN, sign_on_append=False)
        figures["append_batched_per_s"] = entries / timed(
            lambda: append_batched(database, ledger, entries)
        )
        Publisher(database, ledger).publish_now()
        with database.session() as session:
            size = log.entry_count(session)
        figures["log_size"] = size

        rng = random.Random(7)
        indexes = [rng.randrange(size) for _ in range(2000)]
        proofs: list[bytes] = []
        each: list[float] = []
        with database.session() as session:
            for index in indexes:
                started = time.perf_counter()
                proofs.append(log.inclusion_proof_file(session, index))
                each.append(time.perf_counter() - started)
        each.sort()
        figures["proof_p50_ms"] = each[len(each) // 2] * 1000
        figures["proof_p99_ms"] = each[int(0.99 * (len(each) - 1))] * 1000
        figures["proof_file_bytes"] = statistics.median(len(p) for p in proofs)

        def verify_all() -> None:
            for proof in proofs:
                verify_proof(proof, ledger.vkey)

        figures["offline_verifications_per_s"] = len(proofs) / timed(verify_all)

        figures["audit_entries_per_s"] = size / timed(lambda: run_audit(database))
        database.dispose()
    if args.postgres is None:
        figures.update(raw_limit(entries, folder))
        figures["append_vs_raw_ratio"] = (
            figures["append_batched_per_s"] / figures["raw_canonical_insert_per_s"]
        )
    return figures


def append_batched(database: Database, ledger: Ledger, entries: int) -> None:
    """``entries`` appended 1,000 to a transaction, a checkpoint signed every 10,000."""
    batch = 1000
    for start in range(0, entries, batch):
        with database.transaction() as session:
            ledger.append_many(
                session,
                [EntryIn("bench", event(n), f"lot:{n // 10}") for n in range(start, start + batch)],
            )
            if (start // batch) % 10 == 9:
                ledger.sign_checkpoint(session, log.entry_count(session))


def run_audit(database: Database) -> None:
    with database.session() as session:
        report = audit.audit(session, origin=ORIGIN)
    assert report.ok, report.problems[:3]


def audit_only(entries: int, path: Path) -> dict[str, float]:
    """The audit alone, of the SQLite log in ``path``: made first (batched appends of
    ``entries``, checkpoints every 10,000) when the file is not there, else reused as it is."""
    url = f"sqlite:///{path}"
    key_path = path.with_suffix(".key")
    if not path.exists():
        keys.ensure_signing_key(key_path, ORIGIN)
        engine = make_engine(url)
        with engine.begin() as connection:
            migrate.upgrade(connection)
        engine.dispose()
        database = Database.from_url(url)
        ledger = Ledger.from_key_file(key_path, ORIGIN, sign_on_append=False)
        append_batched(database, ledger, entries)
        Publisher(database, ledger).publish_now()
        database.dispose()
    database = Database.from_url(url)
    with database.session() as session:
        size = log.entry_count(session)
    figures = {"log_size": float(size)}
    figures["audit_entries_per_s"] = size / timed(lambda: run_audit(database))
    database.dispose()
    return figures


def raw_limit(entries: int, folder: Path) -> dict[str, float]:
    """Canonical JSON + leaf hash + a raw executemany of the same rows into a bare table, in
    1000-row transactions: the machine's limit for the work without the log."""
    raw = sqlite3.connect(folder / "raw.db", isolation_level=None)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("PRAGMA synchronous=NORMAL")
    raw.execute("CREATE TABLE entry (seq INTEGER PRIMARY KEY, kind TEXT, body BLOB, leaf BLOB)")

    def raw_insert() -> None:
        for start in range(0, entries, 1000):
            rows = []
            for n in range(start, start + 1000):
                body = rfc8785.dumps({"v": 1, "kind": "bench", "data": event(n)})
                rows.append((n, "bench", body, merkle.hash_leaf(body)))
            raw.execute("BEGIN")
            raw.executemany("INSERT INTO entry VALUES (?, ?, ?, ?)", rows)
            raw.execute("COMMIT")

    figures = {"raw_canonical_insert_per_s": entries / timed(raw_insert)}
    raw.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, about a minute")
    parser.add_argument("--entries", type=int, default=None, help="log size for proofs, audit")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--postgres", default=None, help="PostgreSQL server URL (else SQLite)")
    parser.add_argument("--processes", type=int, default=2, help="appending processes")
    parser.add_argument("--clients", type=int, default=4, help="appending threads per process")
    parser.add_argument("--seconds", type=float, default=None, help="concurrent appends, s")
    parser.add_argument(
        "--audit-only",
        type=Path,
        default=None,
        metavar="FILE",
        help="only the audit, of the SQLite log FILE (made with --entries when absent, kept)",
    )
    args = parser.parse_args()
    entries = args.entries or (20_000 if args.quick else 1_000_000)
    runs = args.runs or 1
    args.seconds = args.seconds or (3.0 if args.quick else 10.0)
    load_before = os.getloadavg()[0]
    results = []
    for run in range(runs):
        if args.audit_only is not None:
            figures = audit_only(entries, args.audit_only)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                figures = run_once(entries, Path(tmp), args)
        results.append(figures)
        print(f"run {run + 1}/{runs}: " + ", ".join(f"{k}={v:,.2f}" for k, v in figures.items()))
    medians: dict[str, Any] = {
        k: round(statistics.median(r[k] for r in results), 3) for k in results[0]
    }
    medians.update(
        {
            "entries": entries,
            "runs": runs,
            "processes": args.processes,
            "clients_per_process": args.clients,
            "backend": "postgresql" if args.postgres else "sqlite",
            "load_average_1m_before": round(load_before, 2),
            "load_average_1m_after": round(os.getloadavg()[0], 2),
            "cpus": os.cpu_count(),
        }
    )
    print(json.dumps(medians))


if __name__ == "__main__":
    main()
