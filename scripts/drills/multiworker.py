"""Drill: several API workers on one database, writing and reading at once.

`dv serve --workers N` against PostgreSQL (or SQLite); threads record field work as EPCIS
events (each appended to the ledger), ingest sensor batches (each sent twice, so half must
come back as duplicates) and read pages and checkpoints. Afterwards: no 5xx, the log is one
gapless audited sequence holding every acknowledged event, and no reading is stored twice.

    python scripts/drills/multiworker.py [--postgres URL] [--workers 3] [--seconds 20]

Prints figures; the last line is one JSON object. Exit 1 if any check fails.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, func, select

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import PUBLIC_BASE_URL, Deployment, report

from digital_village.iot.models import Reading
from digital_village.ledger.models import LedgerEntry
from digital_village.trace import builders

CHINA = dt.timezone(dt.timedelta(hours=8))


def run(deployment: Deployment, *, workers: int, seconds: float) -> dict[str, Any]:
    deployment.start(workers=workers)
    statuses: Counter[int] = Counter()
    acknowledged: dict[int, str] = {}  # ledger index → eventID
    ingest = {"sent": 0, "accepted": 0, "duplicates": 0, "second_not_duplicate": 0}
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def note(response: httpx.Response) -> None:
        with lock:
            statuses[response.status_code] += 1

    def recorder(worker: int) -> None:
        headers = {"Authorization": f"Bearer {deployment.manager_token}"}
        with httpx.Client(base_url=deployment.base, headers=headers, timeout=30) as client:
            n = 0
            while time.monotonic() < stop_at:
                n += 1
                when = dt.datetime.now(CHINA) - dt.timedelta(minutes=worker * 10_000 + n)
                event = builders.field_work(
                    "irrigating",
                    dkbm=deployment.parcels[n % len(deployment.parcels)],
                    when=when,
                    base_url=PUBLIC_BASE_URL,
                )
                response = client.post("/api/v1/events", json=event)
                note(response)
                if response.status_code == 201:
                    body = response.json()
                    with lock:
                        acknowledged[body["ledgerSeq"]] = body["eventID"]

    def ingester(worker: int) -> None:
        headers = {"Authorization": f"Bearer {deployment.device_token}"}
        # Readings count only from the device's installation on; one millisecond apart, each
        # worker in its own stretch of time, all within the five minutes ahead that are allowed.
        base_ms = int(time.time() * 1000) + worker * 100_000
        with httpx.Client(base_url=deployment.base, headers=headers, timeout=30) as client:
            batch = 0
            while time.monotonic() < stop_at:
                readings = [
                    {
                        "metric": "soil_moisture",
                        "time": base_ms + batch * 500 + i,
                        "value": 30.0 + i % 7,
                    }
                    for i in range(500)
                ]
                batch += 1
                for attempt in (1, 2):
                    response = client.post("/api/v1/telemetry", json={"readings": readings})
                    note(response)
                    if response.status_code != 200:
                        continue
                    body = response.json()
                    with lock:
                        ingest["sent"] += len(readings) if attempt == 1 else 0
                        ingest["accepted"] += body["accepted"]
                        ingest["duplicates"] += body["duplicates"]
                        if attempt == 2 and body["duplicates"] != len(readings):
                            ingest["second_not_duplicate"] += 1

    def reader() -> None:
        with httpx.Client(base_url=deployment.base, timeout=30) as client:
            n = 0
            while time.monotonic() < stop_at:
                n += 1
                for path in (
                    "/api/v1/ledger/checkpoint",
                    f"/api/v1/parcels/{deployment.parcels[n % len(deployment.parcels)]}",
                    f"/p/{deployment.parcels[0]}",
                ):
                    note(client.get(path))

    threads = [threading.Thread(target=recorder, args=(w,)) for w in range(2)]
    threads += [threading.Thread(target=ingester, args=(w,)) for w in range(2)]
    threads += [threading.Thread(target=reader) for _ in range(2)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    deployment.stop()

    engine = create_engine(deployment.database_url)
    with engine.connect() as connection:
        entries = connection.scalar(select(func.count()).select_from(LedgerEntry)) or 0
        last = connection.scalar(select(func.max(LedgerEntry.seq)))
        stored_ids = (
            dict(
                connection.execute(
                    select(LedgerEntry.seq, LedgerEntry.body).where(
                        LedgerEntry.seq.in_(list(acknowledged))
                    )
                ).all()
            )
            if acknowledged
            else {}
        )
        readings = (
            connection.scalar(
                select(func.count())
                .select_from(Reading)
                .where(Reading.device_id == deployment.device_id)
            )
            or 0
        )
    engine.dispose()
    missing = [
        seq
        for seq, event_id in acknowledged.items()
        if event_id.encode() not in stored_ids.get(seq, b"")
    ]
    audit = deployment.audit()
    requests = sum(statuses.values())
    figures = {
        "workers": workers,
        "seconds": round(elapsed, 1),
        "requests": requests,
        "requests_per_s": round(requests / elapsed, 1),
        "status_counts": {str(k): v for k, v in sorted(statuses.items())},
        "errors_5xx": sum(v for k, v in statuses.items() if k >= 500),
        "events_acknowledged": len(acknowledged),
        "acknowledged_missing_from_ledger": len(missing),
        "ledger_entries": entries,
        "ledger_gapless": last is not None and last + 1 == entries,
        "ledger_audit_ok": audit["ok"],
        "readings_sent": ingest["sent"],
        "readings_accepted": ingest["accepted"],
        "readings_stored": readings,
        "resends_not_all_duplicates": ingest["second_not_duplicate"],
    }
    figures["ok"] = (
        figures["errors_5xx"] == 0
        and not missing
        and figures["ledger_gapless"]
        and figures["ledger_audit_ok"]
        and readings == ingest["accepted"]
        and ingest["second_not_duplicate"] == 0
        and len(acknowledged) > 0
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--postgres",
        default=os.environ.get("DV_TEST_POSTGRES_URL"),
        help="PostgreSQL server URL (a throwaway database is made on it)",
    )
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    deployment = Deployment.create(args.postgres)
    try:
        figures = run(deployment, workers=args.workers, seconds=args.seconds)
    finally:
        deployment.destroy()
    report(figures)


if __name__ == "__main__":
    main()
