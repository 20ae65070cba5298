"""What the drills share: a throwaway deployment (database, data folder, sample village, tokens,
a device) and a `dv serve` with several workers that can be started, killed and restarted."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import httpx
import psycopg
from sqlalchemy import text
from sqlalchemy.engine import make_url

from digital_village.auth.actor import Actor
from digital_village.auth.models import Role
from digital_village.config import Settings
from digital_village.db import Database, is_sqlite, make_single_use_engine
from digital_village.errors import DomainError
from digital_village.iot import devices
from digital_village.ledger.log import Ledger
from digital_village.tokens import service as tokens

REPO = Path(__file__).resolve().parents[2]
PUBLIC_BASE_URL = "https://trace.drill.example"
DV = [str(Path(sys.executable).with_name("dv"))]


def report(figures: dict[str, Any], *, exit_code: int | None = None) -> NoReturn:
    """Print a drill's figures, then one JSON line of them, and exit (1 when a check failed)."""
    for key, value in figures.items():
        print(f"{key:>36}: {value}")
    print(json.dumps(figures))
    sys.exit(exit_code if exit_code is not None else 0 if figures["ok"] else 1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Deployment:
    """A deployment on its own database and data folder."""

    database_url: str
    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    server: subprocess.Popen[bytes] | None = None
    port: int = 0
    manager_token: str = ""
    devices: list[tuple[int, str]] = field(default_factory=list)  # (device id, token)
    installed: dt.datetime | None = None  # when the devices were installed
    parcels: list[str] = field(default_factory=list)
    _created_db: str | None = None

    @property
    def device_id(self) -> int:
        """The first device's id."""
        return self.devices[0][0]

    @property
    def device_token(self) -> str:
        """The first device's token."""
        return self.devices[0][1]

    @classmethod
    def create(
        cls,
        server_url: str | None,
        *,
        sqlite_path: Path | None = None,
        installed_ago: dt.timedelta = dt.timedelta(hours=3),
    ) -> Deployment:
        """A fresh database on the PostgreSQL server at ``server_url``, or SQLite when None
        (in the data folder, or at ``sqlite_path``), with devices installed ``installed_ago``
        (the drills and load profiles send readings from then on)."""
        data_dir = Path(tempfile.mkdtemp(prefix="dv-drill-"))
        created = None
        if server_url:
            name = f"dv_drill_{uuid.uuid4().hex[:8]}"
            admin = make_url(server_url).set(drivername="postgresql", database="postgres")
            with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as c:
                c.execute(f'CREATE DATABASE "{name}"')
            url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
            created = name
        else:
            url = f"sqlite:///{sqlite_path or data_dir / 'dv.db'}"
        env = {
            **os.environ,
            "DV_DATABASE_URL": url,
            "DV_DATA_DIR": str(data_dir),
            "DV_LOG_LEVEL": "WARNING",
            "DV_PUBLIC_BASE_URL": PUBLIC_BASE_URL,
            "DV_RATE_LIMIT_PUBLIC_PER_MINUTE": "1000000",
            "DV_RATE_LIMIT_TOKEN_PER_MINUTE": "1000000",
        }
        deployment = cls(database_url=url, data_dir=data_dir, env=env, _created_db=created)
        deployment._prepare(installed_ago)
        return deployment

    def dv(self, *args: str) -> str:
        result = subprocess.run(
            [*DV, *args], env=self.env, cwd=REPO, capture_output=True, text=True, timeout=600
        )
        if result.returncode != 0:
            raise RuntimeError(f"dv {' '.join(args)} failed: {result.stdout}{result.stderr}")
        return result.stdout

    def _prepare(self, installed_ago: dt.timedelta) -> None:
        """The sample village (`dv demo`), then in this process (each `dv` command costs seconds
        of imports): a manager token of its cooperative and a device on each of three parcels
        of its members."""
        self.dv("demo", "--no-serve")
        village = json.loads((REPO / "fixtures" / "sample-village.json").read_text("utf-8"))
        uscc = village["cooperative"]["uscc"]
        settings = Settings(data_dir=self.data_dir, database_url=self.database_url)
        ledger = Ledger.from_key_file(settings.effective_ledger_key_path, settings.ledger_origin)
        engine = make_single_use_engine(self.database_url)
        operator = Actor.operator()
        installed = self.installed = dt.datetime.now(dt.UTC) - installed_ago
        with Database(engine).transaction() as session:
            issued = tokens.issue_token(
                session=session, role=Role.MANAGER, actor=operator, cooperative=uscc, label="drill"
            )
            self.manager_token = issued.token
            # Parcels contracted by the cooperative's member households: where its manager may
            # record field work and install sensors.
            candidates = list(
                session.scalars(
                    text(
                        "SELECT p.dkbm FROM parcel p"
                        " JOIN parcel_holding h ON h.parcel_id = p.id AND h.valid_to IS NULL"
                        " JOIN household hh ON hh.id = h.contractor_household_id"
                        " JOIN cooperative c ON c.id = hh.cooperative_id"
                        " WHERE c.uscc = :uscc AND p.status = 'active' ORDER BY p.dkbm LIMIT 20"
                    ),
                    {"uscc": uscc},
                )
            )
            for dkbm in candidates:
                try:
                    with session.begin_nested():
                        made = devices.register_device(
                            session=session,
                            ledger=ledger,
                            actor=operator,
                            model="generic",
                            parcel=dkbm,
                            cooperative=uscc,
                            installed_at=installed,
                        )
                except DomainError:
                    continue
                self.devices.append((made.device.id, made.token))
                self.parcels.append(dkbm)
                if len(self.parcels) >= 3:
                    break
        engine.dispose()
        if not self.parcels:
            raise RuntimeError("no parcel of the sample cooperative took a device")

    def start(self, workers: int = 1) -> float:
        """Start `dv serve` and wait until /healthz answers 200; the seconds that took."""
        started = time.monotonic()
        self.port = self.port or free_port()
        self.server = subprocess.Popen(
            [*DV, "serve", "--port", str(self.port), "--workers", str(workers)],
            env=self.env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=(self.data_dir / "serve.log").open("ab"),
            start_new_session=True,
        )
        deadline = time.monotonic() + 180  # three workers importing geopandas on a busy machine
        last = "no answer"
        while time.monotonic() < deadline and self.server.poll() is None:
            try:
                response = httpx.get(f"{self.base}/healthz", timeout=2)
                if response.status_code == 200:
                    return time.monotonic() - started
                last = f"{response.status_code} {response.text[:500]}"
            except httpx.HTTPError as error:
                last = repr(error)
            time.sleep(0.2)
        log = (self.data_dir / "serve.log").read_text(errors="replace")[-2000:]
        exited = self.server.poll()
        state = f"exited with {exited}" if exited is not None else "still running"
        raise RuntimeError(
            f"dv serve ({state}) did not answer /healthz with 200 within 180 s; last: {last}\n{log}"
        )

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Signal the server's whole process group (uvicorn's supervisor and its workers)."""
        if self.server is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.server.pid, sig)
        self.server.wait(timeout=30)
        self.server = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.base + path, timeout=30, **kwargs)

    def worker_pids(self) -> set[int]:
        """The server's worker processes (with --workers > 1; else the server itself)."""
        if self.server is None or self.server.poll() is not None:
            return set()
        pid = self.server.pid
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            return set()
        workers = set()
        for child in children:
            try:
                command = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            if b"resource_tracker" not in command:  # multiprocessing's helper, not a worker
                workers.add(int(child))
        return workers or {pid}

    def kill(self) -> None:
        """SIGKILL the server and every worker of it: no shutdown code runs."""
        self.stop(signal.SIGKILL)

    def audit(self) -> dict[str, Any]:
        """`dv ledger verify --json`, with its exit code under "exit_code"; "ok" only when the
        report says so and the command exited 0."""
        result = subprocess.run(
            [*DV, "ledger", "verify", "--json"],
            env=self.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=600,
        )
        try:
            report: dict[str, Any] = json.loads(result.stdout)
        except json.JSONDecodeError:
            report = {"ok": False, "problems": [(result.stdout + result.stderr)[-2000:]]}
        report["exit_code"] = result.returncode
        report["ok"] = bool(report.get("ok")) and result.returncode == 0
        return report

    def integrity(self) -> str:
        """SQLite's PRAGMA integrity_check ("ok" when sound); "n/a" on PostgreSQL."""
        if not is_sqlite(self.database_url):
            return "n/a"
        engine = make_single_use_engine(self.database_url)
        with engine.connect() as connection:
            rows = [str(row[0]) for row in connection.execute(text("PRAGMA integrity_check"))]
        engine.dispose()
        return "; ".join(rows)[:500]

    def destroy(self, *, keep_files: bool = False) -> None:
        """Kill the server, drop the database; remove the data folder unless ``keep_files``."""
        self.stop(signal.SIGKILL)
        if not keep_files:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        if self._created_db:
            admin = make_url(self.database_url).set(drivername="postgresql", database="postgres")
            with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as c:
                c.execute(f'DROP DATABASE IF EXISTS "{self._created_db}" WITH (FORCE)')
