"""Drill: PostgreSQL restarted and stopped under load; `dv serve` answers 503 and recovers alone.

A private PostgreSQL cluster (initdb into a temporary folder, pg_ctl on a free port; never the
shared server on 5432) serves `dv serve`, while recorders post EPCIS events, ingesters post
reading batches (resent until acknowledged) and readers fetch pages. The cluster is restarted
(`pg_ctl restart -m fast`), then stopped for a while and started again, without touching
`dv serve`; while it is stopped one of the server's workers is SIGKILLed, so uvicorn starts a
replacement while the database is away. Checks:

- every request answered while the database was away is 2xx or 503 application/problem+json
  (never 500, never another status, never left without an answer) and no request takes longer
  than --bound seconds;
- `dv serve` keeps running: the replacement worker starts and answers 503 as well (a worker
  whose start-up failed would make uvicorn stop the whole server);
- once the database is back, writes and reads succeed again by themselves within --recover
  seconds, and nothing after that fails;
- every acknowledged event is in the ledger, every acknowledged reading stored exactly once,
  nothing half-written; `dv ledger verify` passes.

    python scripts/drills/pg_restart.py [--seconds 4] [--down 5] [--workers 2]

Prints figures; the last line is one JSON object. Exit 1 if any check fails.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import Deployment, free_port, report
from _load import Load, Sample, check_stored

PG_BIN = Path(os.environ.get("DV_DRILL_PG_BIN", "/usr/lib/postgresql/15/bin"))


class Cluster:
    """A throwaway PostgreSQL cluster of its own, run as the postgres user when we are root."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="dv-drill-pg-"))
        self.data = self.folder / "data"
        self.log = self.folder / "postgres.log"
        self.port = free_port()
        self.as_postgres: list[str] = []
        if os.geteuid() == 0:  # initdb refuses to run as root
            shutil.chown(self.folder, "postgres", "postgres")
            self.as_postgres = ["runuser", "-u", "postgres", "--"]

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> float:
        started = time.monotonic()
        subprocess.run(
            [*self.as_postgres, *args], check=True, capture_output=True, text=True, timeout=120
        )
        return time.monotonic() - started

    def pg_ctl(self, action: str, *extra: str) -> float:
        """Run ``pg_ctl ACTION`` and wait for it; the seconds it took."""
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
        return self._run(
            str(PG_BIN / "pg_ctl"),
            action,
            *("-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60"),
            *extra,
        )

    def create(self) -> None:
        self._run(
            str(PG_BIN / "initdb"),
            *("-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync"),
        )
        self.pg_ctl("start")

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self.pg_ctl("stop", "-m", "immediate")
        shutil.rmtree(self.folder, ignore_errors=True)


@contextlib.contextmanager
def private_cluster() -> Iterator[Cluster]:
    cluster = Cluster()
    try:
        cluster.create()
        yield cluster
    finally:
        cluster.destroy()


def kill_a_worker(deployment: Deployment) -> int:
    """SIGKILL one of `dv serve`'s worker processes (not its supervisor); its pid."""
    workers = sorted(deployment.worker_pids())
    if deployment.server is None or not workers or workers == [deployment.server.pid]:
        raise RuntimeError("dv serve has no worker processes of its own to kill")
    os.kill(workers[0], signal.SIGKILL)
    return workers[0]


def replacement_started(deployment: Deployment) -> bool:
    """Whether a worker has logged starting while the database is away (app.py)."""
    log = deployment.data_dir / "serve.log"
    return b"starting while the database is unavailable" in log.read_bytes()


