"""The MQTT ingest worker against a real Mosquitto.

The broker: ``DV_TEST_MQTT_URL`` (``mqtt://host:port``, started with deploy/mosquitto-dev.conf
or deploy/mosquitto.conf), else a private Mosquitto started here from deploy/mosquitto-dev.conf
on a free port. Without either the tests are skipped, except under CI=true, where they fail.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from paho.mqtt import client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy import func, select

from digital_village import migrate
from digital_village.auth.actor import Actor
from digital_village.db import Database, make_engine
from digital_village.iot import devices, ingest
from digital_village.iot.models import Reading
from digital_village.iot.mqtt import IngestWorker, WorkerOptions, device_of_topic
from digital_village.ledger import keys
from digital_village.ledger.log import Ledger
from digital_village.regions import service as regions
from tests.conftest import IN_CI
from tests.factories import GROUP, VILLAGE, make_uscc
from tests.iot.conftest import INSTALLED, Farm, register_fields

pytestmark = pytest.mark.mqtt
ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Broker:
    host: str
    port: int


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"CI=true but the MQTT tests cannot run: {reason}")
    pytest.skip(reason)


def _wait_for(port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="session")
def broker() -> Iterator[Broker]:
    url = os.environ.get("DV_TEST_MQTT_URL")
    if url:
        host, _, port = url.removeprefix("mqtt://").partition(":")
        found = Broker(host or "127.0.0.1", int(port or 1883))
        if not _wait_for(found.port, found.host, timeout=3):
            _unavailable(f"no MQTT broker answers at {url} (DV_TEST_MQTT_URL)")
        yield found
        return
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).exists():
        _unavailable("no mosquitto binary and DV_TEST_MQTT_URL unset (apt-get install mosquitto)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = (ROOT / "deploy" / "mosquitto-dev.conf").read_text(encoding="utf-8")
    assert "listener 1883 127.0.0.1" in config
    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as handle:
        handle.write(config.replace("listener 1883 127.0.0.1", f"listener {port} 127.0.0.1"))
    process = subprocess.Popen([binary, "-c", handle.name], stderr=subprocess.PIPE)
    try:
        if not _wait_for(port):
            output = process.stderr.read().decode() if process.stderr else ""
            _unavailable(f"mosquitto did not start: {output}")
        yield Broker("127.0.0.1", port)
    finally:
        process.terminate()
        process.wait(timeout=10)
        os.unlink(handle.name)


class Publisher:
    """A device-side MQTT client (v3.1.1, as most firmware) publishing QoS 1."""

    def __init__(self, broker: Broker) -> None:
        self.client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)
        self.client.max_inflight_messages_set(0)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def send(self, device_id: int, body: Any, raw: bytes | None = None) -> None:
        payload = raw if raw is not None else orjson.dumps(body)
        info = self.client.publish(f"dv/v1/devices/{device_id}/telemetry", payload, qos=1)
        info.wait_for_publish(timeout=10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _options(broker: Broker, **extra: Any) -> WorkerOptions:
    return WorkerOptions(
        host=broker.host,
        port=broker.port,
        client_id=f"test-{uuid.uuid4().hex[:8]}",
        group=f"g{uuid.uuid4().hex[:6]}",
        **extra,
    )


def run_until(worker: IngestWorker, done: Any, timeout: float = 20.0) -> None:
    """Run the worker in this thread until ``done(stats)`` or the timeout."""
    stop = threading.Event()
    timer = threading.Timer(timeout, stop.set)
    timer.start()

    def check(stats: Any) -> None:
        if done(stats):
            stop.set()

    try:
        worker.run(stop, on_batch=check)
    finally:
        timer.cancel()


def count(db: Database, device_id: int | None = None) -> int:
    with db.session() as session:
        query = select(func.count()).select_from(Reading)
        if device_id is not None:
            query = query.where(Reading.device_id == device_id)
        return int(session.scalar(query) or 0)


def test_topic_names_the_device() -> None:
    assert device_of_topic("dv/v1/devices/42/telemetry") == 42
    assert device_of_topic("dv/v1/devices/x/telemetry") is None
    assert device_of_topic("dv/v1/devices/42/telemetry/errors") is None
    assert device_of_topic("other/42/telemetry") is None


def test_worker_stores_every_shape_then_acknowledges(
    broker: Broker, db: Database, farm: Farm
) -> None:
    worker = IngestWorker(db, _options(broker))
    worker.connect()
    publisher = Publisher(broker)
    now = ingest.now_ms() - 60_000
    try:
        for n in range(150):
            publisher.send(
                farm.device_id,
                {"token": farm.token, "ts": now + n, "values": {"soil_moisture": 20 + n % 10}},
            )
        publisher.send(
            farm.device_id,
            {
                "token": farm.token,
                "readings": [{"metric": "battery", "time": now, "value": 3.6}],
            },
        )
        publisher.send(farm.generic_id, {"token": farm.generic_token, "air_humidity": 61.5})
        # a repeat is a duplicate, stored once
        publisher.send(
            farm.device_id, {"token": farm.token, "ts": now, "values": {"soil_moisture": 20}}
        )
        run_until(worker, lambda s: s.messages >= 153)
    finally:
        publisher.close()
        worker.close()
    assert worker.stats.accepted == 152
    assert worker.stats.duplicates == 1
    assert worker.stats.invalid == 0
    assert count(db, farm.device_id) == 151
    assert count(db, farm.generic_id) == 1


def test_bad_messages_are_refused_alone_and_reported(
    broker: Broker, db: Database, farm: Farm
) -> None:
    reports: list[tuple[str, dict[str, Any]]] = []
    listener = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    listener.on_message = lambda _c, _u, m: reports.append((m.topic, orjson.loads(m.payload)))
    listener.connect(broker.host, broker.port)
    listener.subscribe("dv/v1/devices/+/telemetry/errors", qos=1)
    listener.loop_start()
    worker = IngestWorker(db, _options(broker))
    worker.connect()
    publisher = Publisher(broker)
    now = ingest.now_ms() - 60_000
    good = {"token": farm.token, "ts": now, "values": {"soil_moisture": 25}}
    try:
        time.sleep(0.3)
        publisher.send(farm.device_id, good)
        publisher.send(farm.device_id, {"ts": now + 1, "values": {"soil_moisture": 25}})
        publisher.send(farm.device_id, {**good, "token": "dv_nope_nope"})
        publisher.send(farm.generic_id, good)  # the token of another device
        publisher.send(
            farm.device_id, None, raw=b'{"token": "x", "ts": 1, "values": {"soil_moisture": NaN}}'
        )
        publisher.send(farm.device_id, {**good, "values": {"soil_moisture": "wet"}})
        publisher.send(farm.device_id, {**good, "ts": now + 2, "values": {"soil_moisture": 250}})
        run_until(worker, lambda s: s.messages >= 7)
        deadline = time.monotonic() + 5
        while len(reports) < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        publisher.close()
        worker.close()
        listener.disconnect()
        listener.loop_stop()
    assert worker.stats.accepted == 1
    assert worker.stats.invalid == 5
    assert worker.stats.rejected == 1  # 250 % soil moisture
    assert count(db) == 1
    reasons = " | ".join(str(body) for _, body in reports)
    assert 'needs the device token in "token"' in reasons
    assert "invalid bearer token" in reasons
    assert f"may not write for device {farm.generic_id}" in reasons
    assert "not valid JSON" in reasons
    assert "is not a number" in reasons
    assert "above the plausible range" in reasons


def test_broker_mode_trusts_the_topic(broker: Broker, db: Database, farm: Farm) -> None:
    worker = IngestWorker(db, _options(broker, auth="broker"))
    worker.connect()
    publisher = Publisher(broker)
    try:
        publisher.send(farm.generic_id, {"battery": 3.5})
        run_until(worker, lambda s: s.messages >= 1)
    finally:
        publisher.close()
        worker.close()
    assert count(db, farm.generic_id) == 1


# --- several processes, real commits ------------------------------------------------------------


def _make_village(url: str, tmp_path: Path) -> list[tuple[int, str]]:
    """Migrate, make the key, a cooperative, parcels and ten generic devices; their tokens."""
    from tests.conftest import World

    engine = make_engine(url)
    with engine.begin() as connection:
        migrate.upgrade(connection)
    key_path = tmp_path / "ledger.key"
    keys.ensure_signing_key(key_path, "test.digital-village.example/ledger")
    ledger = Ledger.from_key_file(key_path, "test.digital-village.example/ledger")
    operator = Actor.operator()
    made_devices: list[tuple[int, str]] = []
    with Database(engine).transaction() as session:
        regions.seed_jingyang(session=session)
        regions.add_region(session=session, code=VILLAGE, name="民安村", actor=operator)
        regions.add_region(session=session, code=GROUP, name="一组", actor=operator)
        coop = regions.register_cooperative(
            session=session,
            uscc=make_uscc(7),
            name="测试合作社",
            region_code=VILLAGE,
            actor=operator,
        )
        household = regions.register_household(
            session=session,
            region_code=GROUP,
            name="王五",
            phone=None,
            cooperative_id=coop.id,
            actor=operator,
        )
        world = World(coop.id, coop.id, household.id, household.id, 0, 0, {})
        dkbms = register_fields(session, ledger, world)
        for _ in range(10):
            made = devices.register_device(
                session=session,
                ledger=ledger,
                actor=operator,
                model="generic",
                parcel=dkbms[0],
                cooperative=str(coop.id),
                installed_at=INSTALLED,
            )
            made_devices.append((made.device.id, made.token))
    engine.dispose()
    return made_devices


@pytest.fixture
def village_url(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[str, Path, list[tuple[int, str]]]]:
    """A migrated database of the backend whose commits are real, with ten devices."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'mqtt.db'}"
        yield url, tmp_path, _make_village(url, tmp_path)
        return
    server = request.getfixturevalue("postgres_server")
    url = server.create_database("dv_mqtt")
    try:
        yield url, tmp_path, _make_village(url, tmp_path)
    finally:
        server.drop_database(url)


