"""Benchmark the map: bulk import, point → parcel lookups, HTTP lookup latency, map rendering.

    python scripts/bench_parcels.py          # 100,000 imported, 500,000 looked up
    python scripts/bench_parcels.py --quick  # 5,000 and 50,000: under a minute

Each figure is measured on a fresh SQLite database in a temporary folder. The import goes
through the same path as `dv parcels import` (vectorised checks, overlap test, DKBM
allocation, one ledger entry per parcel, rows and history) and commits. The lookup database
is filled by bulk inserts of synthetic fields (the R*Tree is kept by the migration's
triggers), then queried in-process one point at a time and over HTTP through a uvicorn
server on 127.0.0.1. The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from bench_pages import uvicorn_command  # scripts/ is on the path of a script
from sqlalchemy import insert

from digital_village import migrate
from digital_village.auth.actor import Actor
from digital_village.db import Database, make_engine
from digital_village.ledger import keys
from digital_village.ledger.log import Ledger
from digital_village.parcels import io as parcel_io
from digital_village.parcels import render
from digital_village.parcels import service as parcels
from digital_village.parcels.geometry import to_lonlat
from digital_village.parcels.models import Parcel, ParcelStatus
from digital_village.regions import service as regions

VILLAGE = "510603101201"
GROUPS = [f"{VILLAGE}{g:02d}" for g in range(1, 10)]
ORIGIN_E, ORIGIN_N = 430_000.0, 3_459_000.0
SIZE, GAP = 40.0, 1.0  # 40 m fields (2.4 亩), 1 m ridges


def _fields(count: int, columns: int = 400) -> np.ndarray[Any, Any]:
    """``count`` lon/lat fields in a grid, each a slightly skewed quadrilateral."""
    rng = np.random.default_rng(510603)
    index = np.arange(count)
    x0 = ORIGIN_E + (index % columns) * (SIZE + GAP)
    y0 = ORIGIN_N + (index // columns) * (SIZE + GAP)
    skew = rng.uniform(-4, 4, count)
    rings = np.stack(
        [
            np.column_stack([x0, y0]),
            np.column_stack([x0 + SIZE, y0]),
            np.column_stack([x0 + SIZE + skew / 10, y0 + SIZE]),
            np.column_stack([x0 + skew / 10, y0 + SIZE]),
        ],
        axis=1,
    )
    return to_lonlat(shapely.polygons(rings), 4544)


def _database(folder: Path) -> tuple[Database, Ledger, str]:
    url = f"sqlite:///{folder / 'bench.db'}"
    engine = make_engine(url)
    with engine.begin() as connection:
        migrate.upgrade(connection)
    database = Database(engine)
    key = folder / "ledger.key"
    keys.ensure_signing_key(key, "bench.digital-village.example/ledger")
    ledger = Ledger.from_key_file(key, "bench.digital-village.example/ledger")
    operator = Actor.operator()
    with database.transaction() as session:
        regions.seed_jingyang(session=session)
        regions.add_region(session=session, code=VILLAGE, name="民安村", actor=operator)
        for code in GROUPS:
            regions.add_region(session=session, code=code, name=f"{code[-2:]}组", actor=operator)
    return database, ledger, url


def bench_import(folder: Path, count: int) -> dict[str, float]:
    database, ledger, _ = _database(folder)
    shapes = _fields(count)
    # Group 01 holds a 2,000-parcel village's worth of fields (the map figure); the rest fill
    # further groups, 25,000 each (DKBM sequences go up to 99,999 per FBFBM).
    owners = [GROUPS[0] if i < 2000 else GROUPS[1 + (i - 2000) // 25_000] for i in range(count)]
    document = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {
                    "land_use": "0101",
                    "fbfbm": owners[i],
                    "crop_summer": "水稻",
                    "crop_winter": "油菜",
                },
                "geometry": json.loads(shapely.to_geojson(shape)),
            }
            for i, shape in enumerate(shapes)
        ],
    }
    source = parcel_io.read_geojson(document, filename="bench.geojson")
    started, cpu = time.perf_counter(), time.process_time()
    writes: list[float] = []
    report = parcel_io.import_features(
        database=database,
        ledger=ledger,
        source=source,
        options=parcel_io.ImportOptions(fbfbm=VILLAGE + "00"),
        actor=Actor.operator(),
        writes=writes,
    )
    seconds, cpu_s = time.perf_counter() - started, time.process_time() - cpu
    assert len(report.created) == count and not report.rejected, report.rejected[:3]
    # The map of a 2,000-parcel village, from the query to the file. matplotlib is imported
    # first: a server pays that once, not per map.
    import matplotlib.figure  # noqa: F401

    with database.session() as session:
        started = time.perf_counter()
        drawing = render.map_data(session=session, code=GROUPS[0])
        svg = render.to_svg(drawing)
        svg_s = time.perf_counter() - started
        started = time.perf_counter()
        png = render.to_png(render.map_data(session=session, code=GROUPS[0]))
        png_s = time.perf_counter() - started
        rows = drawing.parcels
    assert svg.startswith(b"<svg") and png.startswith(b"\x89PNG")
    database.dispose()
    return {
        "import_parcels": count,
        "import_s": round(seconds, 2),
        "import_per_s": round(count / seconds),
        # CPU seconds of this process: what the import costs when other work shares the cores.
        "import_cpu_s": round(cpu_s, 2),
        # Each write transaction of the import: how many, and the longest it held the writer.
        "import_writes": len(writes),
        "import_write_max_s": round(max(writes, default=0.0), 3),
        "map_parcels": len(rows),
        "map_svg_s": round(svg_s, 3),
        "map_png_s": round(png_s, 3),
    }


def _fill(database: Database, count: int) -> np.ndarray[Any, Any]:
    """Insert ``count`` synthetic parcels straight into the table; return their centroids."""
    shapes = _fields(count, columns=1000)
    wkbs = shapely.to_wkb(shapes, output_dimension=2, byte_order=1)
    bounds = shapely.bounds(shapes)
    chunk = 20_000
    with database.transaction() as session:
        for start in range(0, count, chunk):
            rows = [
                {
                    "dkbm": f"{GROUPS[(start + i) // 90_000]}{(start + i) % 90_000 + 1:05d}",
                    "fbfbm": GROUPS[(start + i) // 90_000],
                    "township_code": VILLAGE[:9],
                    "village_code": VILLAGE,
                    "group_code": GROUPS[(start + i) // 90_000],
                    "land_use": "0101",
                    "status": ParcelStatus.ACTIVE,
                    "area_m2": 1600.0,
                    "area_mu": 2.4,
                    "area_ha": 0.16,
                    "geodesic_m2": 1600.0,
                    "epsg": 4544,
                    "geometry_wkb": wkbs[start + i],
                    "geometry_sha256": "0" * 64,
                    "fingerprint": f"{start + i:064d}",
                    "min_lon": bounds[start + i, 0],
                    "min_lat": bounds[start + i, 1],
                    "max_lon": bounds[start + i, 2],
                    "max_lat": bounds[start + i, 3],
                }
                for i in range(min(chunk, count - start))
            ]
            session.execute(insert(Parcel), rows)
    return shapely.get_coordinates(shapely.centroid(shapes))


def bench_lookup(folder: Path, count: int, samples: int, http_samples: int) -> dict[str, float]:
    database, _, url = _database(folder)
    started = time.perf_counter()
    centres = _fill(database, count)
    fill_s = time.perf_counter() - started
    rng = random.Random(1)
    picks = [rng.randrange(count) for _ in range(samples)]
    with database.session() as session:
        started, cpu = time.perf_counter(), time.process_time()
        for pick in picks:
            lon, lat = centres[pick]
            assert parcels.locate_id(session=session, lon=lon, lat=lat) == pick + 1
        in_process_s, in_process_cpu = time.perf_counter() - started, time.process_time() - cpu
        started = time.perf_counter()
        for pick in picks[: samples // 4]:
            lon, lat = centres[pick]
            assert parcels.parcel_containing_point(session=session, lon=lon, lat=lat)
        orm_s = time.perf_counter() - started
    database.dispose()
    print(
        f"lookup at {count}: {samples / in_process_s:.0f}/s in-process "
        f"({samples / in_process_cpu:.0f} per CPU second)",
        flush=True,
    )
    http = _bench_http(folder, url, centres, http_samples)
    return {
        "lookup_parcels": count,
        "lookup_fill_s": round(fill_s, 1),
        "lookups_per_s": round(samples / in_process_s),
        "lookups_per_cpu_s": round(samples / in_process_cpu),
        "lookups_parcel_per_s": round((samples // 4) / orm_s),
        **http,
    }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _bench_http(folder: Path, url: str, centres: Any, samples: int) -> dict[str, float]:
    import httpx

    port = _free_port()
    env = {
        **os.environ,
        "DV_DATA_DIR": str(folder),
        "DV_DATABASE_URL": url,
        "DV_LEDGER_KEY_PATH": str(folder / "ledger.key"),
        "DV_LOG_LEVEL": "WARNING",
        # Measuring the lookup, not the public rate limit.
        "DV_RATE_LIMIT_PUBLIC_PER_MINUTE": "100000000",
    }
    server = subprocess.Popen(
        uvicorn_command(port, 1),
        env=env,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=10) as client:
            for _ in range(600):
                if server.poll() is not None:
                    raise SystemExit(f"the server exited with {server.returncode}; see above")
                try:
                    client.get("/healthz")
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            rng = random.Random(2)
            latencies = []
            for index in range(samples + 50):
                lon, lat = centres[rng.randrange(len(centres))]
                started = time.perf_counter()
                response = client.get("/api/v1/parcels/locate", params={"x": lon, "y": lat})
                elapsed = time.perf_counter() - started
                assert response.status_code == 200, response.text
                if index >= 50:  # the first requests warm caches and connections
                    latencies.append(elapsed * 1000)
    finally:
        server.terminate()
        server.wait(timeout=10)
    latencies.sort()
    return {
        "http_p50_ms": round(statistics.median(latencies), 2),
        "http_p95_ms": round(latencies[int(0.95 * len(latencies))], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes: under a minute")
    args = parser.parse_args()
    imports, lookups = (5_000, 50_000) if args.quick else (100_000, 500_000)
    figures: dict[str, Any] = {"quick": args.quick}
    with tempfile.TemporaryDirectory() as first:
        figures.update(bench_import(Path(first), imports))
        print(
            f"import: {figures['import_parcels']} parcels in {figures['import_s']} s; "
            f"map of {figures['map_parcels']}: svg {figures['map_svg_s']} s, "
            f"png {figures['map_png_s']} s",
            flush=True,
        )
    with tempfile.TemporaryDirectory() as second:
        figures.update(bench_lookup(Path(second), lookups, 20_000, 300 if args.quick else 2000))
        print(
            f"lookup at {lookups}: {figures['lookups_per_s']}/s in-process, "
            f"HTTP p50 {figures['http_p50_ms']} ms"
        )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
