"""Benchmark sensor ingest: HTTP bulk JSON on SQLite (against a raw executemany of the same rows
into the same table), HTTP on PostgreSQL, and MQTT end to end through Mosquitto.

    .venv/bin/python scripts/bench_ingest.py            # the full run (a few minutes)
    .venv/bin/python scripts/bench_ingest.py --quick    # under a minute

Everything runs on 127.0.0.1: a `dv` API server (uvicorn, one worker) on a fresh database, a
Mosquitto started from deploy/mosquitto-dev.conf on a free port (or DV_BENCH_MQTT_URL), and
`dv iot mqtt` as the ingest worker. PostgreSQL runs when DV_TEST_POSTGRES_URL is set or a
server answers on 127.0.0.1:5432. The last line printed is one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import multiprocessing
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from digital_village import migrate  # noqa: E402
from digital_village.auth.actor import Actor  # noqa: E402
from digital_village.db import Database, make_engine  # noqa: E402
from digital_village.iot import service, shapes  # noqa: E402
from digital_village.ledger import keys  # noqa: E402
from digital_village.ledger.log import Ledger  # noqa: E402
from digital_village.parcels import service as parcels  # noqa: E402
from digital_village.parcels.geometry import to_lonlat  # noqa: E402
from digital_village.regions import service as regions  # noqa: E402
from digital_village.regions.uscc import compute_check_character  # noqa: E402

ORIGIN = "bench.digital-village.example/ledger"
VILLAGE, GROUP = "510603101201", "51060310120101"
METRICS = ("soil_moisture", "soil_temperature")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


# --- a village with devices ---------------------------------------------------------------------


@dataclass
class Village:
    url: str
    data_dir: Path
    device_ids: list[int]
    tokens: list[str]


def make_village(url: str, data_dir: Path, devices: int) -> Village:
    """Migrate a fresh database, make the ledger key, a parcel and ``devices`` generic devices."""
    data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(url)
    with engine.begin() as connection:
        migrate.upgrade(connection)
    key_path = data_dir / "ledger.key"
    keys.ensure_signing_key(key_path, ORIGIN)
    ledger = Ledger.from_key_file(key_path, ORIGIN)
    database = Database(engine)
    operator = Actor.operator()
    first17 = "93510603MA6900001"
    with database.transaction() as session:
        regions.seed_jingyang(session=session)
        regions.add_region(session=session, code=VILLAGE, name="民安村", actor=operator)
        regions.add_region(session=session, code=GROUP, name="一组", actor=operator)
        coop = regions.register_cooperative(
            session=session,
            uscc=first17 + compute_check_character(first17),
            name="基准测试合作社",
            region_code=VILLAGE,
            actor=operator,
        )
        from shapely.geometry import box

        field = to_lonlat(box(431_000, 3_460_000, 431_200, 3_460_200), 4544)
        report = parcels.register_many(
            session=session,
            ledger=ledger,
            fbfbm=GROUP,
            items=[
                parcels.ParcelIn(geometry=field, land_use="0103", operator_cooperative_id=coop.id)
            ],
            actor=operator,
            valid_from=dt.date(2025, 1, 1),
        )
        dkbm = report.created[0].dkbm
        installed = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
        ids, tokens = [], []
        for _ in range(devices):
            made = service.register_device(
                session=session,
                ledger=ledger,
                actor=operator,
                model="generic",
                parcel=dkbm,
                cooperative=str(coop.id),
                installed_at=installed,
            )
            ids.append(made.device.id)
            tokens.append(made.token)
    engine.dispose()
    return Village(url, data_dir, ids, tokens)


def server_env(village: Village) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DV_DATA_DIR=str(village.data_dir),
        DV_DATABASE_URL=village.url,
        DV_LEDGER_ORIGIN=ORIGIN,
        DV_LOG_LEVEL="WARNING",
        DV_MAX_BODY_BYTES=str(64 * 1024 * 1024),
    )
    return env


@contextmanager
def api_server(village: Village) -> Iterator[int]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "digital_village.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env=server_env(village),
        cwd=ROOT,
    )
    try:
        wait_for_port(port)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


# --- HTTP bulk ingest ---------------------------------------------------------------------------


def bulk_bodies(
    village: Village, total: int, per_request: int
) -> tuple[list[tuple[str, bytes]], list[tuple[int, int, int, float, bool]]]:
    """Request bodies of ``per_request`` readings (RFC 3339 times), and the same rows as tuples."""
    bodies: list[tuple[str, bytes]] = []
    rows: list[tuple[int, int, int, float, bool]] = []
    now_ms = service.now_ms()
    per_device = total // len(village.device_ids)
    for device_id, token in zip(village.device_ids, village.tokens, strict=True):
        # Distinct milliseconds in the last minutes: every key is new, all within today.
        start = now_ms - 120_000 - per_device
        items: list[dict[str, Any]] = []
        for n in range(per_device):
            metric = METRICS[n % 2]
            time_ms = start + n
            value = round(20 + (n % 97) / 10, 2)
            items.append({"metric": metric, "time": shapes.ms_to_rfc3339(time_ms), "value": value})
            rows.append((device_id, shapes.METRIC_CODES[metric], time_ms, value, False))
        for offset in range(0, len(items), per_request):
            chunk = items[offset : offset + per_request]
            bodies.append((token, orjson.dumps({"readings": chunk})))
    return bodies, rows


def post_all(port: int, bodies: list[tuple[str, bytes]]) -> float:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    started = time.perf_counter()
    for token, body in bodies:
        connection.request(
            "POST",
            "/api/v1/telemetry",
            body=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        response = connection.getresponse()
        payload = response.read()
        if response.status != 200:
            raise RuntimeError(f"telemetry answered {response.status}: {payload[:300]!r}")
        result = orjson.loads(payload)
        if result["rejected"] or result["duplicates"]:
            raise RuntimeError(f"unexpected result {result}")
    elapsed = time.perf_counter() - started
    connection.close()
    return elapsed


def http_rate(
    url: str, work: Path, *, total: int, per_request: int, devices: int
) -> tuple[float, list[tuple[int, int, int, float, bool]]]:
    village = make_village(url, work, devices)
    bodies, rows = bulk_bodies(village, total, per_request)
    with api_server(village) as port:
        # Warm up the process (imports, first connections) with one tiny request.
        warm = [(village.tokens[0], orjson.dumps({"battery": 3.6}))]
        post_all(port, warm)
        elapsed = post_all(port, bodies)
    return len(rows) / elapsed, rows


def raw_executemany_rate(
    work: Path, rows: list[tuple[int, int, int, float, bool]], per_request: int, devices: int
) -> float:
    """The same rows into the same table (fresh database, same schema), 10 k per transaction."""
    url = f"sqlite:///{work / 'raw.db'}"
    make_village(url, work, devices)
    connection = sqlite3.connect(work / "raw.db", isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA foreign_keys=ON")
    sql = (
        "INSERT INTO reading (device_id, metric_id, time_ms, value, flagged) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
    )
    started = time.perf_counter()
    for offset in range(0, len(rows), per_request):
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany(sql, rows[offset : offset + per_request])
        connection.execute("COMMIT")
    elapsed = time.perf_counter() - started
    stored = connection.execute("SELECT count(*) FROM reading").fetchone()[0]
    connection.close()
    assert stored == len(rows), (stored, len(rows))
    return len(rows) / elapsed


# --- PostgreSQL -----------------------------------------------------------------------------------


def postgres_url() -> str | None:
    url = os.environ.get("DV_TEST_POSTGRES_URL")
    if url:
        return url
    try:
        import psycopg

        with psycopg.connect(
            "host=127.0.0.1 port=5432 user=postgres dbname=postgres", connect_timeout=2
        ):
            return "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    except Exception:
        return None


@contextmanager
def postgres_database(base: str) -> Iterator[str]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(make_url(base).set(database="postgres"), isolation_level="AUTOCOMMIT")
    name = f"dv_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# --- MQTT ---------------------------------------------------------------------------------


@contextmanager
def mosquitto() -> Iterator[tuple[str, int]]:
    given = os.environ.get("DV_BENCH_MQTT_URL")
    if given:
        host, _, port = given.removeprefix("mqtt://").partition(":")
        yield host, int(port or 1883)
        return
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).exists():
        raise RuntimeError("no mosquitto binary; install mosquitto or set DV_BENCH_MQTT_URL")
    port = free_port()
    config = (ROOT / "deploy" / "mosquitto-dev.conf").read_text(encoding="utf-8")
    config = config.replace("listener 1883 127.0.0.1", f"listener {port} 127.0.0.1")
    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as handle:
        handle.write(config)
    process = subprocess.Popen([binary, "-c", handle.name], stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        yield "127.0.0.1", port
    finally:
        process.terminate()
        process.wait(timeout=10)
        os.unlink(handle.name)


def _publisher(
    host: str,
    port: int,
    jobs: list[tuple[int, str]],
    count: int,
    start_ms: int,
    ready: Any,
    go: Any,
) -> None:
    from paho.mqtt import client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    # No client-side in-flight window: paho rescans every unacknowledged message on each
    # PUBACK when a window is set (quadratic in the backlog); the broker paces us instead.
    client.max_inflight_messages_set(0)
    client.max_queued_messages_set(0)

    def nodelay(_c: Any, _u: Any, sock: Any) -> None:
        with suppress(OSError, AttributeError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    client.on_socket_open = nodelay
    client.connect(host, port)
    client.loop_start()
    topics = [(f"dv/v1/devices/{device_id}/telemetry", token) for device_id, token in jobs]
    ready.set()
    go.wait()
    infos = []
    for n in range(count):
        topic, token = topics[n % len(topics)]
        payload = (
            b'{"token":"'
            + token.encode()
            + b'","ts":'
            + str(start_ms + n).encode()
            + b',"values":{"soil_moisture":'
            + str(20 + n % 50).encode()
            + b"}}"
        )
        infos.append(client.publish(topic, payload, qos=1))
    for info in infos:
        info.wait_for_publish(timeout=300)
    client.disconnect()
    client.loop_stop()


def mqtt_rate(work: Path, *, messages: int, publishers: int, devices: int) -> dict[str, float]:
    village = make_village(f"sqlite:///{work / 'mqtt.db'}", work, devices)
    counter = sqlite3.connect(work / "mqtt.db")
    with mosquitto() as (host, port):
        worker = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("dv")),
                "iot",
                "mqtt",
                "--host",
                host,
                "--port",
                str(port),
                "--client-id",
                f"bench-{uuid.uuid4().hex[:6]}",
            ],
            env=server_env(village),
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
        try:
            time.sleep(2.0)  # connect and subscribe
            context = multiprocessing.get_context("spawn")
            ready = [context.Event() for _ in range(publishers)]
            go = context.Event()
            per = messages // publishers
            jobs = list(zip(village.device_ids, village.tokens, strict=True))
            start_ms = service.now_ms() - 120_000 - messages
            processes = [
                context.Process(
                    target=_publisher,
                    args=(host, port, jobs[p::publishers], per, start_ms + p * per, ready[p], go),
                )
                for p in range(publishers)
            ]
            for process in processes:
                process.start()
            for event in ready:
                event.wait(30)
            started = time.perf_counter()
            go.set()
            expected = per * publishers
            deadline = time.monotonic() + 600
            stored = 0
            while time.monotonic() < deadline:
                stored = counter.execute("SELECT count(*) FROM reading").fetchone()[0]
                if stored >= expected:
                    break
                time.sleep(0.05)
            elapsed = time.perf_counter() - started
            for process in processes:
                process.join(60)
            memory_kb = 0
            with suppress(OSError):
                for line in Path(f"/proc/{worker.pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        memory_kb = int(line.split()[1])
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    counter.close()
    if stored < expected:
        raise RuntimeError(f"only {stored} of {expected} messages stored")
    return {"msgs_per_s": expected / elapsed, "worker_peak_rss_mb": memory_kb / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs, under a minute")
    parser.add_argument("--repeat", type=int, default=None, help="runs per figure (median)")
    args = parser.parse_args()
    quick = args.quick
    repeat = args.repeat or (1 if quick else 3)
    total = 200_000 if quick else 1_000_000
    per_request = 10_000
    devices = 20
    figures: dict[str, Any] = {"quick": quick, "repeat": repeat, "readings": total}

    http_rates, raw_rates = [], []
    for run in range(repeat):
        with tempfile.TemporaryDirectory(prefix="dv-bench-") as tmp:
            rate, rows = http_rate(
                f"sqlite:///{Path(tmp) / 'http.db'}",
                Path(tmp) / "http",
                total=total,
                per_request=per_request,
                devices=devices,
            )
            raw = raw_executemany_rate(Path(tmp) / "raw", rows, per_request, devices)
        http_rates.append(rate)
        raw_rates.append(raw)
        log(
            f"sqlite run {run + 1}: HTTP bulk {rate:,.0f} readings/s; "
            f"raw executemany {raw:,.0f} rows/s; ratio {rate / raw:.2f}"
        )
    figures["sqlite_http_readings_per_s"] = round(statistics.median(http_rates))
    figures["sqlite_raw_executemany_rows_per_s"] = round(statistics.median(raw_rates))
    figures["sqlite_http_to_raw_ratio"] = round(
        statistics.median(h / r for h, r in zip(http_rates, raw_rates, strict=True)), 3
    )

    base = postgres_url()
    if base is None:
        log("PostgreSQL: no server (set DV_TEST_POSTGRES_URL); skipped")
        figures["postgres_http_readings_per_s"] = None
    else:
        pg_rates = []
        for run in range(repeat):
            with (
                tempfile.TemporaryDirectory(prefix="dv-bench-") as tmp,
                postgres_database(base) as url,
            ):
                rate, _ = http_rate(
                    url, Path(tmp), total=total, per_request=per_request, devices=devices
                )
            pg_rates.append(rate)
            log(f"postgres run {run + 1}: HTTP bulk {rate:,.0f} readings/s")
        figures["postgres_http_readings_per_s"] = round(statistics.median(pg_rates))

    messages = 40_000 if quick else 200_000
    mqtt_runs = []
    for run in range(repeat):
        with tempfile.TemporaryDirectory(prefix="dv-bench-") as tmp:
            result = mqtt_rate(Path(tmp), messages=messages, publishers=4, devices=100)
        mqtt_runs.append(result)
        log(
            f"mqtt run {run + 1}: {result['msgs_per_s']:,.0f} msg/s end to end; "
            f"worker peak RSS {result['worker_peak_rss_mb']:.0f} MB"
        )
    figures["mqtt_messages"] = messages
    figures["mqtt_msgs_per_s"] = round(statistics.median(r["msgs_per_s"] for r in mqtt_runs))
    figures["mqtt_worker_peak_rss_mb"] = round(max(r["worker_peak_rss_mb"] for r in mqtt_runs), 1)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