@pytest.fixture
def sqlite_village(tmp_path: Path) -> tuple[str, Path, list[tuple[int, str]]]:
    """The same on SQLite whatever the backend: the crash test is about the broker's session
    (storing is the same code on both backends, covered there by the other tests), and it
    starts a worker process twice, which is slow."""
    url = f"sqlite:///{tmp_path / 'mqtt.db'}"
    return url, tmp_path, _make_village(url, tmp_path)


def _stored(url: str) -> int:
    database = Database.from_url(url)
    try:
        return count(database)
    finally:
        database.dispose()


def _worker_process(
    url: str, data_dir: Path, broker: Broker, client_id: str
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DV_DATABASE_URL": url,
        "DV_DATA_DIR": str(data_dir),
        "DV_LOG_LEVEL": "WARNING",
        "DV_LEDGER_ORIGIN": "test.digital-village.example/ledger",
    }
    command = [
        str(Path(sys.executable).with_name("dv")),
        "iot",
        "mqtt",
        "--host",
        broker.host,
        "--port",
        str(broker.port),
        "--client-id",
        client_id,
        "--group",
        f"crash{client_id[-6:]}",
    ]
    log = (data_dir / f"{client_id}.log").open("ab")
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


def _wait_until_ingesting(data_dir: Path, client_id: str, timeout: float = 60.0) -> None:
    log = data_dir / f"{client_id}.log"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and "ingesting" in log.read_text(encoding="utf-8", errors="replace"):
            return
        time.sleep(0.1)
    raise AssertionError(f"the worker did not subscribe: {log.read_text(errors='replace')}")


