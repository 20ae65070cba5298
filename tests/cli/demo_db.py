"""A database `dv demo` loaded, shared by the tests of one module, on each backend."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from digital_village.cli.main import app
from digital_village.demo import village_season
from digital_village.parcels import service as parcels

runner = CliRunner()


@dataclass(frozen=True)
class DemoDatabase:
    """Where it is (the environment `dv` reads) and the demo's season year."""

    env: dict[str, str]
    folder: Path
    year: int

    def dv(self, *args: str, columns: int = 80) -> tuple[int, str]:
        """Run `dv` on the demo database in a terminal ``columns`` wide."""
        env = {**self.env, "COLUMNS": str(columns)}
        saved = {key: os.environ.get(key) for key in [*env, "DV_DATABASE_URL"]}
        os.environ.pop("DV_DATABASE_URL", None)  # SQLite unless this demo names a server
        os.environ.update(env)
        try:
            result = runner.invoke(app, list(args), env=env)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        return result.exit_code, result.output


def demo_database(
    backend: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[DemoDatabase]:
    """Body of a module-scoped fixture: `dv demo --no-serve` into a fresh database."""
    folder = tmp_path_factory.mktemp("demo")
    env = {"DV_DATA_DIR": str(folder / "var"), "DV_LOG_FORMAT": "text"}
    url = None
    if backend == "postgres":
        server = request.getfixturevalue("postgres_server")
        url = server.create_database("dv_demo")
        env["DV_DATABASE_URL"] = url
    demo = DemoDatabase(env=env, folder=folder, year=village_season.seasons(parcels.today())[0])
    code, output = demo.dv("demo", "--no-serve")
    assert code == 0, output
    yield demo
    if url is not None:
        server.drop_database(url)
