"""Benchmark the consumer page: render time, page weight, and throughput under load.

    python scripts/bench_pages.py            # 10 s of load per run
    python scripts/bench_pages.py --quick    # 3 s per run: about a minute in all
    python scripts/bench_pages.py --workers 2 --rate 0
    python scripts/bench_pages.py --postgres postgresql+psycopg://postgres@127.0.0.1/postgres

A fresh database gets one cooperative's whole season, recorded through the real services
(``demo.oil_season.record_season``: ten field events on three parcels, a corrected harvest,
pressing, bottling into serialised 5 L bottles, an inspection, a 合格证, two soil probes
reporting every hour for seven months, sealed day by day). Then:

* in-process: building the consumer view of a bottle (the trace, the events' JSON from the
  ledger, parcels, daily readings, SVG) with an empty cache, and the whole request through the
  app (TestClient) with the view cached as a server keeps it — median and p95;
* the page's weight: the HTML as sent (gzip) and unzipped, and the static files it loads;
* a label sheet of 1,000 serials of the bottles' lot (``web.labels.make_sheet``, the PDF);
* the managers' console over the demo's data (``dv demo``: 40 households, 320 parcels, a
  season and three probes, in a database of its own): each section's panel (``/manage/panel/…``
  with the demo manager's token) and the harvest form's check, median and p95; and once, a
  harvest-to-labels run through the console's forms: a harvest of member parcels, pressing,
  240 serialised pieces in cases of 12, the 合格证 and the label sheet of the 240 (wall time);
* over HTTP: uvicorn serving the app (``--workers``) on 127.0.0.1, each bottle's page and
  linkset requested once to warm the caches, then ``--clients`` keep-alive connections asking
  for random bottles' pages (``/page/01/…``: each request also records its scan, a write), for
  their labels' Digital Links (``resolve``: the 307 to the page a phone gets first) and for
  linksets:

  - "closed": each connection sends its next request as soon as it has the answer, for
    ``--seconds``. By Little's law the throughput is connections / latency, so 32 connections
    with p99 under 100 ms means several hundred requests/s: this run shows the most one server
    answers and the latency at that load;
  - "paced" (``--rate``, default 300 requests/s; 0 skips it): the same connections send at that
    rate in total (a wrk script delays each request to its slot), as a county's readers would:
    the latency of a server that is not saturated. When the server cannot keep up, the rate
    achieved falls short of the one asked for, and the output says so.

  Each run gives requests/s, p50, p90 and p99 latency, answers that were errors (``non_2xx``:
  neither 2xx nor a redirect), socket
  errors, and the server's own CPU time per request (from /proc: what a core can serve,
  whatever else runs on the machine).

The load comes from wrk (Debian's package: C, a small fraction of a core) when it is on the
PATH, else from a Python client (asyncio httpx, about one core: the figures are then a floor);
``load_tool`` in the output says which. The load generator shares the machine with the server.
The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gzip
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from shapely.geometry import box
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from digital_village import migrate
from digital_village.app import create_app
from digital_village.auth.actor import Actor
from digital_village.config import Settings
from digital_village.db import Database, make_engine
from digital_village.demo import oil_season as seasons
from digital_village.ledger import keys
from digital_village.ledger.log import Ledger
from digital_village.parcels import service as parcels
from digital_village.parcels.geometry import to_lonlat
from digital_village.regions import service as regions
from digital_village.web import STATIC_DIR, consumer, labels, manage

BASE = "https://bench.dv.example"
ORIGIN = "bench.digital-village.example/ledger"
VILLAGE, GROUP = "510603101201", "51060310120101"
USCC = "93510603MA6DX0001T"
BROWSER = {"Accept": "text/html", "Accept-Encoding": "gzip", "Accept-Language": "zh-CN"}
LINKSET = {"Accept": "application/linkset+json", "Accept-Encoding": "gzip"}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


@contextmanager
def fresh_database(postgres: str | None, folder: Path) -> Iterator[str]:
    if postgres is None:
        yield f"sqlite:///{folder / 'bench.db'}"
        return
    server = make_url(postgres)
    name = f"dv_bench_pages_{os.getpid()}"
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def build(folder: Path, url: str, bottles: int) -> tuple[Settings, seasons.Season]:
    """A migrated database holding the village, its parcels and one recorded season."""
    engine = make_engine(url)
    with engine.begin() as connection:
        migrate.upgrade(connection)
    settings = Settings(
        data_dir=folder,
        database_url=url,
        ledger_origin=ORIGIN,
        public_base_url=BASE,
        log_format="text",
        log_level="WARNING",
        rate_limit_public_per_minute=100_000_000,
    )
    keys.ensure_signing_key(settings.effective_ledger_key_path, settings.ledger_origin)
    ledger = Ledger.from_key_file(settings.effective_ledger_key_path, settings.ledger_origin)
    operator = Actor.operator()
    database = Database(engine)
    with database.transaction() as session:
        regions.seed_jingyang(session=session)
        regions.add_region(session=session, code=VILLAGE, name="民安村", actor=operator)
        regions.add_region(session=session, code=GROUP, name="一组", actor=operator)
        coop = regions.register_cooperative(
            session=session,
            uscc=USCC,
            name="民安油菜专业合作社",
            region_code=VILLAGE,
            actor=operator,
        )
        household = regions.register_household(
            session=session,
            region_code=GROUP,
            name="测试户",
            phone="13800000000",
            cooperative_id=coop.id,
            actor=operator,
        )
        report = parcels.register_many(
            session=session,
            ledger=ledger,
            fbfbm=GROUP,
            items=[
                parcels.ParcelIn(
                    geometry=to_lonlat(
                        box(432_000 + col * 90, 3_458_000, 432_080 + col * 90, 3_458_060), 4544
                    ),
                    land_use="0103",
                    contractor_household_id=household.id,
                )
                for col in range(3)
            ],
            actor=operator,
            valid_from=dt.date(2024, 9, 1),
        )
        season = seasons.record_season(
            session=session,
            ledger=ledger,
            base_url=BASE,
            cooperative_id=coop.id,
            parcels=[created.dkbm for created in report.created],
            year=2026,
            bottles=bottles,
            readings_every_hours=1,
            devices_on=2,
        )
    engine.dispose()
    return settings, season


def bottle_path(season: seasons.Season, serial: str) -> str:
    """A bottle's Digital Link, as its label carries it (the resolver answers 307 to the page)."""
    return f"/01/{seasons.BOTTLE}/10/{season.bottle_lot}/21/{serial}"