def test_a_killed_worker_loses_nothing_and_stores_nothing_twice(
    broker: Broker, sqlite_village: tuple[str, Path, list[tuple[int, str]]]
) -> None:
    url, data_dir, devices = sqlite_village
    client_id = f"crash-{uuid.uuid4().hex[:6]}"
    worker = _worker_process(url, data_dir, broker, client_id)
    total = 3000
    try:
        # Subscribed: from now on the broker keeps the session's messages for this client id.
        _wait_until_ingesting(data_dir, client_id)
        publisher = Publisher(broker)
        start = ingest.now_ms() - 120_000
        infos = []

        def publish_all() -> None:
            for n in range(total):
                device_id, token = devices[n % len(devices)]
                body = {"token": token, "ts": start + n, "values": {"soil_moisture": 20 + n % 30}}
                infos.append(
                    publisher.client.publish(
                        f"dv/v1/devices/{device_id}/telemetry", orjson.dumps(body), qos=1
                    )
                )
                if n % 100 == 0:
                    time.sleep(0.01)

        sender = threading.Thread(target=publish_all)
        sender.start()
        deadline = time.monotonic() + 60
        while _stored(url) < 200 and time.monotonic() < deadline:
            time.sleep(0.02)
        worker.send_signal(signal.SIGKILL)  # no clean shutdown: what was in flight is unacked
        worker.wait(timeout=10)
        sender.join(timeout=60)
        for info in infos:
            info.wait_for_publish(timeout=30)
        publisher.close()
        before = _stored(url)
        assert 0 < before < total, before
        worker = _worker_process(url, data_dir, broker, client_id)  # the same session
        deadline = time.monotonic() + 90
        while _stored(url) < total and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(0.5)  # anything stored twice would show up now
        assert _stored(url) == total
    finally:
        worker.terminate()
        worker.wait(timeout=10)


