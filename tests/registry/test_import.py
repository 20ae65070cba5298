"""Importing the county's 确权 package: its own codes, households, contracts, and re-imports."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from digital_village.auth.actor import Actor
from digital_village.config import Settings
from digital_village.db import Database
from digital_village.ledger.log import Ledger
from digital_village.ledger.models import LedgerEntry
from digital_village.parcels import service as parcels
from digital_village.regions import service as regions
from digital_village.regions.models import Household, HouseholdMember
from digital_village.registry import store
from digital_village.registry.importer import ImportReport, import_package
from digital_village.registry.models import ContractParcel, LandContract
from digital_village.registry.package import read_package
from tests.registry.factory import Generated, Spec, generate, write

DAY_ONE = dt.date(2026, 3, 1)
DAY_TWO = dt.date(2027, 3, 1)


@pytest.fixture
def ledger(settings: Settings) -> Ledger:
    return Ledger.from_key_file(settings.effective_ledger_key_path, settings.ledger_origin)


@pytest.fixture
def county(db: Database) -> Database:
    """旌阳区 and its townships, nothing else: the registry a county starts from."""
    with db.transaction() as session:
        regions.seed_jingyang(session=session)
    return db


@pytest.fixture(scope="module")
def package() -> Generated:
    return generate(Spec())


def run(
    db: Database, ledger: Ledger, folder: Path, *, partial: bool = False, on: dt.date = DAY_ONE
) -> ImportReport:
    return import_package(
        database=db,
        ledger=ledger,
        package=read_package(folder),
        actor=Actor.operator(),
        partial=partial,
        valid_from=on,
    )


def entries(db: Database) -> int:
    with db.transaction(write=False) as session:
        return session.scalar(select(func.count()).select_from(LedgerEntry)) or 0


def test_a_package_imports_with_its_own_codes_households_and_contracts(
    county: Database, ledger: Ledger, package: Generated, tmp_path: Path
) -> None:
    folder = write(package, tmp_path / "pkg", cpg=False)  # GBK text, no .cpg: as counties send
    report = run(county, ledger, folder)
    assert report.rejected == [] and report.stored
    summary = report.as_dict()
    assert summary["parcels"]["created"] == 60 and summary["parcels"]["rejected"] == []
    assert summary["households"]["created"] == 20
    assert summary["contracts"]["created"] == 20
    first = package.dk[0]
    with county.transaction(write=False) as session:
        parcel = parcels.get_parcel(session=session, dkbm=first["DKBM"])
        assert parcel.registered_area_m2 == pytest.approx(first["SCMJ"])
        assert parcel.area_m2 == pytest.approx(first["SCMJ"], rel=0.006)
        assert parcel.land_use in ("0101", "0103") and parcel.name == first["DKMC"]
        holder = parcels.holder_at(session=session, dkbm=first["DKBM"], on=DAY_ONE)
        household = session.get(Household, holder.contractor_household_id)
        assert household is not None
        cbf = package.tables["CBF"][0]
        assert (household.cbfbm, household.name) == (cbf["CBFBM"], cbf["CBFMC"])
        assert household.id_number == cbf["CBFZJHM"] and household.region_code == cbf["CBFBM"][:14]
        members = session.scalars(
            select(HouseholdMember).where(HouseholdMember.household_id == household.id)
        ).all()
        assert len(members) == cbf["CBFCYSL"] and members[0].name == cbf["CBFMC"]
        contract = session.scalar(select(LandContract).where(LandContract.cbfbm == cbf["CBFBM"]))
        assert contract is not None and contract.cbhtbm == cbf["CBFBM"] + "J"
        assert (contract.method, contract.period_to) == ("110", dt.date(2028, 9, 30))
        assert contract.certificate == contract.cbhtbm
        links = session.scalars(
            select(ContractParcel).where(ContractParcel.contract_id == contract.id)
        ).all()
        assert [link.dkbm for link in links] == [row["DKBM"] for row in package.dk[:3]]
        kinds = dict(
            session.execute(select(LedgerEntry.kind, func.count()).group_by(LedgerEntry.kind)).all()
        )
        assert kinds["parcel.registered"] == 60 and kinds["household.registered"] == 20
        assert kinds["contract.registered"] == 20 and kinds["collective.registered"] == 4
        bodies = b" ".join(session.scalars(select(LedgerEntry.body))).decode()
        assert cbf["CBFZJHM"] not in bodies and cbf["CBFMC"] not in bodies  # never public


def test_an_unchanged_package_changes_nothing(
    county: Database, ledger: Ledger, package: Generated, tmp_path: Path
) -> None:
    folder = write(package, tmp_path / "pkg")
    run(county, ledger, folder)
    before = entries(county)
    again = run(county, ledger, folder, on=DAY_TWO)
    assert again.stored and again.rejected == []
    counts = again.as_dict()
    for kind in ("parcels", "households", "contracts", "collectives"):
        assert counts[kind]["created"] == counts[kind]["changed"] == counts[kind]["retired"] == 0
    assert counts["parcels"]["unchanged"] == 60
    assert entries(county) == before


def test_a_yearly_update_applies_dated_differences(
    county: Database, ledger: Ledger, package: Generated, tmp_path: Path
) -> None:
    run(county, ledger, write(package, tmp_path / "v1"))
    update = copy.deepcopy(package)
    moved = update.tables["CBDKXX"][0]  # the first parcel goes to the second household
    second = update.tables["CBF"][1]["CBFBM"]
    moved.update(CBFBM=second, CBHTBM=second + "J", CBJYQZBM=second + "J")
    update.dk[1]["TDLYLX"] = "013" if update.dk[1]["TDLYLX"] != "013" else "011"
    gone = update.dk.pop(5)  # the county retired a parcel
    update.shapes.pop(5)
    update.tables["CBDKXX"] = [r for r in update.tables["CBDKXX"] if r["DKBM"] != gone["DKBM"]]
    report = run(county, ledger, write(update, tmp_path / "v2"), on=DAY_TWO)
    assert report.rejected == []
    counts = report.as_dict()
    assert counts["parcels"]["retired"] == 1
    assert counts["parcels"]["changed"] == 2  # the moved parcel and the new land use
    assert counts["contracts"]["changed"] == 2  # the first household's and the second's
    with county.transaction(write=False) as session:
        dkbm = package.dk[0]["DKBM"]
        before = parcels.holder_at(session=session, dkbm=dkbm, on=DAY_ONE)
        after = parcels.holder_at(session=session, dkbm=dkbm, on=DAY_TWO)
        assert before.contractor_household_id != after.contractor_household_id
        household = session.get(Household, after.contractor_household_id)
        assert household is not None and household.cbfbm == second
        assert parcels.get_parcel(session=session, dkbm=package.dk[1]["DKBM"]).land_use == (
            "0103" if update.dk[1]["TDLYLX"] == "013" else "0101"
        )
        retired = parcels.get_parcel(session=session, dkbm=gone["DKBM"])
        assert retired.status.value == "retired"
        history = parcels.history(session=session, dkbm=dkbm)
        assert [h["valid_to"] for h in history["holdings"]] == [DAY_TWO.isoformat(), None]
    again = run(county, ledger, write(update, tmp_path / "v2-again"), on=DAY_TWO)
    assert again.as_dict()["parcels"]["changed"] == 0  # applied once


def test_an_imported_parcel_shows_its_household_and_registered_area(
    county: Database,
    ledger: Ledger,
    package: Generated,
    tmp_path: Path,
    client: TestClient,
) -> None:
    changed = copy.deepcopy(package)
    changed.dk[2]["SCMJ"] = round(changed.dk[2]["SCMJ"] * 1.05, 2)  # 5 % more than drawn
    run(county, ledger, write(changed, tmp_path / "pkg"))
    first, third = changed.dk[0], changed.dk[2]
    answer = client.get(f"/api/v1/parcels/{first['DKBM']}").json()["properties"]
    assert answer["dkbm"] == first["DKBM"]
    assert answer["registered_area_m2"] == first["SCMJ"]
    assert answer["area_m2"] == pytest.approx(first["SCMJ"], rel=0.006)
    assert answer["area_note"] is None
    household = changed.tables["CBF"][0]
    assert answer["contractor"]["cbfbm"] == household["CBFBM"]
    assert answer["contractor"]["name"] == household["CBFMC"][0] + "*" * (
        len(household["CBFMC"]) - 1
    )
    flagged = client.get(f"/api/v1/parcels/{third['DKBM']}").json()["properties"]
    difference = (flagged["area_m2"] - third["SCMJ"]) / third["SCMJ"]
    assert flagged["area_note"] == (
        f"registered area (SCMJ) {third['SCMJ']:.2f} m² and the computed "
        f"{flagged['area_m2']:.2f} m² differ by {difference:+.1%}"
    )
    assert difference < -0.04
    text = client.get(f"/api/v1/parcels/{first['DKBM']}").text
    assert household["CBFZJHM"] not in text and first["ZJRXM"] not in text


def test_an_imported_parcel_has_its_page_with_the_household_masked(
    county: Database, ledger: Ledger, package: Generated, tmp_path: Path, client: TestClient
) -> None:
    run(county, ledger, write(package, tmp_path / "pkg"))
    first = package.dk[0]
    page = client.get(f"/p/{first['DKBM']}", headers={"Accept": "text/html"})
    assert page.status_code == 200, page.text[:300]
    household = package.tables["CBF"][0]
    assert first["DKBM"] in page.text
    for secret in (household["CBFMC"], household["CBFZJHM"], household["LXDH"], first["ZJRXM"]):
        assert secret not in page.text
    svg = client.get(f"/api/v1/maps/{first['DKBM'][:12]}.svg")
    assert svg.status_code == 200 and first["DKBM"][-5:] in svg.text


def test_an_import_interrupted_while_storing_is_completed_by_running_it_again(
    county: Database,
    ledger: Ledger,
    package: Generated,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = write(package, tmp_path / "pkg")
    real = store.store_contracts

    def power_cut(*args: object, **kwargs: object) -> None:
        raise RuntimeError("power cut")

    monkeypatch.setattr(store, "store_contracts", power_cut)
    with pytest.raises(RuntimeError, match="power cut"):
        run(county, ledger, folder)
    with county.transaction(write=False) as session:
        assert session.scalar(select(func.count()).select_from(LandContract)) == 0
        assert session.scalar(select(func.count()).select_from(Household)) == 20
    monkeypatch.setattr(store, "store_contracts", real)
    again = run(county, ledger, folder).as_dict()
    assert again["parcels"]["created"] == 0 and again["parcels"]["unchanged"] == 60
    assert again["households"]["unchanged"] == 20
    assert again["contracts"]["created"] == 20
    with county.transaction(write=False) as session:
        assert session.scalar(select(func.count()).select_from(ContractParcel)) == 60
        holder = parcels.holder_at(session=session, dkbm=package.dk[0]["DKBM"], on=DAY_ONE)
        assert holder.contractor_household_id is not None
    assert run(county, ledger, folder).as_dict()["contracts"]["unchanged"] == 20
