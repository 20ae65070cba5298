"""Ledger benchmark: appends, proofs, offline verification and the full audit on SQLite.

Prints each figure, then one JSON object as the last line. The machine's own limit is measured
in the same run: canonicalising the same envelopes plus a raw executemany of the same rows into
an equivalent bare table, so the ratio shows what the log's bookkeeping costs.

    python scripts/bench_ledger.py [--quick] [--entries N] [--runs R]
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import rfc8785

from digital_village import migrate
from digital_village.db import Database, make_engine
from digital_village.ledger import audit, keys, log, merkle
from digital_village.ledger.log import EntryIn, Ledger
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


def run_once(entries: int, folder: Path) -> dict[str, float]:
    url = f"sqlite:///{folder / 'ledger.db'}"
    engine = make_engine(url)
    with engine.begin() as connection:
        migrate.upgrade(connection)
    database = Database(engine)
    key_path = folder / "ledger.key"
    keys.ensure_signing_key(key_path, ORIGIN)
    ledger = Ledger.from_key_file(key_path, ORIGIN)
    figures: dict[str, float] = {}

    batch = 1000

    def append_batched() -> None:
        for start in range(0, entries, batch):
            with database.transaction() as session:
                ledger.append_many(
                    session, [EntryIn("bench", event(n)) for n in range(start, start + batch)]
                )

    figures["append_batched_per_s"] = entries / timed(append_batched)

    singles = max(200, entries // 50)

    def append_single() -> None:
        for n in range(singles):
            with database.transaction() as session:
                ledger.append(session, kind="bench", data=event(n))

    figures["append_single_tx_per_s"] = singles / timed(append_single)
    size = entries + singles

    rng = random.Random(7)
    indexes = [rng.randrange(size) for _ in range(2000)]
    proofs: list[bytes] = []

    def make_proofs() -> None:
        with database.session() as session:
            proofs.extend(log.inclusion_proof_file(session, i) for i in indexes)

    figures["proofs_per_s"] = len(indexes) / timed(make_proofs)
    figures["proof_file_bytes"] = statistics.median(len(p) for p in proofs)

    def verify_all() -> None:
        for proof in proofs:
            verify_proof(proof, ledger.vkey)

    figures["offline_verifications_per_s"] = len(proofs) / timed(verify_all)

    report: list[audit.AuditReport] = []

    def run_audit() -> None:
        with database.session() as session:
            report.append(audit.audit(session, origin=ORIGIN))

    figures["audit_entries_per_s"] = size / timed(run_audit)
    assert report[0].ok, report[0].problems[:3]

    # The machine's limit for the same work without the log: canonical JSON + leaf hash +
    # a raw executemany of the same rows into a bare table in 1000-row transactions.
    raw = sqlite3.connect(folder / "raw.db", isolation_level=None)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("PRAGMA synchronous=NORMAL")
    raw.execute("CREATE TABLE entry (seq INTEGER PRIMARY KEY, kind TEXT, body BLOB, leaf BLOB)")

    def raw_insert() -> None:
        for start in range(0, entries, batch):
            rows = []
            for n in range(start, start + batch):
                body = rfc8785.dumps({"v": 1, "kind": "bench", "data": event(n)})
                rows.append((n, "bench", body, merkle.hash_leaf(body)))
            raw.execute("BEGIN")
            raw.executemany("INSERT INTO entry VALUES (?, ?, ?, ?)", rows)
            raw.execute("COMMIT")

    figures["raw_canonical_insert_per_s"] = entries / timed(raw_insert)
    figures["append_vs_raw_ratio"] = (
        figures["append_batched_per_s"] / figures["raw_canonical_insert_per_s"]
    )
    raw.close()
    database.dispose()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, under a minute")
    parser.add_argument("--entries", type=int, default=None)
    parser.add_argument("--runs", type=int, default=None)
    args = parser.parse_args()
    entries = args.entries or (10_000 if args.quick else 100_000)
    runs = args.runs or (1 if args.quick else 3)
    results = []
    for run in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            figures = run_once(entries, Path(tmp))
        results.append(figures)
        print(f"run {run + 1}/{runs}: " + ", ".join(f"{k}={v:,.2f}" for k, v in figures.items()))
    medians = {k: round(statistics.median(r[k] for r in results), 3) for k in results[0]}
    medians.update({"entries": entries, "runs": runs, "backend": "sqlite"})
    print(json.dumps(medians))


if __name__ == "__main__":
    main()
