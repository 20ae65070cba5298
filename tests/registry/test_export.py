"""`dv registry export` writes the county's package; importing it into an empty registry gives
the same records."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from digital_village.cli.main import app
from digital_village.config import Settings
from digital_village.db import Database
from digital_village.parcels.models import Parcel, ParcelHolding
from digital_village.regions.models import Household, HouseholdMember
from digital_village.registry import nyt2539
from digital_village.registry.models import ContractParcel, LandContract
from digital_village.registry.package import read_package
from tests.registry.factory import Spec, generate, write

runner = CliRunner()


def dv(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def records() -> dict[str, Any]:
    """What a registry holds, in a form two registries can be compared by."""
    database = Database.from_url(Settings().effective_database_url)
    try:
        with database.transaction(write=False) as session:
            holders = dict(
                session.execute(
                    select(Parcel.dkbm, Household.cbfbm)
                    .join(ParcelHolding, ParcelHolding.parcel_id == Parcel.id)
                    .join(Household, Household.id == ParcelHolding.contractor_household_id)
                    .where(ParcelHolding.valid_to.is_(None))
                ).all()
            )
            parcels = [
                (
                    p.dkbm,
                    round(p.area_m2, 2),
                    p.land_use,
                    p.name,
                    p.registered_area_m2,
                    p.fingerprint,
                )
                for p in session.scalars(select(Parcel).order_by(Parcel.dkbm))
            ]
            households = [
                (h.cbfbm, h.name, h.id_number, h.kind, h.registry_record)
                for h in session.scalars(select(Household).order_by(Household.cbfbm))
            ]
            members = sorted(
                (m.name, m.id_number, m.relation) for m in session.scalars(select(HouseholdMember))
            )
            contracts = [
                (c.cbhtbm, c.cbfbm, c.method, c.period_to, c.area_m2, c.certificate)
                for c in session.scalars(select(LandContract).order_by(LandContract.cbhtbm))
            ]
            links = sorted(
                (link.dkbm, link.area_m2, link.acquired_by)
                for link in session.scalars(select(ContractParcel))
            )
    finally:
        database.dispose()
    return {
        "parcels": parcels,
        "holders": holders,
        "households": households,
        "members": members,
        "contracts": contracts,
        "links": links,
    }


def fresh_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str, request: pytest.FixtureRequest
) -> None:
    """Point `dv` at a second, empty data folder and database."""
    monkeypatch.setenv("DV_DATA_DIR", str(tmp_path / "second"))
    if backend == "postgres":
        server = request.getfixturevalue("postgres_server")
        url = server.create_database("dv_cli_second")
        monkeypatch.setenv("DV_DATABASE_URL", url)
        request.addfinalizer(lambda: server.drop_database(url))
    assert dv("init")[0] == 0


def test_export_then_import_into_an_empty_registry_gives_the_same_records(
    cli_env: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    backend: str,
    request: pytest.FixtureRequest,
) -> None:
    assert dv("init")[0] == 0
    package = write(generate(Spec(villages=2, groups=1, households=4, parcels=3)), tmp_path / "p")
    code, output = dv("registry", "import", str(package), "--json")
    assert code == 0, output
    before = records()
    out = tmp_path / "export.zip"
    code, output = dv("registry", "export", "--out", str(out))
    assert code == 0, output
    assert "DK 24" in output and "CBF 8" in output
    with zipfile.ZipFile(out) as archive:
        names = set(archive.namelist())
    assert {"DK.shp", "DK.prj", "DK.cpg", "DK.dbf", "CBF.dbf", "CBF.csv", "CBDKXX.dbf"} <= names
    read = read_package(out)
    assert read.crs == "EPSG:4544"
    dk = {f.record["DKBM"]: f.record for f in read.features}
    first = dk[before["parcels"][0][0]]
    assert set(first) == {f.name for f in nyt2539.DK_FIELDS} and first["ZJRXM"]
    code, output = dv(
        "registry", "export", "--fbfbm", "51060310120101", "--out", str(tmp_path / "one")
    )
    assert code == 0 and "DK 12" in output
    fresh_registry(tmp_path, monkeypatch, backend, request)
    code, output = dv("registry", "import", str(out), "--json")
    assert code == 0, output
    assert json.loads(output)["parcels"]["created"] == 24
    assert records() == before
