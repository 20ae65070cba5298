"""``dv serve --workers N``: worker processes that each accept on a listening socket of their own.

uvicorn's own multi-worker mode shares one listening socket between its workers, and a worker's
event loop, once woken, accepts every connection that is waiting. Clients that open a few
long-lived connections at once (a reverse proxy's keep-alive pool, a load generator) then all
land on one worker while the others idle: in the harvest-day mix one worker served every scan
on one core while the other sat in ``select`` (377-456 scans/s; 1,386-1,671/s in the runs where
the connections happened to split). Here each worker binds its own socket to the address with
``SO_REUSEPORT`` and the kernel spreads new connections over the workers' sockets by their
addresses and ports, as nginx's ``reuseport`` does. A worker that dies takes its socket with
it, so no connection is sent to a socket nobody accepts on; it is started again.

Linux only (elsewhere ``SO_REUSEPORT`` does not spread connections): on other systems, and with
one worker, ``serve`` is uvicorn's own.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import sys
import threading
from multiprocessing.process import BaseProcess
from typing import Any, Final

import uvicorn
from uvicorn.config import STARTUP_FAILURE

_log = logging.getLogger("uvicorn.error")

# How often the supervisor looks for a worker that has stopped, and how long a stopping worker
# has to finish its requests before it is killed.
SUPERVISE_S: Final = 0.5
STOP_GRACE_S: Final = 30.0


def spreads_connections() -> bool:
    """Whether this system spreads connections over sockets bound with SO_REUSEPORT."""
    return sys.platform == "linux" and hasattr(socket, "SO_REUSEPORT")


def bound_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` with SO_REUSEPORT (not yet listening)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


def _worker(options: dict[str, Any], host: str, port: int) -> None:
    """A worker process: its own socket, then uvicorn's server on it until told to stop."""
    config = uvicorn.Config(host=host, port=port, **options)
    try:
        sock = bound_socket(host, port)
        sock.listen(config.backlog)
    except OSError as error:
        _log.error("worker could not listen on %s:%d: %s", host, port, error)
        sys.exit(STARTUP_FAILURE)
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
    if not server.started:
        sys.exit(STARTUP_FAILURE)


def serve(host: str, port: int, workers: int, **options: Any) -> None:
    """Serve ``options["app"]`` (an import string) on ``host:port`` with ``workers`` processes,
    each accepting on its own socket; a worker that stops is started again. Returns on SIGINT
    or SIGTERM once the workers have stopped, or when a worker cannot start at all."""
    if workers == 1 or not spreads_connections():
        uvicorn.run(host=host, port=port, workers=workers, **options)
        return
    # Bind once here so that a port in use is reported once, before any worker starts.
    bound_socket(host, port).close()
    context = multiprocessing.get_context("spawn")
    stop = threading.Event()

    def start() -> BaseProcess:
        process = context.Process(target=_worker, args=(options, host, port), name="dv-worker")
        process.start()
        return process

    def on_signal(_number: int, _frame: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    processes = [start() for _ in range(workers)]
    try:
        while not stop.wait(SUPERVISE_S):
            for index, process in enumerate(processes):
                if process.is_alive():
                    continue
                if process.exitcode == STARTUP_FAILURE:
                    _log.error("worker %s could not start; stopping", process.pid)
                    stop.set()
                    break
                _log.warning("worker %s stopped (exit %s); starting another", process.pid,
                             process.exitcode)  # fmt: skip
                processes[index] = start()
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: uvicorn finishes the requests it has
        for process in processes:
            process.join(STOP_GRACE_S)
            if process.is_alive():
                process.kill()
                process.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if any(process.exitcode == STARTUP_FAILURE for process in processes):
        sys.exit(STARTUP_FAILURE)