def judge(
    samples: list[Sample], outages: list[tuple[float, float]], *, bound: float, recover: float
) -> dict[str, Any]:
    """Figures of how the service behaved around the outages (start, end: monotonic)."""
    bad_answers = [
        s
        for s in samples
        if s.status is not None
        and not (200 <= s.status < 300 or (s.status == 503 and s.problem_json))
    ]
    unanswered = [s for s in samples if s.status is None]
    slowest = max((s.seconds for s in samples), default=0.0)
    unavailable = [s for s in samples if s.status == 503]
    recoveries: list[float] = []
    first_writes: list[float | None] = []
    late_failures = 0
    for _, up in outages:
        # Recovered: when the last request to fail after the database came back ended (not
        # counting those the next outage cut off).
        next_down = min((d for d, _ in outages if d > up), default=float("inf"))
        after = [s for s in samples if s.ended >= up and s.ended < next_down]
        failures_after = [s for s in after if not (s.status and 200 <= s.status < 300)]
        recoveries.append(max((s.ended for s in failures_after), default=up) - up)
        late_failures += sum(1 for s in failures_after if s.ended - up > recover)
        writes = [s.ended for s in after if s.kind != "read" and s.status in (200, 201)]
        first_writes.append(round(min(writes) - up, 2) if writes else None)
    details = sorted({s.detail for s in unavailable})
    return {
        "requests": len(samples),
        "status_503": len(unavailable),
        "status_503_by_kind": dict(Counter(s.kind for s in unavailable)),
        "answers_not_2xx_or_503_problem": len(bad_answers),
        "bad_answer_examples": sorted({f"{s.status} {s.detail}" for s in bad_answers})[:5],
        "unanswered": len(unanswered),
        "unanswered_examples": sorted({s.detail for s in unanswered})[:3],
        "slowest_request_seconds": round(slowest, 2),
        "recovery_seconds": [round(r, 2) for r in recoveries],
        "first_write_after_up_seconds": first_writes,
        "failures_after_recovery_bound": late_failures,
        "detail_503_examples": details[:4],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="load before each outage")
    parser.add_argument("--down", type=float, default=5.0, help="seconds the cluster stays down")
    parser.add_argument("--workers", type=int, default=2, help="`dv serve --workers`")
    parser.add_argument("--bound", type=float, default=10.0, help="longest a request may take")
    parser.add_argument(
        "--recover", type=float, default=10.0, help="seconds after the database is back"
    )
    args = parser.parse_args()
    figures: dict[str, Any] = {"workers": args.workers}
    with private_cluster() as cluster:
        deployment = Deployment.create(cluster.url)
        keep = False
        try:
            deployment.start(workers=args.workers)
            workers_at_start = deployment.worker_pids()
            load = Load(deployment, recorders=2, ingesters=2, readers=2, timeout=60).start()
            outages: list[tuple[float, float]] = []
            killed_worker: float | None = None
            try:
                time.sleep(args.seconds)
                # 1. restart: connections are cut, the cluster is away a second or two
                down = time.monotonic()
                cluster.pg_ctl("restart", "-m", "fast")
                outages.append((down, time.monotonic()))
                time.sleep(args.seconds)
                # 2. stop, stay down, start: every request meanwhile must be refused cleanly
                down = time.monotonic()
                cluster.pg_ctl("stop", "-m", "fast")
                if args.workers > 1:
                    # A worker dying meanwhile: uvicorn starts another, which must come up and
                    # answer 503 too (a failed start-up makes uvicorn stop the whole server).
                    time.sleep(0.5)
                    killed_worker = time.monotonic()
                    kill_a_worker(deployment)
                    deadline = time.monotonic() + 120
                    while not replacement_started(deployment) and time.monotonic() < deadline:
                        if deployment.server is None or deployment.server.poll() is not None:
                            break  # the whole server stopped: the check below says so
                        time.sleep(0.2)
                    figures["worker_replaced_during_outage"] = replacement_started(deployment)
                time.sleep(max(0.0, args.down - (time.monotonic() - down)))
                cluster.pg_ctl("start")
                up = time.monotonic()
                outages.append((down, up))
                figures["outage_seconds"] = [round(u - d, 2) for d, u in outages]
                time.sleep(max(args.seconds, args.recover + 2))
            finally:
                load.stop()
            server_alive = deployment.server is not None and deployment.server.poll() is None
            # Workers uvicorn replaced, the one killed here included (it replaces one that dies
            # or does not answer its health check within 5 s).
            figures["workers_replaced"] = len(workers_at_start - deployment.worker_pids())
            deployment.stop()
            figures["dv_serve_kept_running"] = server_alive
            samples = load.samples
            if killed_worker is not None:
                # Requests the killed worker had in hand died with it.
                samples = [
                    s
                    for s in samples
                    if not (
                        s.status is None
                        and s.ended >= killed_worker
                        and s.started <= killed_worker + 1.0
                    )
                ]
                figures["requests_cut_by_worker_kill"] = len(load.samples) - len(samples)
            figures.update(judge(samples, outages, bound=args.bound, recover=args.recover))
            figures.update(check_stored(load))
            audit = deployment.audit()
            figures["ledger_audit_ok"] = audit["ok"]
            figures["ok"] = (
                server_alive
                and figures.get("worker_replaced_during_outage", True)
                and figures["answers_not_2xx_or_503_problem"] == 0
                and figures["unanswered"] == 0
                and figures["slowest_request_seconds"] <= args.bound
                and figures["failures_after_recovery_bound"] == 0
                and all(
                    w is not None and w <= args.recover
                    for w in figures["first_write_after_up_seconds"]
                )
                and figures["status_503"] > 0  # the outage was seen, and answered cleanly
                and figures["stored_ok"]
                and figures["ledger_audit_ok"]
                and figures["events_acknowledged"] > 0
            )
            keep = not figures["ok"]
            if keep:
                figures["kept_for_inspection"] = str(deployment.data_dir)
        finally:
            deployment.destroy(keep_files=keep)
    report(figures)


if __name__ == "__main__":
    main()
