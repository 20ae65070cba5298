"""Drill: SIGKILL of the API and of the MQTT ingest worker under load, then restart.

(a) API. Recorders post EPCIS field events, ingesters post batches of readings (resending a
batch until it is acknowledged, as devices do) and a reader fetches pages, while `dv serve`
(its whole process group) is SIGKILLed and restarted several times. Afterwards: `dv ledger
verify` passes, every acknowledged event (201) is in the ledger, every acknowledged reading is
stored with its value, a resend never finds part of its batch stored (no torn commit), every
reading stored was accepted exactly once, no event is half-written (a ledger entry without its
row or the reverse), and no 5xx was ever answered.

(b) MQTT worker. Publishers send QoS 1 telemetry to a private Mosquitto (deploy/
mosquitto-dev.conf on a free port) and count the messages the broker acknowledged (PUBACK),
while `dv iot mqtt` is SIGKILLed and restarted with the same client id. Afterwards every
acknowledged message's readings are stored, and none of anything else.

    python scripts/drills/crash.py [--postgres URL] [--part api|mqtt|both] [--kills 3]
                                   [--seconds 4]

SQLite unless --postgres names a server (a throwaway database is made on it). --seconds is the
load between two kills. Prints figures; the last line is one JSON object. Exit 1 if a check
fails.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import create_engine, select

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import DV, REPO, Deployment, free_port, report
from _load import Load, check_stored

from digital_village.iot.models import Reading
from digital_village.iot.shapes import METRIC_CODES


def api_drill(deployment: Deployment, *, kills: int, seconds: float) -> dict[str, Any]:
    """Kill `dv serve` under load ``kills`` times, restarting it each time."""
    restarts: list[float] = []
    deployment.start()
    load = Load(deployment, recorders=2, ingesters=2, readers=1).start()
    rng = random.Random(8)
    started = time.monotonic()
    try:
        for _ in range(kills):
            time.sleep(seconds * rng.uniform(0.6, 1.4))
            deployment.kill()
            time.sleep(rng.uniform(0.2, 1.0))  # writers keep trying against a closed port
            restarts.append(deployment.start())
        time.sleep(seconds)  # the last life runs long enough for every resend to get through
    finally:
        load.stop()
        deployment.stop()
    elapsed = time.monotonic() - started
    figures: dict[str, Any] = {
        "api_kills": kills,
        "api_seconds": round(elapsed, 1),
        "api_restart_seconds_max": round(max(restarts, default=0.0), 1),
        "api_requests": len(load.samples),
        "api_status_counts": load.status_counts(),
        "api_refused": sum(1 for s in load.samples if s.status is None and not s.lost),
        "api_lost_in_kills": sum(1 for s in load.samples if s.lost),
        "api_errors_5xx": sum(1 for s in load.samples if s.status and s.status >= 500),
    }
    figures.update(check_stored(load))
    figures["api_ok"] = (
        figures["stored_ok"]
        and figures["api_errors_5xx"] == 0
        and figures["events_acknowledged"] > 0
        and figures["readings_acknowledged"] > 0
    )
    return figures


# --- MQTT ------------------------------------------------------------------------------------


@contextlib.contextmanager
def mosquitto() -> Iterator[int]:
    """A private broker from deploy/mosquitto-dev.conf on a free port."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).exists():
        raise RuntimeError("no mosquitto binary (apt-get install mosquitto)")
    port = free_port()
    config = (REPO / "deploy" / "mosquitto-dev.conf").read_text(encoding="utf-8")
    if "listener 1883 127.0.0.1" not in config:
        raise RuntimeError("deploy/mosquitto-dev.conf no longer listens on 1883: update the drill")
    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as handle:
        handle.write(config.replace("listener 1883 127.0.0.1", f"listener {port} 127.0.0.1"))
    process = subprocess.Popen([binary, "-c", handle.name], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("mosquitto did not start") from None
                time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)
        os.unlink(handle.name)


