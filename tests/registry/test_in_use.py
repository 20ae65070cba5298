"""Parcels and households of an imported package in everyday use: a harvest is checked against
who holds the parcel on its day, as for parcels registered one by one."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from digital_village.auth.actor import Actor
from digital_village.auth.models import Role
from digital_village.db import Database
from digital_village.ledger.log import Ledger
from digital_village.regions import service as regions
from digital_village.regions.models import Household
from digital_village.tokens.service import issue_token
from digital_village.trace import builders, products
from tests.factories import make_uscc
from tests.registry.factory import Generated, Spec, generate, write
from tests.registry.test_import import county, ledger, run
from tests.trace.conftest import BASE, RAPESEED

__all__ = ["county", "ledger"]  # fixtures shared with test_import


@pytest.fixture(scope="module")
def package() -> Generated:
    return generate(Spec(villages=1, groups=1, households=2, parcels=2))


def test_a_harvest_on_an_imported_parcel_is_checked_against_its_household_on_the_day(
    county: Database, ledger: Ledger, package: Generated, tmp_path: Path, client: TestClient
) -> None:
    report = run(county, ledger, write(package, tmp_path / "pkg"))  # held from 2026-03-01
    assert report.stored and report.rejected == []
    own, neighbours = package.dk[0]["DKBM"], package.dk[2]["DKBM"]
    operator = Actor.operator()
    with county.transaction() as session:
        codes = [row["CBFBM"] for row in package.tables["CBF"]]
        households = {
            h.cbfbm: h.id
            for h in session.scalars(select(Household).where(Household.cbfbm.in_(codes)))
        }
        cooperative = regions.register_cooperative(
            session=session,
            uscc=make_uscc(7),
            name="民安油菜专业合作社",
            region_code=own[:12],
            actor=operator,
        )
        member = session.get_one(Household, households[codes[0]])
        member.cooperative_id = cooperative.id  # the first household joins the cooperative
        products.register_product(
            session=session,
            ledger=ledger,
            actor=operator,
            gtin=RAPESEED,
            name="油菜籽",
            category="rapeseed",
            cooperative_id=cooperative.id,
        )
        token = issue_token(
            session=session, role=Role.FARMER, actor=operator, household=str(households[codes[0]])
        ).token

    def harvest(dkbm: str, lot: str, day: dt.date) -> int:
        when = dt.datetime(day.year, day.month, day.day, 9, tzinfo=builders.CHINA)
        event = builders.harvest(
            gtin=RAPESEED, lot=lot, kilograms=300, dkbms=[dkbm], when=when, base_url=BASE
        )
        answer = client.post(
            "/api/v1/events", json=event, headers={"Authorization": f"Bearer {token}"}
        )
        return answer.status_code

    assert harvest(own, "RS-1", dt.date(2026, 5, 20)) == 201  # its own parcel, after the import
    assert harvest(neighbours, "RS-2", dt.date(2026, 5, 20)) == 403  # the other household's
    assert harvest(own, "RS-3", dt.date(2026, 2, 20)) == 403  # before the package's date
    # The public trace of the parcel names its household by 承包方编码, the name masked.
    traced = client.get(f"/api/v1/trace/parcels/{own}")
    (holder,) = [n for n in traced.json()["nodes"] if n["type"] == "household"]
    head = package.tables["CBF"][0]["CBFMC"]
    assert holder == {"type": "household", "id": codes[0], "name": head[0] + "**"}
    assert head not in traced.text
