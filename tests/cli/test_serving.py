"""`dv serve --workers N`: every worker takes its share of connections opened at once, as a
reverse proxy's keep-alive pool or a load test opens them (cli/serving.py)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.test_readme import free_port

DV = str(Path(sys.executable).with_name("dv"))
WORKERS = 2
CONNECTIONS = 16


def worker_of(connection: socket.socket) -> str:
    """The pid of the worker that answers /metrics on this open connection."""
    connection.sendall(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
    answer = b""
    while b'dv_worker{pid="' not in answer or not answer.endswith(b"\n"):
        chunk = connection.recv(65536)
        assert chunk, f"connection closed: {answer[:200]!r}"
        answer += chunk
    found = re.search(rb'dv_worker\{pid="(\d+)"', answer)
    assert found is not None
    return found.group(1).decode()


def answering_workers(port: int, count: int, process: subprocess.Popen[bytes]) -> set[str]:
    """The pids of ``count`` workers, once each has answered on a connection of its own."""
    seen: set[str] = set()
    deadline = time.monotonic() + 120
    while len(seen) < count:
        assert process.poll() is None, "dv serve stopped"
        assert time.monotonic() < deadline, f"only workers {seen} answered within 120 s"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
                seen.add(worker_of(connection))
        except OSError:
            time.sleep(0.2)
    return seen


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    folder = tmp_path_factory.mktemp("serving")
    env = {**os.environ, "DV_DATA_DIR": str(folder / "var"), "DV_LOG_FORMAT": "text"}
    env.pop("DV_DATABASE_URL", None)
    subprocess.run([DV, "init"], env=env, check=True, capture_output=True, timeout=120)
    port = free_port()
    process = subprocess.Popen(
        [DV, "serve", "--port", str(port), "--workers", str(WORKERS)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        answering_workers(port, WORKERS, process)
        yield port, process
    finally:
        process.terminate()
        assert process.wait(timeout=60) == 0


def listening_sockets(port: int) -> int:
    """How many sockets listen on ``port`` of 127.0.0.1 (Linux's /proc/net/tcp)."""
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(
        1 for row in rows if row.split()[1] == f"0100007F:{port:04X}" and row.split()[3] == "0A"
    )


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's /proc/net/tcp")
def test_each_worker_listens_on_a_socket_of_its_own(
    server: tuple[int, subprocess.Popen[bytes]],
) -> None:
    # One accept queue each: a worker takes only the connections the kernel gives its socket.
    assert listening_sockets(server[0]) == WORKERS


def test_connections_opened_at_once_are_spread_over_the_workers(
    server: tuple[int, subprocess.Popen[bytes]],
) -> None:
    port = server[0]
    # Opened in one burst, as a connection pool opens them: each connect is sent before any is
    # accepted.
    connections = [socket.socket() for _ in range(CONNECTIONS)]
    for connection in connections:
        connection.setblocking(False)
        connection.connect_ex(("127.0.0.1", port))
    for connection in connections:
        connection.setblocking(True)
        connection.settimeout(10)
    try:
        workers = [worker_of(connection) for connection in connections]
    finally:
        for connection in connections:
            connection.close()
    counts = {pid: workers.count(pid) for pid in set(workers)}
    # Spread by the kernel over the workers' own sockets by each connection's port: all 16 on
    # one worker has a chance of 2 in 65,536. With one shared socket, the first worker to
    # wake accepted them all.
    assert len(counts) == WORKERS, counts


def test_a_worker_that_dies_is_replaced_and_its_socket_with_it(
    server: tuple[int, subprocess.Popen[bytes]],
) -> None:
    port, process = server
    before = answering_workers(port, WORKERS, process)
    victim = int(sorted(before)[0])
    os.kill(victim, signal.SIGKILL)
    after = answering_workers(port, WORKERS, process)
    assert str(victim) not in after and len(after) == WORKERS
    if Path("/proc/net/tcp").exists():  # the dead worker's socket went with it
        assert listening_sockets(port) == WORKERS