class Worker:
    """`dv iot mqtt` as a process of its own, with one client id across its lives."""

    def __init__(self, deployment: Deployment, port: int) -> None:
        self.deployment = deployment
        self.port = port
        suffix = os.urandom(3).hex()
        self.client_id = f"drill-{suffix}"
        self.group = f"drill{suffix}"
        self.log = deployment.data_dir / f"{self.client_id}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        """Start and wait until it has subscribed; the seconds that took."""
        started = time.monotonic()
        offset = self.log.stat().st_size if self.log.exists() else 0
        env = {**self.deployment.env, "DV_LOG_LEVEL": "WARNING"}
        command = [
            *DV,
            *("iot", "mqtt", "--host", "127.0.0.1", "--port", str(self.port)),
            *("--client-id", self.client_id, "--group", self.group),
        ]
        self.process = subprocess.Popen(
            command,
            env=env,
            cwd=REPO,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with self.log.open("rb") as handle:
                handle.seek(offset)
                if b"ingesting" in handle.read():
                    return time.monotonic() - started
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"dv iot mqtt did not subscribe:\n{self.log.read_text()[-2000:]}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)
        self.process.wait(timeout=60)
        self.process = None


class Publisher(threading.Thread):
    """A device publishing QoS 1 telemetry at a steady pace; counts what the broker PUBACKed."""

    def __init__(
        self, port: int, device_id: int, token: str, first_ms: int, per_second: float
    ) -> None:
        super().__init__(daemon=True)
        from paho.mqtt import client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        self.device_id = device_id
        self.token = token
        self.first_ms = first_ms
        self.per_second = per_second
        self.stop_event = threading.Event()
        self.infos: list[Any] = []
        self.client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)
        self.client.max_inflight_messages_set(0)  # the broker paces us (see bench_ingest.py)
        self.client.max_queued_messages_set(0)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def message(self, n: int) -> bytes:
        # Two readings per message, a millisecond apart per message.
        values = {"soil_moisture": float(n % 40), "soil_temperature": float(n % 30)}
        return orjson.dumps({"token": self.token, "ts": self.first_ms + n, "values": values})

    def run(self) -> None:
        topic = f"dv/v1/devices/{self.device_id}/telemetry"
        started = time.monotonic()
        n = 0
        while not self.stop_event.is_set():
            due = int((time.monotonic() - started) * self.per_second)
            while n < due:
                self.infos.append(self.client.publish(topic, self.message(n), qos=1))
                n += 1
            time.sleep(0.01)

    def finish(self, timeout: float) -> None:
        self.stop_event.set()
        self.join()
        deadline = time.monotonic() + timeout
        for info in self.infos:
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout=max(0.1, deadline - time.monotonic()))
        self.client.disconnect()
        self.client.loop_stop()

    def acknowledged(self) -> list[int]:
        """Numbers of the messages the broker acknowledged."""
        return [n for n, info in enumerate(self.infos) if info.is_published()]


def stored_since(url: str, firsts: dict[int, int]) -> dict[tuple[int, int, int], float]:
    """The drill devices' readings from each one's first publish time on."""
    engine = create_engine(url)
    found: dict[tuple[int, int, int], float] = {}
    with engine.connect() as connection:
        for device_id, first_ms in firsts.items():
            for metric_id, time_ms, value in connection.execute(
                select(Reading.metric_id, Reading.time_ms, Reading.value).where(
                    Reading.device_id == device_id, Reading.time_ms >= first_ms
                )
            ):
                found[(device_id, int(metric_id), int(time_ms))] = float(value)
    engine.dispose()
    return found


def mqtt_drill(deployment: Deployment, *, kills: int, seconds: float) -> dict[str, Any]:
    """Kill `dv iot mqtt` under load ``kills`` times, restarting it each time."""
    rng = random.Random(9)
    # Half an hour ago: after the installation, clear of the API drill's stretch of time.
    first_ms = int(time.time() * 1000) - 30 * 60_000
    firsts = {device_id: first_ms for device_id, _ in deployment.devices}
    restarts: list[float] = []
    backlogs: list[int] = []
    with mosquitto() as port:
        worker = Worker(deployment, port)
        worker.start()
        publishers = [
            Publisher(port, device_id, token, first_ms, per_second=300)
            for device_id, token in deployment.devices
        ]
        started = time.monotonic()
        try:
            for publisher in publishers:
                publisher.start()
            for _ in range(kills):
                time.sleep(seconds * rng.uniform(0.6, 1.4))
                worker.stop(signal.SIGKILL)
                # What the broker had acknowledged to the devices but the worker not yet stored
                # when it died: the broker holds it for the session and sends it again.
                acknowledged = sum(len(p.acknowledged()) for p in publishers)
                stored_now = len(stored_since(deployment.database_url, firsts)) // 2
                backlogs.append(acknowledged - stored_now)
                time.sleep(rng.uniform(0.2, 1.0))  # the broker queues for the absent session
                restarts.append(worker.start())
            time.sleep(seconds)
            for publisher in publishers:
                publisher.finish(timeout=120)
            expected: dict[tuple[int, int, int], float] = {}
            for publisher in publishers:
                for n in publisher.acknowledged():
                    body = orjson.loads(publisher.message(n))
                    for metric, value in body["values"].items():
                        key = (publisher.device_id, METRIC_CODES[metric], first_ms + n)
                        expected[key] = value
            # Wait for the backlog to drain, then a little longer: a reading stored twice, or
            # one never sent, would show up now.
            deadline = time.monotonic() + 180
            stored = stored_since(deployment.database_url, firsts)
            while len(stored) < len(expected) and time.monotonic() < deadline:
                time.sleep(0.5)
                stored = stored_since(deployment.database_url, firsts)
            drained = time.monotonic() - started
            time.sleep(2)
            stored = stored_since(deployment.database_url, firsts)
        finally:
            for publisher in publishers:
                publisher.stop_event.set()
            worker.stop()
    # The last life's own count: messages it was sent again that an earlier life had stored.
    last_life = worker.log.read_text(errors="replace").rpartition("stopped: ")[2]
    duplicates = re.search(r"'duplicates': (\d+)", last_life)
    published = sum(len(p.infos) for p in publishers)
    missing = [key for key, value in expected.items() if stored.get(key) != value]
    strays = [key for key in stored if key not in expected]
    figures: dict[str, Any] = {
        "mqtt_kills": kills,
        "mqtt_restart_seconds_max": round(max(restarts, default=0.0), 1),
        "mqtt_messages_published": published,
        "mqtt_messages_acknowledged": sum(len(p.acknowledged()) for p in publishers),
        "mqtt_readings_expected": len(expected),
        "mqtt_readings_stored": len(stored),
        "mqtt_readings_missing": len(missing),
        "mqtt_readings_stray": len(strays),
        "mqtt_backlog_at_kills": backlogs,
        "mqtt_redelivered_duplicates_after_last_kill": int(duplicates[1]) if duplicates else None,
        "mqtt_seconds_to_drain": round(drained, 1),
    }
    figures["mqtt_ok"] = bool(expected) and not missing and not strays
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default=None, help="PostgreSQL server URL (default: SQLite)")
    parser.add_argument("--part", choices=["api", "mqtt", "both"], default="both")
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0, help="load between two kills")
    args = parser.parse_args()
    deployment = Deployment.create(args.postgres)
    figures: dict[str, Any] = {"backend": "postgresql" if args.postgres else "sqlite"}
    keep = True  # the logs of a drill that did not finish
    try:
        if args.part in ("api", "both"):
            figures.update(api_drill(deployment, kills=args.kills, seconds=args.seconds))
        if args.part in ("mqtt", "both"):
            figures.update(mqtt_drill(deployment, kills=args.kills, seconds=args.seconds))
        audit = deployment.audit()
        figures["ledger_audit_ok"] = audit["ok"]
        if not figures["ledger_audit_ok"]:
            figures["ledger_audit_problems"] = audit.get("problems")
        figures["sqlite_integrity"] = deployment.integrity()
        figures["ok"] = (
            figures.get("api_ok", True)
            and figures.get("mqtt_ok", True)
            and figures["ledger_audit_ok"]
            and figures["sqlite_integrity"] in ("ok", "n/a")
        )
        keep = not figures["ok"]
        if keep:
            figures["kept_for_inspection"] = str(deployment.data_dir)
    finally:
        if keep:
            print(f"deployment kept for inspection: {deployment.data_dir}", file=sys.stderr)
        deployment.destroy(keep_files=keep)
    report(figures)


if __name__ == "__main__":
    main()
