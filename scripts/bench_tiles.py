"""Benchmark the log served as tlog-tiles: the app under uvicorn, and a static server over a
mirror of it.

    python scripts/bench_tiles.py                 # 100,000 entries, 10 s of load per run
    python scripts/bench_tiles.py --quick         # 20,000 entries, 3 s per run
    python scripts/bench_tiles.py --workers 2 --postgres postgresql+psycopg://postgres@127.0.0.1/postgres

A fresh log gets ``--entries`` entries (EPCIS-like events, in transactions of 1,000). Then
uvicorn serves the app (``--workers``, access log off as in production behind a proxy's log)
and wrk (Debian's package) asks over ``--clients`` keep-alive connections, in closed loop:

* ``tiles``: random full level-0 hash tiles (8 KiB each), every one fetched once before
  (a server's steady state: full tiles are cached in memory and answered by the fast path);
* ``bundles``: random full entry bundles, gzipped (``Accept-Encoding: gzip``), warm likewise;
* ``tiles_cold``: each full tile once, with the cache of a freshly started server (the database
  read: what a new worker or a mirror's first copy costs) — one pass over the tiles;
* ``checkpoint``: the current checkpoint (a database read each time);
* ``static_tiles``: the same tiles from a mirror of the log (``dv ledger mirror``'s code)
  served by ``python -m http.server`` — what the simplest static host gives; any real one
  (nginx, a CDN) is faster.

Each run gives requests/s, p50/p99 latency, errors and the server's CPU per request (from
/proc: what a core can serve, whatever else runs on the machine). wrk shares the 2 cores with
the server: read the figures with the load average, printed with each run. The last line
printed is one JSON object with every figure. The bar: tiles ≥ 5,000 requests/s from the app.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from bench_pages import (
    WRK_SCRIPT,
    _cpu_seconds,
    _free_port,
    _load_wrk,
    _wrk_version,
    uvicorn_command,
)
from bench_trace import fresh_database

from digital_village import migrate
from digital_village.db import Database, make_engine
from digital_village.ledger import keys, mirror, tiles
from digital_village.ledger.log import EntryIn, Ledger

ORIGIN = "bench.digital-village.example/ledger"
BAR_TILES_PER_S = 5000


def build_log(url: str, folder: Path, entries: int) -> str:
    """A migrated database holding ``entries`` entries; returns the verifier key."""
    engine = make_engine(url)
    with engine.begin() as connection:
        migrate.upgrade(connection)
    key_path = folder / "ledger.key"
    keys.ensure_signing_key(key_path, ORIGIN)
    ledger = Ledger.from_key_file(key_path, ORIGIN)
    database = Database(engine)
    for start in range(0, entries, 1000):
        with database.transaction() as session:
            ledger.append_many(
                session,
                [
                    EntryIn(
                        "bench.event",
                        {
                            "type": "ObjectEvent",
                            "bizStep": "https://w3id.org/digital-village/voc/bizstep/harvesting",
                            "lot": f"RS2026-{n:07d}",
                            "quantity": {"value": 1000 + n % 500, "uom": "KGM"},
                        },
                    )
                    for n in range(start, min(entries, start + 1000))
                ],
            )
    engine.dispose()
    return ledger.vkey


def _wait_for(url: str, process: subprocess.Popen[bytes]) -> None:
    for _ in range(600):
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode}")
        try:
            httpx.get(url, timeout=5)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit(f"the server at {url} did not answer")


def _serve_app(url: str, folder: Path, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {
        **os.environ,
        "DV_DATA_DIR": str(folder),
        "DV_DATABASE_URL": url,
        "DV_LEDGER_ORIGIN": ORIGIN,
        "DV_LOG_LEVEL": "WARNING",
        "DV_RATE_LIMIT_PUBLIC_PER_MINUTE": "100000000",
    }
    command = uvicorn_command(port, workers)
    server = subprocess.Popen(command, env=env)
    base = f"http://127.0.0.1:{port}"
    _wait_for(base + "/healthz", server)
    return server, base


def _run(
    wrk: str,
    base: str,
    paths: list[str],
    folder: Path,
    server_pid: int,
    *,
    headers: dict[str, str],
    clients: int,
    threads: int,
    seconds: float,
) -> dict[str, Any]:
    paths_file = folder / "paths.txt"
    paths_file.write_text("\n".join(paths) + "\n")
    script = folder / "bench.lua"
    script.write_text(WRK_SCRIPT)
    load_average = round(os.getloadavg()[0], 2)
    cpu = _cpu_seconds(server_pid)
    result = _load_wrk(
        wrk,
        base,
        paths_file,
        script,
        headers,
        clients=clients,
        threads=threads,
        seconds=seconds,
        rate=0.0,
    )
    spent = _cpu_seconds(server_pid) - cpu
    result["server_cpu_ms_per_request"] = round(spent * 1000 / max(result["requests"], 1), 3)
    result["load_average_1m"] = load_average
    return result


def _cold_pass(base: str, paths: list[str]) -> dict[str, Any]:
    """Each path once over one connection: the database reads of a server's first requests."""
    with httpx.Client(base_url=base, timeout=30) as client:
        started = time.perf_counter()
        for path in paths:
            client.get(path).raise_for_status()
        elapsed = time.perf_counter() - started
    return {"requests": len(paths), "rps": round(len(paths) / elapsed, 1)}


