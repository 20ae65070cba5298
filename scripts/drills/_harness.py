"""What the drills share: a throwaway deployment (database, data folder, sample village, tokens,
a device) and a `dv serve` with several workers that can be started, killed and restarted."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parents[2]
PUBLIC_BASE_URL = "https://trace.drill.example"
DV = [str(Path(sys.executable).with_name("dv"))]


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
    device_token: str = ""
    device_id: int = 0
    parcels: list[str] = field(default_factory=list)
    _created_db: str | None = None

    @classmethod
    def create(cls, server_url: str | None) -> Deployment:
        """A fresh database on the PostgreSQL server at ``server_url``, or SQLite when None."""
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
            url = f"sqlite:///{data_dir / 'dv.db'}"
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
        deployment._prepare()
        return deployment

    def dv(self, *args: str) -> str:
        result = subprocess.run(
            [*DV, *args], env=self.env, cwd=REPO, capture_output=True, text=True, timeout=600
        )
        if result.returncode != 0:
            raise RuntimeError(f"dv {' '.join(args)} failed: {result.stdout}{result.stderr}")
        return result.stdout

    def _prepare(self) -> None:
        self.dv("demo", "--no-serve")
        village = json.loads((REPO / "fixtures" / "sample-village.json").read_text("utf-8"))
        made = json.loads(
            self.dv(
                "tokens",
                "create",
                "--role",
                "manager",
                "--coop",
                village["cooperative"]["uscc"],
                "--json",
            )
        )
        self.manager_token = made["token"]
        # Parcels contracted by the cooperative's member households: where its manager may
        # record field work and install sensors.
        engine = create_engine(self.database_url)
        with engine.connect() as connection:
            candidates = list(
                connection.scalars(
                    text(
                        "SELECT p.dkbm FROM parcel p"
                        " JOIN parcel_holding h ON h.parcel_id = p.id AND h.valid_to IS NULL"
                        " JOIN household hh ON hh.id = h.contractor_household_id"
                        " JOIN cooperative c ON c.id = hh.cooperative_id"
                        " WHERE c.uscc = :uscc AND p.status = 'active' ORDER BY p.dkbm LIMIT 20"
                    ),
                    {"uscc": village["cooperative"]["uscc"]},
                )
            )
        engine.dispose()
        for dkbm in candidates:
            try:
                device = json.loads(
                    self.dv("devices", "add", "--parcel", dkbm, "--model", "generic", "--json")
                )
            except RuntimeError:
                continue
            self.device_id, self.device_token = int(device["device_id"]), device["token"]
            self.parcels.append(dkbm)
            if len(self.parcels) >= 3:
                break
        if not self.parcels:
            raise RuntimeError("no parcel of the sample cooperative took a device")

    def start(self, workers: int = 1) -> None:
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
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        log = (self.data_dir / "serve.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"dv serve did not answer /healthz within 180 s:\n{log}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
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

    def audit(self) -> dict[str, Any]:
        result = subprocess.run(
            [*DV, "ledger", "verify", "--json"],
            env=self.env,
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        report: dict[str, Any] = json.loads(result.stdout)
        report["exit_code"] = result.returncode
        return report

    def destroy(self) -> None:
        self.stop(signal.SIGKILL)
        if self._created_db:
            admin = make_url(self.database_url).set(drivername="postgresql", database="postgres")
            with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as c:
                c.execute(f'DROP DATABASE IF EXISTS "{self._created_db}" WITH (FORCE)')