def page_path(season: seasons.Season, serial: str) -> str:
    """A bottle's consumer page, where the resolver sends a browser."""
    return "/page" + bottle_path(season, serial)


def bench_in_process(settings: Settings, season: seasons.Season, samples: int) -> dict[str, Any]:
    from fastapi.testclient import TestClient

    database = Database(make_engine(settings.effective_database_url))
    cold: list[float] = []
    with database.session() as session:
        for _ in range(samples):
            started = time.perf_counter()
            consumer.consumer_view(
                session=session,
                gtin=seasons.BOTTLE,
                lot=season.bottle_lot,
                base_url=BASE,
                language="zh-CN",
                pieces="瓶",
            )
            cold.append((time.perf_counter() - started) * 1000)
        started, cpu = time.perf_counter(), time.process_time()
        sheet = labels.make_sheet(
            session=session,
            actor=Actor.operator(),
            base_url=BASE,
            gtin=seasons.BOTTLE,
            lot=season.bottle_lot,
            serials="0001-1000",
        )
        sheet_seconds = time.perf_counter() - started
        sheet_cpu = time.process_time() - cpu
    app = create_app(settings, database=database)
    warm: list[float] = []
    redirect: list[float] = []
    with TestClient(app, base_url=BASE, client=("198.51.100.7", 5000)) as client:
        path = page_path(season, season.serials[0])
        label = bottle_path(season, season.serials[0])
        for index in range(samples + 20):
            started = time.perf_counter()
            response = client.get(path, headers=BROWSER)
            elapsed = (time.perf_counter() - started) * 1000
            assert response.status_code == 200, response.text[:300]
            started = time.perf_counter()
            moved = client.get(label, headers=BROWSER, follow_redirects=False)
            redirected = (time.perf_counter() - started) * 1000
            assert moved.status_code == 307, moved.text[:300]
            if index >= 20:
                warm.append(elapsed)
                redirect.append(redirected)
        raw = client.get(path, headers={**BROWSER, "Accept-Encoding": "identity"}).content
        zipped = int(client.get(path, headers=BROWSER).headers["content-length"])
    database.dispose()
    assets = {
        name: (STATIC_DIR / name).read_bytes()
        for name in ("verify.js", "verify-panel.js", "verify-panel.css", "consumer.js")
    }
    return {
        "view_cold_p50_ms": round(statistics.median(cold), 1),
        "view_cold_p95_ms": round(percentile(cold, 0.95), 1),
        "page_warm_p50_ms": round(statistics.median(warm), 2),
        "page_warm_p95_ms": round(percentile(warm, 0.95), 2),
        "redirect_warm_p50_ms": round(statistics.median(redirect), 2),
        "redirect_warm_p95_ms": round(percentile(redirect, 0.95), 2),
        "html_bytes": len(raw),
        "html_gzip_bytes": zipped,
        "static_bytes": sum(len(data) for data in assets.values()),
        "static_gzip_bytes": sum(len(gzip.compress(data)) for data in assets.values()),
        "label_sheet_1000_s": round(sheet_seconds, 2),
        "label_sheet_1000_cpu_s": round(sheet_cpu, 2),
        "label_sheet_1000_bytes": len(sheet.pdf),
    }