def test_two_workers_share_the_subscription(
    broker: Broker, village_url: tuple[str, Path, list[tuple[int, str]]]
) -> None:
    url, _, devices = village_url
    group = f"share{uuid.uuid4().hex[:6]}"
    databases = [Database.from_url(url) for _ in range(2)]
    workers = [
        IngestWorker(
            database,
            WorkerOptions(
                host=broker.host, port=broker.port, client_id=f"{group}-{n}", group=group
            ),
        )
        for n, database in enumerate(databases)
    ]
    stop = threading.Event()
    threads = []
    try:
        for worker in workers:
            worker.connect()
            thread = threading.Thread(target=worker.run, args=(stop,))
            thread.start()
            threads.append(thread)
        publisher = Publisher(broker)
        start = ingest.now_ms() - 60_000
        for n in range(400):
            device_id, token = devices[n % len(devices)]
            publisher.send(
                device_id, {"token": token, "ts": start + n, "values": {"soil_moisture": 30}}
            )
        publisher.close()
        deadline = time.monotonic() + 30
        while _stored(url) < 400 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
        for worker in workers:
            worker.close()
        for database in databases:
            database.dispose()
    assert _stored(url) == 400
    shares = [worker.stats.messages for worker in workers]
    assert sum(shares) == 400
    assert all(share > 0 for share in shares), shares


def test_the_shipped_broker_config_queues_a_backlog_without_dropping(broker: Broker) -> None:
    """Mosquitto's default max_queued_messages (1000) would drop most of this backlog."""
    topic = f"dv/test/{uuid.uuid4().hex[:8]}"
    client_id = f"backlog-{uuid.uuid4().hex[:6]}"
    received: set[bytes] = set()

    def session(clean: bool) -> paho.Client:
        client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=paho.MQTTv5,
        )
        client.on_message = lambda _c, _u, m: received.add(m.payload)
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = 300
        client.connect(broker.host, broker.port, clean_start=clean, properties=properties)
        client.loop_start()
        return client

    subscriber = session(True)
    subscriber.subscribe(topic, qos=1)
    time.sleep(0.3)
    subscriber.disconnect()
    subscriber.loop_stop()
    publisher = Publisher(broker)
    infos = [publisher.client.publish(topic, str(n).encode(), qos=1) for n in range(5000)]
    for info in infos:
        info.wait_for_publish(timeout=30)
    publisher.close()
    subscriber = session(False)
    deadline = time.monotonic() + 20
    while len(received) < 5000 and time.monotonic() < deadline:
        time.sleep(0.05)
    subscriber.disconnect()
    subscriber.loop_stop()
    assert len(received) == 5000


def test_the_worker_speaks_mqtt_311_too(broker: Broker, db: Database, farm: Farm) -> None:
    worker = IngestWorker(db, _options(broker, protocol="3.1.1"))
    worker.connect()
    publisher = Publisher(broker)
    now = ingest.now_ms() - 60_000
    try:
        for n in range(50):
            publisher.send(
                farm.device_id, {"token": farm.token, "ts": now + n, "values": {"battery": 3.6}}
            )
        run_until(worker, lambda s: s.messages >= 50)
    finally:
        publisher.close()
        worker.close()
    assert count(db, farm.device_id) == 50
