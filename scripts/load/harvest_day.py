"""Load: a harvest-season day on a throwaway deployment, driven by wrk.

Three kinds of traffic at once, each a wrk process with its own Lua profile:

- scan (scans.lua): consumers scanning bottle labels — the consumer page in Chinese or English,
  or the GS1 linkset as JSON — as fast as the server answers;
- ingest (ingest.lua): field sensors, one device per wrk thread, posting batches of soil
  readings at a paced rate (batches a second per device);
- write (writes.lua): the cooperative's managers capturing EPCIS events (irrigating,
  fertilizing, harvests) one a request, at a paced rate;

and, unless ``--import-features 0``, a manager's parcel import of that many features posted
while they run (``POST /api/v1/parcels/import``).

The deployment is the sample village of `dv demo` (scripts/drills/_harness.py) served by
`dv serve --workers N` on SQLite or PostgreSQL. Afterwards the ledger is audited and the
readings and events counted, so "held" means: no error, no connection error, and everything
acknowledged is stored. The bars of the harvest day (docs/BENCHMARKS.md) are checked and printed
with the figures; so is, from the server's access log, what each route cost: its latency, SQL
statements, and the time it waited for and held the database's writer.

    python scripts/load/harvest_day.py [--postgres URL] [--workers 2] [--seconds 30]

Prints requests/s, error rate and p50/p99 per kind, the bars, the per-route costs and the
machine's load average; the last line is one JSON object. Exit 1 if an error was seen or the
audit failed (a bar missed is reported, not an exit code: the machine may be shared).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "drills"))
from _harness import PUBLIC_BASE_URL, Deployment

from digital_village.trace import builders

HERE = Path(__file__).resolve().parent

CHINA = dt.timezone(dt.timedelta(hours=8))
# A fixed time that the Lua profile replaces per request (see writes.lua).
SENTINEL = dt.datetime(2001, 2, 3, 4, 5, 6, tzinfo=dt.UTC)
LOT_SENTINEL = "LDNNNNNN"
KINDS = ("scan", "ingest", "write")
READINGS_PER_BATCH = 250
# Offered load, paced (scripts/load/_report.lua): each device posts this many batches a second
# over two connections, the managers this many events a second over WRITE_CONNECTIONS; slow
# answers do not lower the rate until every connection waits for one.
BATCHES_PER_S = 3.0
CONNECTIONS_PER_DEVICE = 2
WRITE_CONNECTIONS = 8
EVENTS_PER_S = 25.0
IMPORT_FEATURES = 5000
IMPORT_AFTER_S = 5.0
WARMUP_S = 5
# The harvest day's bars (docs/BENCHMARKS.md): scans/s by backend, scan p99, sensor readings/s,
# managers' events/s, and the slowest other request while an import runs.
BAR_SCANS_PER_S = {"sqlite": 500.0, "postgresql": 300.0}
BAR_SCAN_P99_MS = 250.0
BAR_READINGS_PER_S = 2000.0
BAR_EVENTS_PER_S = 20.0
BAR_OTHERS_DURING_IMPORT_MS = 1000.0


def scan_paths(deployment: Deployment, limit: int = 200) -> list[str]:
    """Bottles (serialised trade items) the sample season made, as resolver paths."""
    engine = create_engine(deployment.database_url)
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT u.gtin, l.lot, u.serial FROM trace_unit u"
                " JOIN trace_lot l ON l.id = u.lot_id ORDER BY u.id LIMIT :limit"
            ),
            {"limit": limit},
        ).all()
    engine.dispose()
    if not rows:
        raise RuntimeError("the sample season has no serialised bottles to scan")
    return [
        f"/01/{gtin}/10/{quote(lot, safe='')}/21/{quote(serial, safe='')}"
        for gtin, lot, serial in rows
    ]


def event_templates(deployment: Deployment) -> list[str]:
    """EPCIS events as one-line JSON with @TIME@ and @N@ for writes.lua to fill."""
    stamp = SENTINEL.astimezone(CHINA)
    events = []
    for dkbm in deployment.parcels:
        for step in ("irrigating", "fertilizing"):
            events.append(
                builders.field_work(step, dkbm=dkbm, when=stamp, base_url=PUBLIC_BASE_URL)
            )
    gtin = _harvest_gtin(deployment)
    events.append(
        builders.harvest(
            gtin=gtin,
            lot=LOT_SENTINEL,
            kilograms=850.0,
            dkbms=deployment.parcels[:1],
            when=stamp,
            base_url=PUBLIC_BASE_URL,
        )
    )
    lines = []
    for event in events:
        line = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
        time_text = event["eventTime"]
        assert time_text in line, "the event's time is not where the template expects it"
        line = line.replace(time_text, "@TIME@").replace('"+08:00"', '"+00:00"')
        lines.append(line.replace(LOT_SENTINEL, "LD@N@"))
    return lines


def _harvest_gtin(deployment: Deployment) -> str:
    """The cooperative's raw-produce product (the GTIN of a harvested lot)."""
    engine = create_engine(deployment.database_url)
    with engine.connect() as connection:
        gtin = connection.scalar(
            text("SELECT gtin FROM trace_lot WHERE origin = 'harvest' ORDER BY id LIMIT 1")
        )
    engine.dispose()
    if gtin is None:
        raise RuntimeError("the sample season has no harvested lot to copy a product from")
    return str(gtin)