def _demo_settings(folder: Path) -> Settings:
    """The demo (``dv demo``'s sample village, season and net) in a SQLite file of its own."""
    from digital_village.cli import demo
    from digital_village.cli.main import initialise

    settings = Settings(
        data_dir=folder / "demo",
        ledger_origin=ORIGIN,
        public_base_url=BASE,
        log_format="text",
        log_level="WARNING",
        rate_limit_public_per_minute=100_000_000,
        rate_limit_token_per_minute=100_000_000,
    )
    initialise(settings)
    summary = demo.load_sample_village(settings, demo.default_fixture_dir())
    settings.data_dir.joinpath("manager-token").write_text(summary.tokens["manager"])
    return settings


def _timed(client: Any, method: str, path: str, token: str, **options: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    response = client.request(method, path, headers={"Authorization": f"Bearer {token}"}, **options)
    elapsed = (time.perf_counter() - started) * 1000
    assert response.status_code == 200, (path, response.status_code, response.text[:300])
    return elapsed, response


def _harvest_to_labels(client: Any, token: str, serials: int) -> dict[str, Any]:
    """One season's worth of console forms, from harvest to the label sheet; seconds each."""
    from digital_village.demo import village_season as demo_season
    from digital_village.gs1.keys import gtin_check_digit

    litre = "0692345600014" + gtin_check_digit("0692345600014")
    steps: dict[str, float] = {}
    body = {"gtin": litre, "name": "天府菜油 1 L", "category": "packaged"}
    _timed(
        client,
        "POST",
        "/manage/products",
        token,
        json={**body, "net_quantity": "1", "net_unit": "LTR"},
    )
    started = time.perf_counter()
    panel = _timed(client, "GET", "/manage/panel/harvest", token)[1].text
    dkbms = re.findall(r'data-parcel="(\d{19})"', panel)
    areas = [float(a) for a in re.findall(r"<br>([\d.]+) 亩", panel)]
    chosen, area = [], 0.0
    for dkbm, mu in zip(dkbms, areas, strict=True):
        chosen.append(dkbm)
        area += mu
        if area * 165 * 0.38 > serials * 1.2:
            break
    kilograms = round(area * 165)
    harvest = {
        "gtin": demo_season.RAPESEED,
        "parcel": chosen,
        "kg": str(kilograms),
        "lot": "BENCH-RS",
    }
    steps["harvest_s"] = _timed(client, "POST", "/manage/harvest", token, json=harvest)[0] / 1000
    pressing = {
        "step": "pressing",
        "in_lot_1": f"{demo_season.RAPESEED} BENCH-RS",
        "in_amount_1": str(kilograms),
        "out_gtin": demo_season.OIL,
        "out_amount": str(round(kilograms * 0.38)),
        "lot": "BENCH-OIL",
    }
    steps["pressing_s"] = (
        _timed(client, "POST", "/manage/processing", token, json=pressing)[0] / 1000
    )
    packing = {
        "source": f"{demo_season.OIL} BENCH-OIL",
        "gtin": litre,
        "count": str(serials),
        "first_serial": "0001",
        "case_size": "12",
        "lot": "BENCH-L",
    }
    steps["packing_s"] = _timed(client, "POST", "/manage/packing", token, json=packing)[0] / 1000
    certificate = {"lot": f"{litre} BENCH-L", "contact": "0838-6200000", "basis": ["self_testing"]}
    steps["certificate_s"] = (
        _timed(client, "POST", "/manage/certificates", token, json=certificate)[0] / 1000
    )
    elapsed, sheet = _timed(client, "GET", f"/api/v1/labels/{litre}/BENCH-L/sheet.pdf", token)
    assert sheet.headers["X-Label-Count"] == str(serials)
    steps["label_sheet_s"] = elapsed / 1000
    total = time.perf_counter() - started
    return {
        "serials": serials,
        "parcels": len(chosen),
        "total_s": round(total, 2),
        **{k: round(v, 2) for k, v in steps.items()},
    }


def bench_console(folder: Path, samples: int) -> dict[str, Any]:
    """The console's panels over the demo's data, and one harvest-to-labels run of 240 serials."""
    from fastapi.testclient import TestClient

    started = time.perf_counter()
    settings = _demo_settings(folder)
    token = settings.data_dir.joinpath("manager-token").read_text()
    figures: dict[str, Any] = {"demo_setup_s": round(time.perf_counter() - started, 1)}
    database = Database(make_engine(settings.effective_database_url))
    app = create_app(settings, database=database)
    with TestClient(app, base_url=BASE) as client:
        harvest = re.findall(
            r'data-parcel="(\d{19})"', _timed(client, "GET", "/manage/panel/harvest", token)[1].text
        )
        paths = {section: f"/manage/panel/{section}" for section in manage.SECTIONS}
        paths["harvest_check"] = (
            f"/manage/panel/harvest?parcel={harvest[0]}&parcel={harvest[1]}&kg=900&gtin="
        )
        paths["frame"] = "/manage/harvest"
        for name, path in paths.items():
            times = [_timed(client, "GET", path, token)[0] for _ in range(samples + 5)][5:]
            figures[name] = {
                "p50_ms": round(statistics.median(times), 1),
                "p95_ms": round(percentile(times, 0.95), 1),
            }
        figures["harvest_to_labels"] = _harvest_to_labels(client, token, serials=240)
    database.dispose()
    return figures


def uvicorn_command(port: int, workers: int) -> list[str]:
    """``dv serve``'s app with ``workers`` processes as ``dv serve`` runs them (each on its own
    socket, ``cli/serving.py``), quiet, no access log."""
    call = (
        "from digital_village.cli.serving import serve; "
        f"serve('127.0.0.1', {port:d}, {workers:d}, app='digital_village.app:create_app', "
        "factory=True, log_level='warning', access_log=False)"
    )
    return [sys.executable, "-c", call]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _load_python(
    base: str, paths: list[str], headers: dict[str, str], clients: int, seconds: float
) -> dict[str, Any]:
    """The fallback load generator (no wrk): as fast as it can, closed loop only."""
    import httpx

    latencies: list[float] = []
    non_2xx = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:

        async def worker(seed: int) -> None:
            nonlocal non_2xx
            rng = random.Random(seed)
            while time.perf_counter() < deadline:
                path = paths[rng.randrange(len(paths))]
                started = time.perf_counter()
                response = await client.get(path, headers=headers)
                latencies.append((time.perf_counter() - started) * 1000)
                if not 200 <= response.status_code < 400:  # a 307 is the resolver's answer
                    non_2xx += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker(seed) for seed in range(clients)))
        elapsed = time.perf_counter() - started
    return {
        "requests": len(latencies),
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies), 1),
        "p90_ms": round(percentile(latencies, 0.90), 1),
        "p99_ms": round(percentile(latencies, 0.99), 1),
        "max_ms": round(max(latencies), 1),
        "non_2xx": non_2xx,
    }


