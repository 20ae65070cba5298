"""Witness benchmark: add-checkpoint latency, and how soon appends are witnessed under load.

1. ``add-checkpoint``: one witness (``dv witness serve``, its own process) is sent checkpoints of
   a growing log, each with its consistency proof from the last size it cosigned, one after
   another over a kept-alive connection; the latency of each answer (p50, p99, max).
2. ``witnessed within``: a log on SQLite (or PostgreSQL with ``--postgres URL``) takes appends
   at ``--rate`` per second from one thread, set up as a serving process is: appends do not
   sign, a publisher signs a checkpoint every 250 ms and wakes the background cosigner, which
   asks two witnesses (each its own process); for every append, the time from its commit until
   a checkpoint covering it carries both cosignatures (p50, p99, max), and the appends achieved.

Prints each figure, then one JSON object as the last line.

    python scripts/bench_witness.py [--quick] [--rate 1000] [--seconds 10] [--postgres URL]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from digital_village import migrate
from digital_village.db import Database, make_engine
from digital_village.ledger import cosigner, keys, merkle, note, witnesses
from digital_village.ledger.log import Ledger
from digital_village.ledger.models import LedgerCosignature
from digital_village.ledger.publisher import Publisher

ORIGIN = "bench.digital-village.example/ledger"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def dv(*args: str, env: dict[str, str]) -> str:
    command = [sys.executable, "-c", "from digital_village.cli.main import app; app()", *args]
    return subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout


@contextmanager
def witness_process(folder: Path, name: str, log_vkey: str) -> Iterator[tuple[str, str]]:
    """A witness in its own process: (its URL, its verifier key)."""
    env = {**os.environ, "DV_DATA_DIR": str(folder), "DV_LOG_FORMAT": "text"}
    key = folder / "witness.key"
    vkey = dv("witness", "key", "--key", str(key), "--name", name, env=env).strip().splitlines()[-1]
    dv("witness", "logs", "add", log_vkey, env=env)
    port = free_port()
    command = [
        sys.executable,
        "-c",
        "from digital_village.cli.main import app; app()",
        "witness",
        "serve",
        "--key",
        str(key),
        "--port",
        str(port),
    ]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"the witness {name} did not start")
            time.sleep(0.1)
        yield url, vkey
    finally:
        process.terminate()
        process.wait(timeout=10)


def bench_add_checkpoint(folder: Path, requests: int) -> dict[str, float]:
    """Latency of add-checkpoint against one witness process, a log growing 10 entries a time."""
    signer = note.Signer.parse(note.generate_signer_key(ORIGIN))
    tree = merkle.MemoryHashStore()
    with witness_process(
        folder / "w", "bench.witness.example/w", signer.verifier().to_string()
    ) as (
        url,
        _,
    ):
        latencies = []
        old = 0
        with httpx.Client(timeout=5) as client:
            for _ in range(requests):
                for _ in range(10):
                    tree.append(f"entry {tree.size}".encode())
                size = tree.size
                proof = tree.consistency_proof(old, size) if old else []
                text = note.Checkpoint(ORIGIN, size, tree.root()).to_text()
                body = cosigner.request_body(old, proof, note.sign_note(text, signer))
                started = time.perf_counter()
                response = client.post(url + "/add-checkpoint", content=body)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    raise RuntimeError(
                        f"the witness answered {response.status_code}: {response.text}"
                    )
                old = size
    return {
        "add_checkpoint_requests": requests,
        "add_checkpoint_p50_ms": 1000 * statistics.median(latencies),
        "add_checkpoint_p99_ms": 1000 * percentile(latencies, 0.99),
        "add_checkpoint_max_ms": 1000 * max(latencies),
    }


def bench_witnessed_within(folder: Path, url: str, rate: float, seconds: float) -> dict[str, float]:
    """Appends at ``rate`` a second; how long each waits for a checkpoint both witnesses
    cosigned."""
    engine = make_engine(url)
    with engine.begin() as connection:
        migrate.upgrade(connection)
    database = Database(engine)
    key_path = folder / "ledger.key"
    keys.ensure_signing_key(key_path, ORIGIN)
    ledger = Ledger.from_key_file(key_path, ORIGIN, sign_on_append=False)
    with (
        witness_process(folder / "city", "witness.deyang.example/nyj", ledger.vkey) as city,
        witness_process(folder / "province", "witness.sichuan.example/trace", ledger.vkey) as prov,
    ):
        with database.transaction() as session:
            witnesses.add(session=session, name="city", vkey=city[1], url=city[0])
            witnesses.add(session=session, name="province", vkey=prov[1], url=prov[0])
        background = cosigner.BackgroundCosigner(database, poll=0.05, timeout=2.0).start()
        publisher = Publisher(database, ledger, listeners=[lambda _: background.notify()]).start()
        committed: list[float] = []
        witnessed_at: dict[int, float] = {}
        stop = threading.Event()

        def watch() -> None:
            query = (
                select(LedgerCosignature.size)
                .group_by(LedgerCosignature.size)
                .having(func.count() >= 2)
                .order_by(LedgerCosignature.size.desc())
                .limit(1)
            )
            while not stop.is_set():
                with database.session() as session:
                    size = session.scalar(query)
                if size is not None and size not in witnessed_at:
                    witnessed_at[int(size)] = time.monotonic()
                time.sleep(0.01)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        started = time.monotonic()
        interval = 1.0 / rate
        n = 0
        while time.monotonic() - started < seconds:
            due = started + n * interval
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            with database.transaction() as session:
                ledger.append(session, kind="bench.event", data={"n": n})
            committed.append(time.monotonic())
            n += 1
        appending = time.monotonic() - started
        publisher.stop()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (not witnessed_at or max(witnessed_at) < n):
            time.sleep(0.05)
        stop.set()
        watcher.join()
        background.stop()
    engine.dispose()
    waits = []
    sizes = sorted(witnessed_at)
    for seq, at in enumerate(committed):
        # The first checkpoint both witnesses cosigned that covers entry seq (size > seq).
        covering = next((witnessed_at[size] for size in sizes if size > seq), None)
        if covering is not None:
            waits.append(max(0.0, covering - at))
    return {
        "appends": n,
        "appends_per_s": n / appending,
        "witnessed_appends": len(waits),
        "witnessed_p50_s": statistics.median(waits) if waits else float("nan"),
        "witnessed_p99_s": percentile(waits, 0.99) if waits else float("nan"),
        "witnessed_max_s": max(waits) if waits else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run to see it works")
    parser.add_argument("--rate", type=float, default=1000.0, help="appends per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to append")
    parser.add_argument("--requests", type=int, default=2000, help="add-checkpoint requests")
    parser.add_argument("--postgres", help="a PostgreSQL database URL for the log (emptied)")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.requests = 2.0, 200
    figures: dict[str, Any] = {"load_average": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        figures.update(bench_add_checkpoint(folder, args.requests))
        print(
            f"add-checkpoint: p50 {figures['add_checkpoint_p50_ms']:.2f} ms, "
            f"p99 {figures['add_checkpoint_p99_ms']:.2f} ms, "
            f"max {figures['add_checkpoint_max_ms']:.2f} ms over {args.requests} requests"
        )
        url = args.postgres or f"sqlite:///{folder / 'log.db'}"
        figures.update(bench_witnessed_within(folder, url, args.rate, args.seconds))
        print(
            f"{figures['appends']} appends at {figures['appends_per_s']:.0f}/s; witnessed by 2 "
            f"within p50 {figures['witnessed_p50_s']:.3f} s, "
            f"p99 {figures['witnessed_p99_s']:.3f} s, "
            f"max {figures['witnessed_max_s']:.3f} s"
        )
    figures["load_average_after"] = os.getloadavg()[0]
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
