"""What checking a page's facts costs: batch proofs and the consumer view that names the facts.

1. Batch proofs (``GET /api/v1/ledger/proofs``): a log of ``--entries`` entries is appended,
   then batches of 50, 500 and 2,000 entries spread over it are proven against the newest
   checkpoint, each measured as wall and CPU time per batch, with the JSON's size plain and
   gzipped (level 1, as served) and the number of distinct path hashes against the sum of the
   paths' lengths (what sharing saves). The same batches are also checked as a browser does
   (``check_batch``: signature, every inclusion).
2. The season's consumer page (demo/oil_season's whole recorded season): the view built from scratch
   (what a new entry on one of its chains costs), the number of facts and entries it names, and
   its batch proof as a reader's browser asks for it.

Prints each figure with the load average, then one JSON object as the last line.

    python scripts/bench_facts.py [--quick] [--entries N] [--postgres URL]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from digital_village import migrate
from digital_village.db import Database, make_engine
from digital_village.ledger import batch, keys, note
from digital_village.ledger.log import EntryIn, Ledger

# The page tests' season and fact reader are reused as they are.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ORIGIN = "bench.digital-village.example/ledger"


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(fn: Callable[[], Any], runs: int) -> tuple[float, float, Any]:
    """Median wall ms, median CPU ms, and the last result."""
    walls, cpus, result = [], [], None
    for _ in range(runs):
        wall, used = time.perf_counter(), cpu()
        result = fn()
        walls.append((time.perf_counter() - wall) * 1000)
        cpus.append((cpu() - used) * 1000)
    return sorted(walls)[len(walls) // 2], sorted(cpus)[len(cpus) // 2], result


def entry(n: int) -> dict[str, Any]:
    return {
        "parcel": f"51060310120101{n % 99999:05d}",
        "day": "2026-05-01",
        "part": 1,
        "count": 96,
        "root": f"{n:064x}",
        "sensorElementList": [{"sensorReport": [{"dv:metric": "soil_moisture", "minValue": 21.5}]}],
    }


def batch_figures(url: str, folder: Path, entries: int, runs: int) -> dict[str, Any]:
    engine = make_engine(url)
    with engine.begin() as connection:
        migrate.upgrade(connection)
    database = Database(engine)
    keys.ensure_signing_key(folder / "ledger.key", ORIGIN)
    ledger = Ledger.from_key_file(folder / "ledger.key", ORIGIN)
    for start in range(0, entries, 10_000):
        with database.transaction() as session:
            ledger.append_many(
                session,
                [
                    EntryIn("bench.seal", entry(n))
                    for n in range(start, min(entries, start + 10_000))
                ],
            )
    verifiers = [note.Verifier.parse(ledger.vkey)]
    figures: dict[str, Any] = {"entries": entries}
    chooser = random.Random(7)
    for count in (50, 500, 2000):
        indexes = sorted(chooser.sample(range(entries), count))
        with database.session() as session:
            wall, used, document = measure(
                lambda session=session, indexes=indexes: batch.batch_proof(session, indexes), runs
            )
        body = orjson.dumps(document)
        check_wall, _, _ = measure(
            lambda body=body: batch.check_batch(orjson.loads(body), verifiers), 1
        )
        figures[f"batch_{count}"] = {
            "wall_ms": round(wall, 1),
            "cpu_ms": round(used, 1),
            "bytes": len(body),
            "gzip1_bytes": len(gzip.compress(body, compresslevel=1)),
            "distinct_hashes": len(document["hashes"]),
            "path_hashes": sum(len(item["path"]) for item in document["entries"]),
            "python_check_ms": round(check_wall, 1),
        }
    engine.dispose()
    return figures


def page_figures(url: str, folder: Path, runs: int) -> dict[str, Any]:
    # The page tests' recorded season: fields, field work, harvest, pressing, bottling,
    # a certificate and soil probes sealed day by day.
    from fastapi.testclient import TestClient
    from tests.web.conftest import make_pages
    from tests.web.facts_check import page_facts

    from digital_village.app import create_app
    from digital_village.web import consumer

    pages = make_pages(url, folder, every_hours=6)
    season = pages.season
    database = Database(pages.engine)
    with database.session() as session:
        wall, used, view = measure(
            lambda: consumer.consumer_view(
                session=session,
                gtin="06901234001037",
                lot=season.bottle_lot,
                base_url="https://dv.test",
                language="zh-CN",
                pieces="瓶",
            ),
            runs,
        )
    figures: dict[str, Any] = {
        "view_build_wall_ms": round(wall, 1),
        "view_build_cpu_ms": round(used, 1),
    }
    del view
    with TestClient(
        create_app(pages.settings, database=database), base_url="https://dv.test"
    ) as client:
        html = client.get(pages.bottle, headers={"Accept": "text/html"}).text
        facts = page_facts(html)
        indexes = sorted(
            {f.index for f in facts if f.index is not None} | {i for f in facts for i in f.more}
        )
        query = ",".join(map(str, indexes))
        wall, used, response = measure(
            lambda: client.get(
                "/api/v1/ledger/proofs",
                params={"indexes": query},
                headers={"Accept-Encoding": "gzip"},
            ),
            runs,
        )
    figures.update(
        facts=len(facts),
        entries=len(indexes),
        proofs_wall_ms=round(wall, 1),
        proofs_cpu_ms=round(used, 1),
        proofs_gzip_bytes=int(response.headers["content-length"]),
    )
    pages.engine.dispose()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 entries, 3 runs")
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument(
        "--postgres", help="PostgreSQL server URL (a throwaway database is made on it)"
    )
    args = parser.parse_args()
    entries, runs = (20_000, 3) if args.quick else (args.entries, args.runs)
    figures: dict[str, Any] = {"load_average": os.getloadavg()}
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        if args.postgres:
            from tests.conftest import PostgresServer

            server = PostgresServer(args.postgres)
            urls = [
                server.create_database("dv_bench_batch"),
                server.create_database("dv_bench_page"),
            ]
        else:
            server = None
            urls = [f"sqlite:///{root / 'batch.db'}", f"sqlite:///{root / 'page.db'}"]
        try:
            (root / "batch").mkdir()
            (root / "page").mkdir()
            figures["backend"] = "postgresql" if args.postgres else "sqlite"
            figures["batch_proofs"] = batch_figures(urls[0], root / "batch", entries, runs)
            figures["season_page"] = page_figures(urls[1], root / "page", runs)
        finally:
            if server is not None:
                for url in urls:
                    server.drop_database(url)
    figures["load_average_after"] = os.getloadavg()
    for key, value in figures.items():
        print(f"{key:>22}: {value}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