def import_document(deployment: Deployment, features: int) -> tuple[str, dict[str, Any]]:
    """A FeatureCollection of ``features`` new 40 × 40 m fields in a grid north of the village
    of the deployment's parcels (near enough to pass the 30 km check), and their FBFBM."""
    fbfbm = deployment.parcels[0][:14]
    engine = create_engine(deployment.database_url)
    with engine.connect() as connection:
        west, north = connection.execute(
            text("SELECT min(min_lon), max(max_lat) FROM parcel WHERE fbfbm = :fbfbm"),
            {"fbfbm": fbfbm},
        ).one()
    engine.dispose()
    per_row = math.ceil(math.sqrt(features))
    # Degrees per metre at the village's latitude.
    dy = 1 / 111_320
    dx = 1 / (111_320 * math.cos(math.radians(north)))
    south = north + 500 * dy
    collection = []
    for number in range(features):
        x0 = west + (number % per_row) * 50 * dx
        y0 = south + (number // per_row) * 50 * dy
        ring = [
            [round(x, 8), round(y, 8)]
            for x, y in (
                (x0, y0),
                (x0 + 40 * dx, y0),
                (x0 + 40 * dx, y0 + 40 * dy),
                (x0, y0 + 40 * dy),
                (x0, y0),
            )
        ]
        collection.append(
            {
                "type": "Feature",
                "properties": {"land_use": "0103"},
                "geometry": {"type": "Polygon", "coordinates": [ring]},
            }
        )
    return fbfbm, {"type": "FeatureCollection", "features": collection}


def run_import(
    deployment: Deployment, fbfbm: str, document: dict[str, Any], found: dict[str, Any]
) -> None:
    """POST the import as the cooperative's manager; its status, answer and timing into
    ``found``."""
    body = json.dumps(document).encode()
    found["bytes"] = len(body)
    started = time.monotonic()
    found["started"] = started
    try:
        response = httpx.post(
            f"{deployment.base}/api/v1/parcels/import",
            params={"fbfbm": fbfbm},
            content=body,
            headers={
                "Authorization": f"Bearer {deployment.manager_token}",
                "Content-Type": "application/json",
            },
            timeout=600,
        )
        found["status"] = response.status_code
        answer = response.json()
        found["created"] = len(answer.get("created", [])) if response.is_success else 0
        found["rejected"] = len(answer.get("rejected", [])) if response.is_success else None
        if not response.is_success:
            found["problem"] = str(answer.get("detail", ""))[:300]
    except (httpx.HTTPError, ValueError) as error:
        found["status"] = None
        found["problem"] = repr(error)[:300]
    found["seconds"] = round(time.monotonic() - started, 2)


# What each worker's /metrics says about the resolver's views and the scan writer.
WORKER_METRICS = ("dv_views_total", "dv_scans_total", "dv_scan_batches_total",
                  "dv_scan_store_seconds_total", "dv_view_feed_looks_total")  # fmt: skip


def scrape_workers(deployment: Deployment, workers: int) -> dict[str, dict[str, float]]:
    """Each worker's view and scan counters, by pid: /metrics asked on new connections until
    every worker has answered (each scrape reports the worker that took the connection)."""
    found: dict[str, dict[str, float]] = {}
    for _ in range(20 * workers):
        try:
            text_ = httpx.get(f"{deployment.base}/metrics", timeout=10).text
        except httpx.HTTPError:
            continue
        pid = ""
        values: dict[str, float] = {}
        for line in text_.splitlines():
            if line.startswith("dv_worker{"):
                pid = line.split('pid="', 1)[1].split('"', 1)[0]
            elif line.startswith(WORKER_METRICS):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        if pid:
            found.setdefault(pid, values)
        if len(found) >= workers:
            break
    return found


def worker_counts(
    before: dict[str, dict[str, float]], after: dict[str, dict[str, float]]
) -> dict[str, float]:
    """What the workers counted during the run, summed over the workers seen both times."""
    totals: dict[str, float] = {}
    for pid, values in after.items():
        earlier = before.get(pid)
        if earlier is None:
            continue
        for name, value in values.items():
            totals[name] = round(totals.get(name, 0.0) + value - earlier.get(name, 0.0), 3)
    return dict(sorted(totals.items()))


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def route_costs(log: Path, offset: int) -> dict[str, dict[str, Any]]:
    """What each route cost during the run, from the access log lines after ``offset``: requests,
    latency, SQL statements, and the time spent waiting for and holding the database's writer."""
    by_route: dict[str, list[dict[str, Any]]] = {}
    with log.open("rb") as lines:
        lines.seek(offset)
        for raw in lines:
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            if line.get("message") != "request" or "route" not in line:
                continue
            if line["route"] in ("/healthz", "/metrics"):
                continue
            by_route.setdefault(f"{line['method']} {line['route']}", []).append(line)
    costs = {}
    for route, found in sorted(by_route.items(), key=lambda item: -len(item[1])):
        durations = [line["duration_ms"] for line in found]
        waits = [line.get("db_write_wait_ms", 0.0) for line in found]
        holds = [line.get("db_write_hold_ms", 0.0) for line in found]
        costs[route] = {
            "requests": len(found),
            "errors": sum(1 for line in found if line["status"] >= 400),
            "p50_ms": round(_percentile(durations, 0.5), 2),
            "p99_ms": round(_percentile(durations, 0.99), 2),
            "max_ms": round(max(durations), 2),
            "statements_per_request": round(
                sum(line.get("db_statements", 0) for line in found) / len(found), 1
            ),
            "write_wait_p50_ms": round(_percentile(waits, 0.5), 2),
            "write_wait_p99_ms": round(_percentile(waits, 0.99), 2),
            "write_wait_max_ms": round(max(waits), 2),
            "write_hold_p50_ms": round(_percentile(holds, 0.5), 2),
            "write_hold_p99_ms": round(_percentile(holds, 0.99), 2),
            "write_hold_max_ms": round(max(holds), 2),
            "stale_reads_per_request": round(
                sum(line.get("db_stale_reads", 0) for line in found) / len(found), 2
            ),
        }
    return costs


def start_profiles(
    deployment: Deployment, folder: Path, seconds: int
) -> list[subprocess.Popen[bytes]]:
    """py-spy sampling each worker for the run, as collapsed stacks: only the thread holding
    the GIL, so what it shows is where the worker's Python CPU went."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        raise SystemExit("--profile needs py-spy: pip install py-spy")
    folder.mkdir(parents=True, exist_ok=True)
    profilers = []
    for pid in sorted(deployment.worker_pids()):
        command = [spy, "record", "--pid", str(pid), "--duration", str(seconds), "--rate",
                   "250", "--gil", "--format", "raw", "--nonblocking", "--output",
                   str(folder / f"worker-{pid}.txt")]  # fmt: skip
        profilers.append(
            subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        )
    return profilers


def summarise_profile(path: Path, top: int = 25) -> dict[str, Any]:
    """Where a worker's CPU went: the functions most often on top of the stack (self) and
    anywhere in it (inclusive), as shares of its samples."""
    self_counts: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [frame.split(" (")[0] + " " + frame.rsplit("/", 1)[-1].split(":")[0]
                  for frame in stack.split(";")]  # fmt: skip
        self_counts[frames[-1]] = self_counts.get(frames[-1], 0) + count
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + count

    def shares(counts: dict[str, int]) -> list[tuple[str, float]]:
        ranked = sorted(counts.items(), key=lambda item: -item[1])[:top]
        return [(name, round(100 * count / max(total, 1), 1)) for name, count in ranked]

    return {"samples": total, "self_pct": shares(self_counts), "inclusive_pct": shares(inclusive)}


def wrk(
    script: str,
    deployment: Deployment,
    *,
    threads: int,
    connections: int,
    seconds: int,
    args: list[str],
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            "wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s",
            "--timeout", "10s", "-s", str(HERE / script), deployment.base, "--", *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "DV_LOAD_DIR": str(HERE)},
    )  # fmt: skip


def figures_of(output: str) -> dict[str, Any]:
    for line in reversed(output.strip().splitlines()):
        if line.startswith("{"):
            found: dict[str, Any] = json.loads(line)
            return found
    raise RuntimeError(f"wrk printed no figures:\n{output}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its finished children (for the server's cost)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(value) for value in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def server_cpu(deployment: Deployment) -> float:
    """CPU seconds used so far by `dv serve` and its worker processes."""
    assert deployment.server is not None
    root = deployment.server.pid
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            pgid = int(stat.rsplit(")", 1)[1].split()[2])
            if pgid == root:
                total += cpu_seconds(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return total


def run(
    deployment: Deployment,
    *,
    workers: int,
    seconds: int,
    scan_connections: int,
    kinds: list[str],
    write_connections: int = WRITE_CONNECTIONS,
    events_per_s: float = EVENTS_PER_S,
    import_features: int = IMPORT_FEATURES,
    import_after: float = IMPORT_AFTER_S,
    profile: Path | None = None,
    warmup: int = WARMUP_S,
) -> dict[str, Any]:
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown or not kinds:
        raise SystemExit(f"--kinds takes some of {', '.join(KINDS)}; not {unknown or 'none'}")
    folder = Path(tempfile.mkdtemp(prefix="dv-load-"))
    tokens = [token for _, token in deployment.devices]  # one on each of its parcels
    assert deployment.installed is not None
    installed = deployment.installed
    (folder / "scans.txt").write_text("\n".join(scan_paths(deployment)) + "\n")
    (folder / "tokens.txt").write_text("\n".join(tokens) + "\n")
    (folder / "events.txt").write_text("\n".join(event_templates(deployment)) + "\n")
    fbfbm, document = import_document(deployment, import_features) if import_features else ("", {})
    # The access log of every request: what each route cost (route_costs).
    deployment.env["DV_LOG_LEVEL"] = "INFO"
    deployment.start(workers=workers)
    if warmup and "scan" in kinds:
        # Each worker builds its pages on first request: a server that has been up a while
        # has them; the measured run should too.
        wrk("scans.lua", deployment, threads=2, connections=scan_connections, seconds=warmup,
            args=[str(folder / "scans.txt")]).communicate(timeout=warmup + 60)  # fmt: skip
    counted_before = scrape_workers(deployment, workers)
    log = deployment.data_dir / "serve.log"
    log_offset = log.stat().st_size
    before = _counts(deployment)
    cpu_before = server_cpu(deployment)
    load_before = os.getloadavg()
    started = time.monotonic()
    # (script, threads, connections, arguments) of each kind's wrk.
    plans: dict[str, tuple[str, int, int, list[str]]] = {
        "scan": ("scans.lua", 2, scan_connections, [str(folder / "scans.txt")]),
        "ingest": (
            "ingest.lua", len(tokens), CONNECTIONS_PER_DEVICE * len(tokens),
            [str(folder / "tokens.txt"), str(int(installed.timestamp() * 1000) + 1000),
             str(READINGS_PER_BATCH), str(BATCHES_PER_S)],
        ),
        "write": (
            "writes.lua", 1, write_connections,
            [str(folder / "events.txt"), deployment.manager_token, str(events_per_s)],
        ),
    }  # fmt: skip
    profilers = start_profiles(deployment, profile, seconds) if profile else []
    processes = {
        kind: wrk(
            plans[kind][0],
            deployment,
            threads=plans[kind][1],
            connections=plans[kind][2],
            seconds=seconds,
            args=plans[kind][3],
        )
        for kind in kinds
    }
    imported: dict[str, Any] = {}
    importer = None
    if import_features:
        importer = threading.Timer(
            import_after, run_import, args=(deployment, fbfbm, document, imported)
        )
        importer.start()
    outputs = {
        kind: process.communicate(timeout=seconds + 120)[0] for kind, process in processes.items()
    }
    elapsed = time.monotonic() - started
    load_after = os.getloadavg()
    cpu_used = server_cpu(deployment) - cpu_before
    if importer is not None:
        importer.join()  # an import that outlasts the load is waited for, not measured
    for profiler in profilers:
        profiler.wait(timeout=60)
    counted = worker_counts(counted_before, scrape_workers(deployment, workers))
    deployment.stop()
    costs = route_costs(log, log_offset)
    after = _counts(deployment)
    audit = deployment.audit()
    shutil.rmtree(folder, ignore_errors=True)

    figures_by_kind = {kind: figures_of(output) for kind, output in outputs.items()}
    total_requests = 0
    total_errors = 0
    for figures in figures_by_kind.values():
        errors = sum(
            figures[key]
            for key in ("connect_errors", "read_errors", "write_errors", "timeouts", "http_errors")
        )
        figures["errors"] = errors
        figures["requests_per_s"] = round(figures["requests"] / figures["seconds"], 1)
        figures["error_rate"] = (
            round(errors / figures["requests"], 5) if figures["requests"] else None
        )
        total_requests += figures["requests"]
        total_errors += errors
    stored = {key: after[key] - before[key] for key in after}

    def sent_by_kind(kind: str) -> int:
        return int(figures_by_kind.get(kind, {}).get("requests", 0))

    def per_s(kind: str) -> float:
        figures = figures_by_kind.get(kind)
        return figures["requests"] / figures["seconds"] if figures else 0.0

    backend = "postgresql" if deployment.database_url.startswith("postgresql") else "sqlite"
    result: dict[str, Any] = {
        "backend": backend,
        "workers": workers,
        "seconds": round(elapsed, 1),
        "requests": total_requests,
        "requests_per_s": round(total_requests / elapsed, 1),
        "error_rate": round(total_errors / total_requests, 5) if total_requests else None,
        "kinds": figures_by_kind,
        "scans_per_s": round(per_s("scan"), 1),
        "readings_per_s": round(per_s("ingest") * READINGS_PER_BATCH, 1),
        "events_per_s": round(per_s("write"), 1),
        "readings_stored": stored["readings"],
        "readings_sent": sent_by_kind("ingest") * READINGS_PER_BATCH,
        "events_stored": stored["events"],
        "events_acknowledged_at_most": sent_by_kind("write"),
        "import": {key: value for key, value in imported.items() if key != "started"},
        "ledger_audit_ok": audit["ok"],
        "server_cpu_seconds": round(cpu_used, 1),
        "server_cpu_ms_per_request": (
            round(cpu_used * 1000 / total_requests, 2) if total_requests else None
        ),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in load_after],
        "cpus": os.cpu_count(),
        "routes": costs,
        # Views kept, built and dropped, and scans stored, late and dropped, by the workers.
        "workers_counted": counted,
    }
    if profile:
        result["profiles"] = {
            path.stem: summarise_profile(path) for path in sorted(profile.glob("worker-*.txt"))
        }
    # wrk counts the requests answered before the end; those still in flight then (at most
    # one a connection) may have been stored too.
    readings_in_flight = CONNECTIONS_PER_DEVICE * len(tokens) * READINGS_PER_BATCH
    result["held"] = (
        total_errors == 0
        and result["ledger_audit_ok"]
        and 0 <= stored["readings"] - result["readings_sent"] <= readings_in_flight
        and 0 <= stored["events"] - sent_by_kind("write") <= write_connections
        and all(figures["requests"] > 0 for figures in figures_by_kind.values())
        and (not import_features or imported.get("status") == 200)
    )
    result["bars"] = bars(result, import_features=import_features)
    return result


def bars(result: dict[str, Any], *, import_features: int) -> dict[str, Any]:
    """Each bar of the harvest day: the figure, the bar, and whether it was met."""
    kinds = result["kinds"]
    found: dict[str, Any] = {}

    def bar(name: str, value: float | None, target: float, *, at_most: bool = False) -> None:
        met = value is not None and (value < target if at_most else value >= target)
        found[name] = {"value": value, "bar": ("< " if at_most else ">= ") + f"{target:g}"}
        found[name]["met"] = met

    if "scan" in kinds:
        bar("scans_per_s", result["scans_per_s"], BAR_SCANS_PER_S[result["backend"]])
        bar("scan_p99_ms", kinds["scan"]["p99_ms"], BAR_SCAN_P99_MS, at_most=True)
    if "ingest" in kinds:
        bar("readings_per_s", result["readings_per_s"], BAR_READINGS_PER_S)
    if "write" in kinds:
        bar("events_per_s", result["events_per_s"], BAR_EVENTS_PER_S)
    if import_features:
        # Every other request, as the server timed it and as its client did.
        others = [
            cost["max_ms"]
            for route, cost in result["routes"].items()
            if not route.endswith("/parcels/import")
        ]
        slowest = max([*others, *(figures["max_ms"] for figures in kinds.values())], default=None)
        bar("slowest_other_request_ms", slowest, BAR_OTHERS_DURING_IMPORT_MS, at_most=True)
    found["errors"] = {"value": result["error_rate"], "bar": "0", "met": result["held"]}
    return found


def _counts(deployment: Deployment) -> dict[str, int]:
    engine = create_engine(deployment.database_url)
    with engine.connect() as connection:
        counts = {
            "readings": int(connection.scalar(text("SELECT count(*) FROM reading")) or 0),
            "events": int(connection.scalar(text("SELECT count(*) FROM trace_event")) or 0),
        }
    engine.dispose()
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--postgres",
        default=os.environ.get("DV_TEST_POSTGRES_URL"),
        help="PostgreSQL server URL (a throwaway database is made on it); default SQLite",
    )
    parser.add_argument("--workers", type=int, default=2, help="`dv serve --workers`")
    parser.add_argument("--seconds", type=int, default=30, help="how long the load runs")
    parser.add_argument("--scan-connections", type=int, default=8, help="concurrent scanners")
    parser.add_argument(
        "--write-connections",
        type=int,
        default=WRITE_CONNECTIONS,
        help="managers capturing events at once",
    )
    parser.add_argument(
        "--events-per-s",
        type=float,
        default=EVENTS_PER_S,
        help="events the managers send a second in all (paced)",
    )
    parser.add_argument(
        "--import-features",
        type=int,
        default=IMPORT_FEATURES,
        help="features of the parcel import posted during the load (0: none)",
    )
    parser.add_argument(
        "--import-after",
        type=float,
        default=IMPORT_AFTER_S,
        help="seconds into the load when the import is posted",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=WARMUP_S,
        help="seconds of scans before the measured run, so each worker has built its pages",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="sample each worker with py-spy into this folder and print where its CPU went",
    )
    parser.add_argument(
        "--kinds",
        default=",".join(KINDS),
        help="which kinds of traffic to run (comma-separated; default all: scan,ingest,write)",
    )
    parser.add_argument(
        "--sealing",
        action="store_true",
        help="sensors send yesterday's readings (a gateway's backlog), so that the background "
        "sealer seals that day while they arrive; otherwise their readings start three hours "
        "ago, and whether the sealer is at work depends on the time of day",
    )
    parser.add_argument(
        "--keep-files",
        action="store_true",
        help="keep the deployment's data folder (its database and serve.log) and print where",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    installed_ago = dt.timedelta(hours=3)
    if args.sealing:  # yesterday at noon, China Standard Time
        now = dt.datetime.now(CHINA)
        noon = dt.datetime.combine(now.date() - dt.timedelta(days=1), dt.time(12), CHINA)
        installed_ago = now - noon
    deployment = Deployment.create(args.postgres, installed_ago=installed_ago)
    try:
        figures = run(
            deployment,
            workers=args.workers,
            seconds=args.seconds,
            scan_connections=args.scan_connections,
            kinds=[kind.strip() for kind in args.kinds.split(",") if kind.strip()],
            write_connections=args.write_connections,
            events_per_s=args.events_per_s,
            import_features=args.import_features,
            import_after=args.import_after,
            profile=args.profile,
            warmup=args.warmup,
        )
    finally:
        deployment.destroy(keep_files=args.keep_files)
        if args.keep_files:
            print(f"kept: {deployment.data_dir}", file=sys.stderr)
    report(figures)
    sys.exit(0 if figures["held"] else 1)


def report(figures: dict[str, Any]) -> None:
    """The figures for a reader, then one JSON line of them."""
    for kind, values in figures["kinds"].items():
        print(
            f"{kind:>7}: {values['requests_per_s']:>8} req/s  errors {values['errors']} "
            f"({values['error_rate']})  p50 {values['p50_ms']} ms  p99 {values['p99_ms']} ms  "
            f"max {values['max_ms']} ms"
        )
    print("\nroute costs (server access log): requests, p50/p99/max ms, statements a request,")
    print("  write lock wait p50/p99/max ms, write transaction held p50/p99/max ms,")
    print("  reads found stale a request (captures checked beside the writer, checked again)")
    for route, cost in figures["routes"].items():
        print(
            f"  {route[:60]:<60} {cost['requests']:>6}  {cost['p50_ms']}/{cost['p99_ms']}/"
            f"{cost['max_ms']}  {cost['statements_per_request']}  "
            f"{cost['write_wait_p50_ms']}/{cost['write_wait_p99_ms']}/{cost['write_wait_max_ms']}  "
            f"{cost['write_hold_p50_ms']}/{cost['write_hold_p99_ms']}/{cost['write_hold_max_ms']}"
            f"  {cost['stale_reads_per_request']}"
        )
    print("\nworkers counted during the run (/metrics, summed):")
    for name, value in figures["workers_counted"].items():
        print(f"  {name}: {value}")
    print()
    for key in ("backend", "workers", "scans_per_s", "readings_per_s", "events_per_s",
                "requests_per_s", "error_rate", "readings_sent", "readings_stored",
                "events_acknowledged_at_most", "events_stored", "import", "ledger_audit_ok",
                "server_cpu_seconds", "server_cpu_ms_per_request", "loadavg_before",
                "loadavg_after", "cpus", "held"):  # fmt: skip
        print(f"{key:>28}: {figures[key]}")
    for worker, found in figures.get("profiles", {}).items():
        print(f"\n{worker}: {found['samples']} samples; % of them on top of the stack (self):")
        for name, share in found["self_pct"]:
            print(f"  {share:>5}  {name}")
        print("  … anywhere in the stack (inclusive):")
        for name, share in found["inclusive_pct"]:
            print(f"  {share:>5}  {name}")
    print("\nbars:")
    for name, bar in figures["bars"].items():
        print(f"  {name:>26}: {bar['value']} ({bar['bar']}) {'met' if bar['met'] else 'MISSED'}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