# Random paths from a file, non-2xx answers counted, and optionally a paced send schedule:
# ``delay()`` gives each request the next free slot of the thread's share of the rate (a slot
# missed while every connection waits for an answer is not made up: the achieved rate shows it).
WRK_SCRIPT = r"""
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } dv_timespec;
int clock_gettime(int clk_id, dv_timespec *tp);
]]
local clock = ffi.new("dv_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, clock)  -- CLOCK_MONOTONIC
  return tonumber(clock.tv_sec) * 1000 + tonumber(clock.tv_nsec) / 1e6
end

local threads = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

local paths = {}
local seeded = false
local interval = 0
local next_at = 0
non2xx = 0

function init(args)
  for line in io.lines(args[1]) do paths[#paths + 1] = line end
  local rate = tonumber(args[2]) or 0
  if rate > 0 then
    interval = 1000 / rate
    delay = function()
      local now = now_ms()
      if next_at < now then next_at = now end
      local wait = next_at - now
      next_at = next_at + interval
      return wait
    end
  end
end

function request()
  if not seeded then
    math.randomseed(1000 + (id or 0))
    seeded = true
  end
  return wrk.format(nil, paths[math.random(#paths)])
end

function response(status, headers, body)
  -- An error: a redirect is the resolver's answer to a scanned label, not a failure.
  if status < 200 or status > 399 then non2xx = non2xx + 1 end
end

function done(summary, latency, requests)
  local non = 0
  for _, thread in ipairs(threads) do non = non + thread:get("non2xx") end
  local e = summary.errors
  io.write(string.format(
    'DV_WRK {"requests": %d, "duration_us": %d, "bytes": %d, "non_2xx": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}, ' ..
    '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "max": %d}}\n',
    summary.requests, summary.duration, summary.bytes, non,
    e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


def _load_wrk(
    wrk: str,
    base: str,
    paths_file: Path,
    script: Path,
    headers: dict[str, str],
    *,
    clients: int,
    threads: int,
    seconds: float,
    rate: float,
) -> dict[str, Any]:
    """One wrk run: closed loop (``rate`` 0) or paced at ``rate`` requests/s in total."""
    command = [wrk, f"-t{threads}", f"-c{clients}", f"-d{seconds:g}s", "--timeout", "10s"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    command += ["-s", str(script), base, "--", str(paths_file), f"{rate / threads:g}"]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    line = next((line for line in done.stdout.splitlines() if line.startswith("DV_WRK ")), None)
    if line is None:
        raise SystemExit(f"wrk printed no result:\n{done.stdout}\n{done.stderr}")
    raw = json.loads(line.removeprefix("DV_WRK "))
    latency = raw["latency_us"]
    elapsed = raw["duration_us"] / 1e6
    result: dict[str, Any] = {
        "requests": raw["requests"],
        "rps": round(raw["requests"] / elapsed, 1),
        "p50_ms": round(latency["p50"] / 1000, 1),
        "p90_ms": round(latency["p90"] / 1000, 1),
        "p99_ms": round(latency["p99"] / 1000, 1),
        "max_ms": round(latency["max"] / 1000, 1),
        "non_2xx": raw["non_2xx"],
        "socket_errors": raw["errors"],
    }
    if rate:
        result["rate_asked"] = rate
    return result


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its children (uvicorn workers), from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(child) for child in children.read_text().split()]
    for one in pids:
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


def bench_http(
    settings: Settings,
    season: seasons.Season,
    *,
    clients: int,
    seconds: float,
    workers: int,
    rate: float,
    wrk: str | None,
    wrk_threads: int,
) -> dict[str, Any]:
    import httpx

    port = _free_port()
    env = {
        **os.environ,
        "DV_DATA_DIR": str(settings.data_dir),
        "DV_DATABASE_URL": settings.effective_database_url,
        "DV_LEDGER_ORIGIN": ORIGIN,
        "DV_PUBLIC_BASE_URL": BASE,
        "DV_LOG_LEVEL": "WARNING",
        "DV_RATE_LIMIT_PUBLIC_PER_MINUTE": "100000000",
    }
    server = subprocess.Popen(
        uvicorn_command(port, workers),
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    bottles = [bottle_path(season, serial) for serial in season.serials]
    bottle_pages = [page_path(season, serial) for serial in season.serials]
    folder = Path(settings.data_dir)
    paths_files = {}
    for name, paths in (("labels", bottles), ("pages", bottle_pages)):
        paths_files[name] = folder / f"bench_{name}.txt"
        paths_files[name].write_text("\n".join(paths) + "\n")
    script = folder / "bench_pages.lua"
    script.write_text(WRK_SCRIPT)
    try:
        with httpx.Client(base_url=base, timeout=10) as client:
            for _ in range(600):
                if server.poll() is not None:
                    raise SystemExit(f"the server exited with {server.returncode}; see above")
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            # Steady state, as a server is after its first minutes: every bottle's page and
            # linkset seen once (with several workers, each warms its own cache in turn).
            for _ in range(workers):
                for path, page in zip(bottles, bottle_pages, strict=True):
                    client.get(path, headers=BROWSER)
                    client.get(page, headers=BROWSER)
                    client.get(path, headers=LINKSET)
        runs = [("closed", 0.0)] + ([("paced", rate)] if rate and wrk else [])
        results: dict[str, Any] = {}
        # A scanned label: the resolver's 307 ("resolve"), then the page it sends to ("page");
        # an app asking for the linkset.
        for name, paths, headers in (
            ("page", "pages", BROWSER),
            ("resolve", "labels", BROWSER),
            ("linkset", "labels", LINKSET),
        ):
            for mode, asked in runs:
                load_average = round(os.getloadavg()[0], 2)
                cpu = _cpu_seconds(server.pid)
                if wrk is None:
                    listed = paths_files[paths].read_text().split()
                    result = asyncio.run(_load_python(base, listed, headers, clients, seconds))
                else:
                    result = _load_wrk(
                        wrk,
                        base,
                        paths_files[paths],
                        script,
                        headers,
                        clients=clients,
                        threads=wrk_threads,
                        seconds=seconds,
                        rate=asked,
                    )
                # The server's own CPU per request: what a core can serve, whatever else runs.
                spent = _cpu_seconds(server.pid) - cpu
                result["server_cpu_ms_per_request"] = round(spent * 1000 / result["requests"], 2)
                result["rps_per_core_from_cpu"] = round(result["requests"] / spent, 1)
                result["load_average_1m"] = load_average
                results[f"{name}_{mode}" if len(runs) > 1 else name] = result
    finally:
        server.terminate()
        server.wait(timeout=30)
    return results


def _wrk_version(wrk: str) -> str:
    done = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
    first = (done.stdout or done.stderr).splitlines()
    return first[0].split("[")[0].strip() if first else "wrk"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 s of load per target")
    parser.add_argument("--seconds", type=float, default=10.0, help="load per target")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--samples", type=int, default=60, help="in-process repetitions")
    parser.add_argument("--postgres", help="a PostgreSQL server URL (default: SQLite)")
    parser.add_argument(
        "--rate",
        type=float,
        default=300.0,
        help="requests/s of the paced run, spread over the clients (0: closed loop only)",
    )
    parser.add_argument(
        "--tool",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="load generator: wrk if installed (auto), or the Python client",
    )
    parser.add_argument("--wrk-threads", type=int, default=1, help="wrk's threads")
    args = parser.parse_args()
    seconds = 3.0 if args.quick else args.seconds
    wrk = shutil.which("wrk") if args.tool != "python" else None
    if args.tool == "wrk" and wrk is None:
        raise SystemExit("--tool wrk: wrk is not on the PATH (apt-get install wrk)")
    if wrk is not None:
        load_tool = f"{_wrk_version(wrk)}, {args.wrk_threads} thread(s)"
    elif args.tool == "python":
        load_tool = "python asyncio httpx (asked for)"
    else:
        load_tool = "python asyncio httpx (wrk not found: apt-get install wrk; a floor)"
    print(f"load tool: {load_tool}", flush=True)
    figures: dict[str, Any] = {
        "backend": "postgresql" if args.postgres else "sqlite",
        "load_tool": load_tool,
        "clients": args.clients,
        "workers": args.workers,
        "cpus": os.cpu_count(),
        # Other work on the machine skews every figure: say how busy it was.
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    with (
        tempfile.TemporaryDirectory() as scratch,
        fresh_database(args.postgres, Path(scratch)) as url,
    ):
        started = time.perf_counter()
        settings, season = build(Path(scratch), url, bottles=200)
        figures["setup_s"] = round(time.perf_counter() - started, 1)
        figures["season"] = {
            "readings": season.readings,
            "seals": season.seals,
            "bottles": len(season.serials),
        }
        print(f"season recorded in {figures['setup_s']} s: {figures['season']}", flush=True)
        figures["in_process"] = bench_in_process(settings, season, args.samples)
        print(f"in-process: {figures['in_process']}", flush=True)
        figures["console"] = bench_console(Path(scratch), args.samples)
        print(f"console: {figures['console']}", flush=True)
        figures["http"] = bench_http(
            settings,
            season,
            clients=args.clients,
            seconds=seconds,
            workers=args.workers,
            rate=args.rate,
            wrk=wrk,
            wrk_threads=args.wrk_threads,
        )
        for name, result in figures["http"].items():
            print(f"{name:>8}: {result}", flush=True)
    print(json.dumps(figures, ensure_ascii=False))


if __name__ == "__main__":
    main()
