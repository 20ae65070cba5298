"""Benchmark sensor ingest: HTTP bulk JSON on SQLite (against a raw executemany of the same rows
into the same table), HTTP on PostgreSQL, and MQTT end to end through Mosquitto.

On SQLite each request's rows are also inserted raw (``executemany`` in this process), request
by request in alternating order (HTTP first, then raw first), so load from other work on the
machine falls on both sides alike; a run's ratio is the raw inserts' total time over the
requests' total time, and the figure printed is the median over runs. The CPU each side spent
is printed beside it: on a shared machine it is the steadier figure.

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
import resource
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

from bench_pages import uvicorn_command  # noqa: E402  (scripts/ is on the path of a script)

from digital_village import migrate  # noqa: E402
from digital_village.auth.actor import Actor  # noqa: E402
from digital_village.db import Database, make_engine  # noqa: E402
from digital_village.iot import devices, ingest, shapes  # noqa: E402
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a live process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


def make_village(url: str, data_dir: Path, device_count: int) -> Village:
    """Migrate a fresh database, make the ledger key, a parcel and ``device_count`` generic
    devices."""
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
        for _ in range(device_count):
            made = devices.register_device(
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
def api_server(village: Village) -> Iterator[tuple[int, int]]:
    """A `dv` API server (uvicorn, one worker); yields (port, pid)."""
    port = free_port()
    process = subprocess.Popen(
        uvicorn_command(port, 1),
        env=server_env(village),
        cwd=ROOT,
    )
    try:
        wait_for_port(port)
        yield port, process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


# --- HTTP bulk ingest ---------------------------------------------------------------------------


Row = tuple[int, int, int, float, bool]


def bulk_bodies(
    village: Village, total: int, per_request: int
) -> tuple[list[tuple[str, bytes]], list[list[Row]]]:
    """Request bodies of ``per_request`` readings (RFC 3339 times), and each one's rows as the
    tuples stored."""
    bodies: list[tuple[str, bytes]] = []
    rows: list[list[Row]] = []
    now_ms = ingest.now_ms()
    per_device = total // len(village.device_ids)
    for device_id, token in zip(village.device_ids, village.tokens, strict=True):
        # Sample times a second apart, ending two minutes ago: every key is new.
        start = now_ms - 120_000 - per_device // 2 * 1000
        items: list[dict[str, Any]] = []
        stored: list[Row] = []
        for n in range(per_device):
            # Like a probe's buffer: each sample time carries both metrics.
            metric = METRICS[n % 2]
            time_ms = start + n // 2 * 1000
            value = round(20 + (n % 97) / 10, 2)
            items.append({"metric": metric, "time": shapes.ms_to_rfc3339(time_ms), "value": value})
            stored.append((device_id, shapes.METRIC_CODES[metric], time_ms, value, False))
        for offset in range(0, len(items), per_request):
            chunk = items[offset : offset + per_request]
            bodies.append((token, orjson.dumps({"readings": chunk})))
            rows.append(stored[offset : offset + per_request])
    return bodies, rows


def post_one(connection: http.client.HTTPConnection, token: str, body: bytes) -> None:
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


def post_all(port: int, bodies: list[tuple[str, bytes]]) -> float:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    started = time.perf_counter()
    for token, body in bodies:
        post_one(connection, token, body)
    elapsed = time.perf_counter() - started
    connection.close()
    return elapsed


@dataclass
class HttpRun:
    rate: float  # readings per second, wall clock
    server_cpu_us: float  # server CPU per reading


def http_rate(url: str, work: Path, *, total: int, per_request: int, devices: int) -> HttpRun:
    village = make_village(url, work, devices)
    bodies, rows = bulk_bodies(village, total, per_request)
    readings = sum(len(batch) for batch in rows)
    with api_server(village) as (port, pid):
        # Warm up the process (imports, first connections) with one tiny request.
        warm = [(village.tokens[0], orjson.dumps({"battery": 3.6}))]
        post_all(port, warm)
        cpu = cpu_seconds(pid)
        elapsed = post_all(port, bodies)
        cpu = cpu_seconds(pid) - cpu
    return HttpRun(readings / elapsed, cpu / readings * 1e6)


RAW_SQL = (
    "INSERT INTO reading (device_id, metric_id, time_ms, value, flagged) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)


class RawInserter:
    """The baseline: the same rows into the same table of a fresh database (same schema, index
    and pragmas: the connection comes from the server's own engine setup), one ``executemany``
    and one transaction per request's worth of rows, straight through the sqlite3 driver.

    Its time is that of the transaction alone, in this process: unlike a request, it waits for
    no other process to be woken and scheduled, which on a loaded machine favours the baseline.
    """

    def __init__(self, work: Path, devices: int) -> None:
        url = f"sqlite:///{work / 'raw.db'}"
        make_village(url, work, devices)
        self.engine = make_engine(url)
        self.pooled = self.engine.raw_connection()
        self.connection: Any = self.pooled.driver_connection
        self.rows = 0
        self.seconds = 0.0  # wall clock
        self.cpu = 0.0  # this process's CPU, inserts only

    def insert(self, rows: list[Row]) -> None:
        started, cpu = time.perf_counter(), time.process_time()
        self.connection.execute("BEGIN IMMEDIATE")
        self.connection.executemany(RAW_SQL, rows)
        self.connection.execute("COMMIT")
        self.seconds += time.perf_counter() - started
        self.cpu += time.process_time() - cpu
        self.rows += len(rows)

    def close(self) -> None:
        stored = self.connection.execute("SELECT count(*) FROM reading").fetchone()[0]
        self.pooled.close()
        self.engine.dispose()
        if stored != self.rows:
            raise RuntimeError(f"raw insert stored {stored} rows of {self.rows}")


@dataclass
class PairRun:
    """HTTP and raw on SQLite, interleaved request by request."""

    http_rate: float  # readings per second, wall clock, requests only
    server_cpu_us: float  # server CPU per reading
    raw_rate: float  # rows per second, wall clock, inserts only
    raw_cpu_us: float  # CPU per row
    load_average: float  # 1-minute load average at the end of the run

    @property
    def ratio(self) -> float:
        return self.http_rate / self.raw_rate

    @property
    def cpu_ratio(self) -> float:
        return self.raw_cpu_us / self.server_cpu_us


def sqlite_pair_run(work: Path, *, total: int, per_request: int, devices: int) -> PairRun:
    """POST every batch to a fresh server and insert the same rows raw, alternating which of
    the two goes first, so that both meet the same moments of load on a shared machine."""
    village = make_village(f"sqlite:///{work / 'http.db'}", work / "http", devices)
    bodies, rows = bulk_bodies(village, total, per_request)
    raw = RawInserter(work / "raw", devices)
    with api_server(village) as (port, pid):
        post_all(port, [(village.tokens[0], orjson.dumps({"battery": 3.6}))])  # warm up
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        http_seconds = 0.0
        server_cpu = cpu_seconds(pid)
        for number, ((token, body), batch) in enumerate(zip(bodies, rows, strict=True)):
            if number % 2:
                raw.insert(batch)
            started = time.perf_counter()
            post_one(connection, token, body)
            http_seconds += time.perf_counter() - started
            if not number % 2:
                raw.insert(batch)
        # The server sits idle while the raw side inserts: its CPU over the loop is the
        # requests' (clock ticks, so measured over the whole loop rather than per request).
        server_cpu = cpu_seconds(pid) - server_cpu
        connection.close()
    raw.close()
    return PairRun(
        http_rate=raw.rows / http_seconds,
        server_cpu_us=server_cpu / raw.rows * 1e6,
        raw_rate=raw.rows / raw.seconds,
        raw_cpu_us=raw.cpu / raw.rows * 1e6,
        load_average=os.getloadavg()[0],
    )


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
def mosquitto() -> Iterator[tuple[str, int, int]]:
    given = os.environ.get("DV_BENCH_MQTT_URL")
    if given:
        host, _, given_port = given.removeprefix("mqtt://").partition(":")
        yield host, int(given_port or 1883), 0
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
        yield "127.0.0.1", port, process.pid
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
    cpu_used: Any,
) -> None:
    from paho.mqtt import client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)
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
    cpu = time.process_time()
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
    cpu_used.value = time.process_time() - cpu
    client.disconnect()
    client.loop_stop()


@dataclass
class MqttRun:
    rate: float  # messages per second, wall clock, publish of the first to commit of the last
    workers: int
    worker_cpu_us: float  # per message, all workers together
    broker_cpu_us: float
    publishers_cpu_us: float
    worker_peak_rss_mb: float

    @property
    def cpu_bound_rate(self) -> float:
        """What two otherwise idle cores would sustain at the CPU cost measured here: all parts
        share the cores, and each worker (one Python process) can use at most one."""
        total = self.worker_cpu_us + self.broker_cpu_us + self.publishers_cpu_us
        return min(2e6 / total, min(self.workers, 2) * 1e6 / self.worker_cpu_us)


def mqtt_rate(
    work: Path,
    *,
    messages: int,
    publishers: int,
    devices: int,
    workers: int,
    protocol: str = "5",
    publisher: str = "paho",
) -> MqttRun:
    village = make_village(f"sqlite:///{work / 'mqtt.db'}", work, devices)
    counter = sqlite3.connect(work / "mqtt.db")
    group = f"bench{uuid.uuid4().hex[:6]}"
    with mosquitto() as (host, port, broker_pid):
        logs = [work / f"worker-{n}.log" for n in range(workers)]
        handles = [log.open("wb") for log in logs]
        ingesters = [
            subprocess.Popen(
                [
                    str(Path(sys.executable).with_name("dv")),
                    "iot",
                    "mqtt",
                    "--host",
                    host,
                    "--port",
                    str(port),
                    "--group",
                    group,
                    "--client-id",
                    f"{group}-{n}",
                    "--protocol",
                    protocol,
                ],
                env=server_env(village),
                cwd=ROOT,
                stdout=handle,
                stderr=subprocess.STDOUT,
            )
            for n, handle in enumerate(handles)
        ]
        try:
            deadline = time.monotonic() + 60
            for log, worker in zip(logs, ingesters, strict=True):
                while b"ingesting" not in log.read_bytes():
                    if time.monotonic() > deadline or worker.poll() is not None:
                        raise RuntimeError(log.read_text(errors="replace"))
                    time.sleep(0.1)
            per = messages // publishers
            jobs = list(zip(village.device_ids, village.tokens, strict=True))
            start_ms = ingest.now_ms() - 120_000 - messages
            if publisher == "mosquitto_pub":
                # C publishers (libmosquitto), one per device, each reading its messages from
                # a file: the devices' side costs little of the machine, as in the field.
                files, senders = [], []
                for p, (_device, token) in enumerate(jobs[:publishers]):
                    lines = work / f"publish-{p}.txt"
                    lines.write_bytes(
                        b"".join(
                            b'{"token":"%s","ts":%d,"values":{"soil_moisture":%d}}\n'
                            % (token.encode(), start_ms + p * per + n, 20 + n % 50)
                            for n in range(per)
                        )
                    )
                    files.append(lines)
                children_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
                worker_cpu = sum(cpu_seconds(worker.pid) for worker in ingesters)
                broker_cpu = cpu_seconds(broker_pid) if broker_pid else 0.0
                started = time.perf_counter()
                for p, lines in enumerate(files):
                    with lines.open("rb") as stdin:
                        senders.append(
                            subprocess.Popen(
                                [
                                    shutil.which("mosquitto_pub") or "mosquitto_pub",
                                    "-h",
                                    host,
                                    "-p",
                                    str(port),
                                    "-q",
                                    "1",
                                    "-M",
                                    "1000",
                                    "-t",
                                    f"dv/v1/devices/{jobs[p][0]}/telemetry",
                                    "-l",
                                ],
                                stdin=stdin,
                            )
                        )
            else:
                context = multiprocessing.get_context("spawn")
                ready = [context.Event() for _ in range(publishers)]
                used = [context.Value("d", 0.0) for _ in range(publishers)]
                go = context.Event()
                processes = [
                    context.Process(
                        target=_publisher,
                        args=(
                            host,
                            port,
                            jobs[p::publishers],
                            per,
                            start_ms + p * per,
                            ready[p],
                            go,
                            used[p],
                        ),
                    )
                    for p in range(publishers)
                ]
                for process in processes:
                    process.start()
                for event in ready:
                    event.wait(60)
                worker_cpu = sum(cpu_seconds(worker.pid) for worker in ingesters)
                broker_cpu = cpu_seconds(broker_pid) if broker_pid else 0.0
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
            worker_cpu = sum(cpu_seconds(worker.pid) for worker in ingesters) - worker_cpu
            broker_cpu = (cpu_seconds(broker_pid) - broker_cpu) if broker_pid else 0.0
            if publisher == "mosquitto_pub":
                for sender in senders:
                    sender.wait(60)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                publishers_cpu = (after.ru_utime + after.ru_stime) - (
                    children_cpu.ru_utime + children_cpu.ru_stime
                )
            else:
                for process in processes:
                    process.join(60)
                publishers_cpu = sum(value.value for value in used)
            memory_kb = 0
            for worker in ingesters:
                for line in Path(f"/proc/{worker.pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        memory_kb = max(memory_kb, int(line.split()[1]))
        finally:
            for worker in ingesters:
                worker.terminate()
                worker.wait(timeout=30)
            for handle in handles:
                handle.close()
    counter.close()
    if stored < expected:
        raise RuntimeError(f"only {stored} of {expected} messages stored")
    return MqttRun(
        rate=expected / elapsed,
        workers=workers,
        worker_cpu_us=worker_cpu / expected * 1e6,
        broker_cpu_us=broker_cpu / expected * 1e6,
        publishers_cpu_us=publishers_cpu / expected * 1e6,
        worker_peak_rss_mb=memory_kb / 1024,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs, under a minute")
    parser.add_argument("--repeat", type=int, default=None, help="runs per figure (median)")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-mqtt", action="store_true")
    parser.add_argument(
        "--mqtt-workers", type=int, default=1, help="ingest workers sharing the subscription"
    )
    parser.add_argument("--mqtt-protocol", default="5", choices=["5", "3.1.1"])
    parser.add_argument(
        "--publisher",
        choices=["mosquitto_pub", "paho"],
        default="mosquitto_pub" if shutil.which("mosquitto_pub") else "paho",
        help="devices' side: C mosquitto_pub processes, or Python paho clients",
    )
    args = parser.parse_args()
    quick = args.quick
    repeat = args.repeat or (1 if quick else 3)
    total = 100_000 if quick else 500_000
    per_request = 10_000
    devices = 10
    median = statistics.median
    figures: dict[str, Any] = {"quick": quick, "repeat": repeat, "readings": total}
    figures["load_average_1m"] = round(os.getloadavg()[0], 2)

    runs: list[PairRun] = []
    for run in range(repeat):
        with tempfile.TemporaryDirectory(prefix="dv-bench-") as tmp:
            pair = sqlite_pair_run(Path(tmp), total=total, per_request=per_request, devices=devices)
        runs.append(pair)
        log(
            f"sqlite run {run + 1}: HTTP bulk {pair.http_rate:,.0f} readings/s "
            f"(server {pair.server_cpu_us:.2f} µs CPU each); raw executemany "
            f"{pair.raw_rate:,.0f} rows/s ({pair.raw_cpu_us:.2f} µs CPU each); ratio "
            f"{pair.ratio:.3f} wall, {pair.cpu_ratio:.3f} CPU; load {pair.load_average:.1f}"
        )
    figures["sqlite_http_readings_per_s"] = round(median(r.http_rate for r in runs))
    figures["sqlite_raw_executemany_rows_per_s"] = round(median(r.raw_rate for r in runs))
    figures["sqlite_http_server_cpu_us_per_reading"] = round(
        median(r.server_cpu_us for r in runs), 2
    )
    figures["sqlite_raw_cpu_us_per_row"] = round(median(r.raw_cpu_us for r in runs), 2)
    figures["sqlite_http_to_raw_cpu_ratio"] = round(median(r.cpu_ratio for r in runs), 3)
    figures["sqlite_http_to_raw_ratio_runs"] = [round(r.ratio, 3) for r in runs]
    # The target's figure: the median over runs of each run's wall-clock ratio.
    figures["sqlite_http_to_raw_ratio"] = round(median(r.ratio for r in runs), 3)

    base = None if args.skip_postgres else postgres_url()
    figures["postgres_http_readings_per_s"] = None
    if base is None:
        log("PostgreSQL: skipped (no server, or --skip-postgres)")
    else:
        pg_runs = []
        for run in range(repeat):
            with (
                tempfile.TemporaryDirectory(prefix="dv-bench-") as tmp,
                postgres_database(base) as url,
            ):
                http = http_rate(
                    url, Path(tmp), total=total, per_request=per_request, devices=devices
                )
            pg_runs.append(http)
            log(
                f"postgres run {run + 1}: HTTP bulk {http.rate:,.0f} readings/s "
                f"(server {http.server_cpu_us:.2f} µs CPU each)"
            )
        figures["postgres_http_readings_per_s"] = round(median(h.rate for h in pg_runs))
        figures["postgres_http_server_cpu_us_per_reading"] = round(
            median(h.server_cpu_us for h in pg_runs), 2
        )

    if not args.skip_mqtt:
        messages = 20_000 if quick else 100_000
        mqtt_runs = []
        for run in range(repeat):
            with tempfile.TemporaryDirectory(prefix="dv-bench-") as tmp:
                result = mqtt_rate(
                    Path(tmp),
                    messages=messages,
                    publishers=10 if args.publisher == "mosquitto_pub" else 2,
                    devices=100,
                    workers=args.mqtt_workers,
                    protocol=args.mqtt_protocol,
                    publisher=args.publisher,
                )
            mqtt_runs.append(result)
            log(
                f"mqtt run {run + 1}: {result.rate:,.0f} msg/s end to end; CPU µs per message: "
                f"worker {result.worker_cpu_us:.1f}, broker {result.broker_cpu_us:.1f}, "
                f"publishers {result.publishers_cpu_us:.1f} (two idle cores: "
                f"{result.cpu_bound_rate:,.0f} msg/s); worker peak RSS "
                f"{result.worker_peak_rss_mb:.0f} MB"
            )
        figures["mqtt_messages"] = messages
        figures["mqtt_workers"] = args.mqtt_workers
        figures["mqtt_protocol"] = args.mqtt_protocol
        figures["mqtt_publisher"] = args.publisher
        figures["mqtt_msgs_per_s"] = round(median(r.rate for r in mqtt_runs))
        figures["mqtt_worker_cpu_us_per_msg"] = round(median(r.worker_cpu_us for r in mqtt_runs), 1)
        figures["mqtt_total_cpu_us_per_msg"] = round(
            median(r.worker_cpu_us + r.broker_cpu_us + r.publishers_cpu_us for r in mqtt_runs), 1
        )
        figures["mqtt_cpu_bound_msgs_per_s"] = round(median(r.cpu_bound_rate for r in mqtt_runs))
        figures["mqtt_worker_peak_rss_mb"] = round(max(r.worker_peak_rss_mb for r in mqtt_runs), 1)
    figures["load_average_1m_after"] = round(os.getloadavg()[0], 2)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
