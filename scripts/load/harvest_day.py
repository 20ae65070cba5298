"""Load: a harvest-season day on a throwaway deployment, driven by wrk.

Three kinds of traffic at once, each a wrk process with its own Lua profile:

- scan (scans.lua): consumers scanning bottle labels — the consumer page in Chinese or English,
  or the GS1 linkset as JSON — as fast as the server answers;
- ingest (ingest.lua): field sensors, one device per wrk thread, posting batches of soil
  readings with a pause between batches;
- write (writes.lua): the cooperative's managers capturing EPCIS events (irrigating,
  fertilizing, harvests) with a pause between events.

The deployment is the sample village of `dv demo` (scripts/drills/_harness.py) served by
`dv serve --workers N` on SQLite or PostgreSQL. Afterwards the ledger is audited and the
readings and events counted, so "held" means: no 5xx, no connection errors, and everything
acknowledged is stored.

    python scripts/load/harvest_day.py [--postgres URL] [--workers 2] [--seconds 30]

Prints requests/s, error rate and p50/p99 per kind and the machine's load average; the last
line is one JSON object. Exit 1 if an error was seen or the audit failed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

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
READINGS_PER_BATCH = 200
INGEST_PAUSE_MS = 250
WRITE_CONNECTIONS = 2
WRITE_PAUSE_MS = 200


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
    deployment.start(workers=workers)
    before = _counts(deployment)
    cpu_before = server_cpu(deployment)
    load_before = os.getloadavg()
    started = time.monotonic()
    # (script, threads, connections, arguments) of each kind's wrk.
    plans: dict[str, tuple[str, int, int, list[str]]] = {
        "scan": ("scans.lua", 2, scan_connections, [str(folder / "scans.txt")]),
        "ingest": (
            "ingest.lua", len(tokens), len(tokens),
            [str(folder / "tokens.txt"), str(int(installed.timestamp() * 1000) + 1000),
             str(READINGS_PER_BATCH), str(INGEST_PAUSE_MS)],
        ),
        "write": (
            "writes.lua", 1, WRITE_CONNECTIONS,
            [str(folder / "events.txt"), deployment.manager_token, str(WRITE_PAUSE_MS)],
        ),
    }  # fmt: skip
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
    outputs = {
        kind: process.communicate(timeout=seconds + 120)[0] for kind, process in processes.items()
    }
    elapsed = time.monotonic() - started
    load_after = os.getloadavg()
    cpu_used = server_cpu(deployment) - cpu_before
    deployment.stop()
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

    result: dict[str, Any] = {
        "backend": "postgresql" if deployment.database_url.startswith("postgresql") else "sqlite",
        "workers": workers,
        "seconds": round(elapsed, 1),
        "requests": total_requests,
        "requests_per_s": round(total_requests / elapsed, 1),
        "error_rate": round(total_errors / total_requests, 5) if total_requests else None,
        "kinds": figures_by_kind,
        "readings_stored": stored["readings"],
        "readings_sent": sent_by_kind("ingest") * READINGS_PER_BATCH,
        "events_stored": stored["events"],
        "events_acknowledged_at_most": sent_by_kind("write"),
        "ledger_audit_ok": audit["ok"],
        "server_cpu_seconds": round(cpu_used, 1),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in load_after],
        "cpus": os.cpu_count(),
    }
    # wrk counts the requests answered before the end; those still in flight then (at most
    # one a connection) may have been stored too.
    readings_in_flight = len(tokens) * READINGS_PER_BATCH
    result["held"] = (
        total_errors == 0
        and result["ledger_audit_ok"]
        and 0 <= stored["readings"] - result["readings_sent"] <= readings_in_flight
        and 0 <= stored["events"] - sent_by_kind("write") <= WRITE_CONNECTIONS
        and all(figures["requests"] > 0 for figures in figures_by_kind.values())
    )
    return result


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
        "--kinds",
        default=",".join(KINDS),
        help="which kinds of traffic to run (comma-separated; default all: scan,ingest,write)",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    deployment = Deployment.create(args.postgres)
    try:
        figures = run(
            deployment,
            workers=args.workers,
            seconds=args.seconds,
            scan_connections=args.scan_connections,
            kinds=[kind.strip() for kind in args.kinds.split(",") if kind.strip()],
        )
    finally:
        deployment.destroy()
    for kind, values in figures["kinds"].items():
        print(
            f"{kind:>7}: {values['requests_per_s']:>8} req/s  errors {values['errors']} "
            f"({values['error_rate']})  p50 {values['p50_ms']} ms  p99 {values['p99_ms']} ms"
        )
    for key in ("requests_per_s", "error_rate", "readings_sent", "readings_stored",
                "events_stored", "ledger_audit_ok", "server_cpu_seconds", "loadavg_before",
                "loadavg_after", "held"):  # fmt: skip
        print(f"{key:>22}: {figures[key]}")
    print(json.dumps(figures))
    sys.exit(0 if figures["held"] else 1)


if __name__ == "__main__":
    main()