def bench(args: argparse.Namespace, folder: Path, url: str) -> dict[str, Any]:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    started = time.perf_counter()
    vkey = build_log(url, folder, args.entries)
    figures: dict[str, Any] = {
        "entries": args.entries,
        "build_s": round(time.perf_counter() - started, 1),
        "workers": args.workers,
        "clients": args.clients,
        "load_tool": _wrk_version(wrk),
    }
    full = [f"/ledger/{t.path}" for t in tiles.tiles_for_size(args.entries, level=0)][:-1]
    bundles = [f"/ledger/{t.path}" for t in tiles.tiles_for_size(args.entries, level=None)][:-1]
    load = {"clients": args.clients, "threads": args.threads, "seconds": args.seconds}
    server, base = _serve_app(url, folder, args.workers)
    try:
        figures["tiles_cold"] = _cold_pass(base, full)
        # Steady state: every worker has seen every tile and bundle (wrk's connections land
        # on all the workers; one client's keep-alive connection would warm only one).
        warm = {**load, "seconds": 2.0}
        _run(wrk, base, full + bundles, folder, server.pid, headers={}, **warm)
        runs = {
            "tiles": (full, {}),
            "bundles": (bundles, {"Accept-Encoding": "gzip"}),
            "checkpoint": (["/ledger/checkpoint"], {}),
        }
        for name, (paths, headers) in runs.items():
            figures[name] = _run(wrk, base, paths, folder, server.pid, headers=headers, **load)
            print(f"{name}: {figures[name]}", flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)

    # The static figure: a mirror of the log, copied through the app, served by http.server.
    copy = folder / "mirror"
    static_server, app_base = _serve_app(url, folder, 1)
    try:
        started = time.perf_counter()
        copied = mirror.mirror(mirror.http_fetch(app_base + "/ledger/"), copy, [vkey])
        figures["mirror_copy_s"] = round(time.perf_counter() - started, 2)
        figures["mirror"] = copied.summary
    finally:
        static_server.terminate()
        static_server.wait(timeout=30)
    port = _free_port()
    static = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=copy,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        static_base = f"http://127.0.0.1:{port}"
        _wait_for(static_base + "/checkpoint", static)
        static_paths = [path.removeprefix("/ledger") for path in full]
        figures["static_tiles"] = _run(
            wrk, static_base, static_paths, folder, static.pid, headers={}, **load
        )
        figures["static_tiles"]["server"] = "python -m http.server"
        print(f"static_tiles: {figures['static_tiles']}", flush=True)
    finally:
        static.terminate()
        static.wait(timeout=30)
    figures["tiles_bar_met"] = figures["tiles"]["rps"] >= BAR_TILES_PER_S
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 entries, 3 s per run")
    parser.add_argument("--entries", type=int, default=None)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--postgres", help="a PostgreSQL server URL (a fresh database is made)")
    args = parser.parse_args()
    args.entries = args.entries or (20_000 if args.quick else 100_000)
    args.seconds = args.seconds or (3.0 if args.quick else 10.0)
    with tempfile.TemporaryDirectory(prefix="dv-bench-tiles-") as tmp:
        folder = Path(tmp)
        with fresh_database(args.postgres, folder) as url:
            figures = bench(args, folder, url)
    figures["backend"] = "postgresql" if args.postgres else "sqlite"
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
