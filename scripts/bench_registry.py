"""Benchmark the 确权 package import: a generated county, then a yearly update.

    python scripts/bench_registry.py                   # 200,000 parcels, 60,000 households
    python scripts/bench_registry.py --quick           # 20,000 and 6,000: a couple of minutes
    python scripts/bench_registry.py --postgres postgresql+psycopg://postgres@127.0.0.1/postgres

Bars (docs/BENCHMARKS.md): the full county imports in < 3 min on SQLite and < 5 min on
PostgreSQL; a re-import with 1 % of the parcels changed in < 1 min. Each run uses a fresh
database (SQLite in a temporary folder; on PostgreSQL a database created and dropped here).

The package is generated (tests/registry/factory.py: GBK .dbf tables without .cpg, field-like
shapes in EPSG:4544) and written before the clock starts. Timed, in this process, as
`dv registry import` does it: reading the package, checking and planning, storing in short
write transactions, for
  1. the first import into an empty registry,
  2. the same package again (nothing changes),
  3. an update with 1 % of the parcels changed: half get another land use, half move to
     another household of their 发包方.
Wall and CPU seconds of this process are both given (PostgreSQL's own CPU is not counted), with
the load average: on a shared machine the CPU figure is the steadier one. Also the longest
write transaction, which bounds how long a page or a sensor can wait behind an import. The
last line printed is one JSON object with every figure. ``peak_rss_mb`` is the most memory the
process had held by the end of each step (generating the package comes first; its rows are
dropped once both versions are written).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.registry.factory import Generated, Spec, generate, write

from digital_village import migrate
from digital_village.auth.actor import Actor
from digital_village.db import Database, make_engine
from digital_village.ledger import keys
from digital_village.ledger.log import Ledger
from digital_village.regions import service as regions
from digital_village.registry.importer import import_package
from digital_village.registry.package import read_package

ORIGIN = "bench.digital-village.example/ledger"
STEPS = ("first_import", "same_package_again", "update_1_percent")


def _spec(parcels: int, households: int) -> Spec:
    groups_total = max(1, households // 30)
    villages = max(1, -(-groups_total // 20))
    groups = -(-groups_total // villages)
    per_group = max(1, households // (villages * groups))
    base = parcels // (villages * groups * per_group)
    left = parcels - base * villages * groups * per_group
    every = round(villages * groups * per_group / left) if left > 0 else 0
    return Spec(
        villages=villages,
        groups=groups,
        households=per_group,
        parcels=base,
        extra_parcel_every=every,
        degenerate_every=50,
    )


def _update(update: Generated, share: float) -> int:
    """Turn the package into the county's yearly update, in place (a copy of a full county
    would double the memory the generator holds): ``share`` of the parcels change land use or
    household. Returns how many changed."""
    step = max(1, round(1 / share))
    households = {row["CBFBM"] for row in update.tables["CBF"]}
    changed = 0
    for index in range(0, len(update.dk), step):
        row = update.dk[index]
        if changed % 2 == 0:
            row["TDLYLX"] = "013" if row["TDLYLX"] != "013" else "011"
        else:
            link = update.tables["CBDKXX"][index]
            other = link["CBFBM"][:14] + f"{int(link['CBFBM'][14:]) % 20 + 1:04d}"
            if other in households and other != link["CBFBM"]:
                link.update(CBFBM=other, CBHTBM=other + "J", CBJYQZBM=other + "J")
        changed += 1
    return changed


def _database(url: str, folder: Path) -> tuple[Database, Ledger]:
    engine = make_engine(url)
    with engine.begin() as connection:
        migrate.upgrade(connection)
    database = Database(engine)
    key = folder / "ledger.key"
    keys.ensure_signing_key(key, ORIGIN)
    with database.transaction() as session:
        regions.seed_jingyang(session=session)
    return database, Ledger.from_key_file(key, ORIGIN)


def _timed(database: Database, ledger: Ledger, folder: Path, on: str) -> dict[str, Any]:
    import datetime as dt

    wall, cpu = time.perf_counter(), time.process_time()
    package = read_package(folder)
    read_s = time.perf_counter() - wall
    report = import_package(
        database=database,
        ledger=ledger,
        package=package,
        actor=Actor.operator(),
        valid_from=dt.date.fromisoformat(on),
    )
    summary = report.as_dict()
    rejected = summary["parcels"].pop("rejected")
    return {
        "wall_s": round(time.perf_counter() - wall, 2),
        "cpu_s": round(time.process_time() - cpu, 2),
        "read_s": round(read_s, 2),
        "peak_rss_mb": _peak_rss_mb(),
        "stored": summary["stored"],
        "rejected": len(rejected),
        "first_rejections": rejected[:3],
        **{k: summary[k] for k in ("parcels", "households", "contracts", "timings")},
    }


def _peak_rss_mb() -> int:
    """The most memory this process has held so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def _postgres_database(admin_url: str) -> tuple[str, Any]:
    name = f"dv_bench_registry_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)

    def drop() -> None:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return url, drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="20,000 parcels, 6,000 households")
    parser.add_argument("--parcels", type=int, default=None)
    parser.add_argument("--households", type=int, default=None)
    parser.add_argument("--changed", type=float, default=0.01, help="share changed in step 3")
    parser.add_argument("--postgres", help="a server URL where databases may be created")
    args = parser.parse_args()
    parcels = args.parcels or (20_000 if args.quick else 200_000)
    households = args.households or (6_000 if args.quick else 60_000)
    result: dict[str, Any] = {
        "backend": "postgresql" if args.postgres else "sqlite",
        "load_average_before": os.getloadavg(),
    }
    with tempfile.TemporaryDirectory(prefix="dv-bench-registry-") as scratch:
        folder = Path(scratch)
        began = time.perf_counter()
        generated = generate(_spec(parcels, households))
        write(generated, folder / "v1", cpg=False)
        changed = _update(generated, args.changed)
        write(generated, folder / "v2", cpg=False)
        result["package"] = {
            "parcels": len(generated.dk),
            "households": len(generated.tables["CBF"]),
            "members": len(generated.tables["CBF_JTCY"]),
            "collectives": len(generated.tables["FBF"]),
            "changed_in_update": changed,
            "generate_and_write_s": round(time.perf_counter() - began, 1),
            "peak_rss_mb": _peak_rss_mb(),
        }
        print(json.dumps(result["package"]), flush=True)
        del generated  # the rows live on in the files; the import reads them back
        drop = None
        if args.postgres:
            url, drop = _postgres_database(args.postgres)
        else:
            url = f"sqlite:///{folder / 'bench.db'}"
        try:
            database, ledger = _database(url, folder)
            for step, package, on in zip(
                STEPS, ("v1", "v1", "v2"), ("2026-03-01", "2026-03-02", "2027-03-01"), strict=True
            ):
                result[step] = _timed(database, ledger, folder / package, on)
                print(step, json.dumps(result[step], ensure_ascii=False), flush=True)
            database.bind.dispose()  # type: ignore[union-attr]
        finally:
            if drop is not None:
                drop()
    result["load_average_after"] = os.getloadavg()
    print(json.dumps(result, ensure_ascii=False))
    refused = [step for step in STEPS if result[step]["rejected"] or not result[step]["stored"]]
    if refused:  # the figures then time a refusal, not an import
        sys.exit(f"the generated package was not stored in: {', '.join(refused)}")


if __name__ == "__main__":
    main()
