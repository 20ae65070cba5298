"""A package that brings a resurveyed shape under the same DKBM: applied as a dated change,
the old shape kept in history, and the audit, the parcel's check route and its page follow
the newest shape's entry."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import orjson
import pytest
import shapely
from fastapi.testclient import TestClient
from shapely.affinity import scale, translate
from sqlalchemy import select, text, update

from digital_village import audit
from digital_village.db import Database
from digital_village.ledger.log import Ledger
from digital_village.ledger.models import LedgerEntry
from digital_village.parcels import service as parcels
from digital_village.parcels.models import Parcel, ParcelGeometry
from tests.registry.factory import Generated, write
from tests.registry.test_import import DAY_ONE, DAY_TWO, county, ledger, package, run
from tests.web.facts_check import check_page, failed

__all__ = ["county", "ledger", "package"]


@pytest.fixture
def resurveyed(
    county: Database, ledger: Ledger, package: Generated, tmp_path: Path
) -> tuple[str, str]:
    """Package v1 imported, then v2 whose first parcel is 5 % wider: (its DKBM, old sha256)."""
    run(county, ledger, write(package, tmp_path / "v1"))
    dkbm = package.dk[0]["DKBM"]
    with county.transaction(write=False) as session:
        old = parcels.get_parcel(session=session, dkbm=dkbm).geometry_sha256
    wider = copy.deepcopy(package)
    wider.shapes[0] = scale(wider.shapes[0], xfact=1.05, yfact=1.0)
    report = run(county, ledger, write(wider, tmp_path / "v2"), on=DAY_TWO)
    assert report.stored and report.rejected == [], report.rejected
    assert report.as_dict()["parcels"]["changed"] == 1
    return dkbm, old


def audit_problems(db: Database, ledger: Ledger) -> list[str]:
    with db.session() as session:
        return [p.what for p in audit.audit(session, origin=ledger.origin).problems]


def test_a_resurvey_is_a_dated_change_with_the_old_shape_kept(
    county: Database,
    ledger: Ledger,
    package: Generated,
    resurveyed: tuple[str, str],
    client: TestClient,
    tmp_path: Path,
) -> None:
    dkbm, old_sha = resurveyed
    with county.session() as session:
        parcel = parcels.get_parcel(session=session, dkbm=dkbm)
        entry = session.scalars(select(LedgerEntry).where(LedgerEntry.seq == parcel.last_seq)).one()
        kept = session.scalars(select(ParcelGeometry)).all()
        session.expunge_all()
    data = orjson.loads(entry.body)["data"]
    assert entry.kind == "parcel.changed" and entry.chain_key == f"parcel:{dkbm}"
    assert data["geometry_sha256"] == hashlib.sha256(parcel.geometry_wkb).hexdigest() != old_sha
    assert data["valid_from"] == DAY_TWO.isoformat() and data["fbfbm"] == dkbm[:14]
    assert data["area_mu"] == round(parcel.area_mu, 4)
    assert [(k.geometry_sha256, k.valid_from, k.valid_to) for k in kept] == [
        (old_sha, DAY_ONE, DAY_TWO)
    ]
    # The new shape's area, 5 % more than the old one.
    assert parcel.area_m2 == pytest.approx(kept[0].area_m2 * 1.05, rel=1e-3)

    shapes = client.get(f"/api/v1/parcels/{dkbm}/history").json()["shapes"]
    assert [(s["geometry_sha256"], s["valid_from"], s["valid_to"]) for s in shapes] == [
        (old_sha, DAY_ONE.isoformat(), DAY_TWO.isoformat()),
        (parcel.geometry_sha256, DAY_TWO.isoformat(), None),
    ]
    assert shapes[1]["ledger_seq"] == entry.seq
    old_shape = shapely.geometry.shape(shapes[0]["geometry"])
    assert hashlib.sha256(shapely.to_wkb(old_shape, byte_order=1)).hexdigest() == old_sha
    feature = client.get(f"/api/v1/parcels/{dkbm}").json()
    assert feature["properties"]["area_m2"] == round(parcel.area_m2, 2)
    assert client.get(f"/api/v1/parcels/{dkbm}/verify").json() == {
        "dkbm": dkbm,
        "ok": True,
        "problem": None,
        "problems": [],
    }
    assert audit_problems(county, ledger) == []

    # The same package again changes nothing.
    wider = copy.deepcopy(package)
    wider.shapes[0] = scale(wider.shapes[0], xfact=1.05, yfact=1.0)
    again = run(county, ledger, write(wider, tmp_path / "v2-again"), on=DAY_TWO).as_dict()
    assert again["parcels"]["changed"] == 0 and again["parcels"]["created"] == 0


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        # The new shape replaced by the old one (which the registration's hash still matches).
        (
            "UPDATE parcel SET geometry_wkb = (SELECT geometry_wkb FROM parcel_geometry), "
            "geometry_sha256 = (SELECT geometry_sha256 FROM parcel_geometry) WHERE dkbm = :dkbm",
            "is not the one recorded by the resurvey in ledger entry",
        ),
        ("UPDATE parcel SET area_mu = area_mu + 1 WHERE dkbm = :dkbm", "stored area (亩)"),
        ("UPDATE parcel_geometry SET valid_to = '2028-01-01'", "valid_to"),
        ("UPDATE parcel_geometry SET area_m2 = area_m2 + 5", "area_m2"),
        ("DELETE FROM parcel_geometry", "is not kept in history (row removed)"),
    ],
)
def test_the_audit_and_the_check_route_name_an_edit_of_either_shape(
    county: Database,
    ledger: Ledger,
    resurveyed: tuple[str, str],
    client: TestClient,
    edit: str,
    named: str,
) -> None:
    dkbm, _ = resurveyed
    with county.transaction() as session:
        session.execute(text(edit), {"dkbm": dkbm})
    problems = audit_problems(county, ledger)
    assert problems and named in problems[0], problems
    answer = client.get(f"/api/v1/parcels/{dkbm}/verify").json()
    assert not answer["ok"] and named in answer["problem"]


def test_the_kept_shape_edited_is_named_by_its_registration(
    county: Database, ledger: Ledger, resurveyed: tuple[str, str]
) -> None:
    dkbm, _ = resurveyed
    with county.transaction() as session:
        wkb = session.scalars(select(ParcelGeometry.geometry_wkb)).one()
        moved = shapely.to_wkb(translate(shapely.from_wkb(wkb), 0.0001), byte_order=1)
        session.execute(update(ParcelGeometry).values(geometry_wkb=moved))
        registered = session.scalars(
            select(LedgerEntry.seq).where(
                LedgerEntry.chain_key == f"parcel:{dkbm}", LedgerEntry.kind == "parcel.registered"
            )
        ).one()
    problems = audit_problems(county, ledger)
    assert len(problems) == 1 and f"ledger entry {registered}" in problems[0], problems


def test_the_parcel_page_claims_the_new_shape_and_area_against_the_resurvey(
    county: Database,
    ledger: Ledger,
    resurveyed: tuple[str, str],
    client: TestClient,
) -> None:
    dkbm, _ = resurveyed
    html = client.get(f"/p/{dkbm}", headers={"Accept": "text/html"}).text
    with county.session() as session:
        parcel = session.scalars(select(Parcel).where(Parcel.dkbm == dkbm)).one()
        session.expunge_all()
    facts = check_page(client, html, ledger.vkey)
    assert failed(facts) == []
    shape_facts = [f for f in facts if "/data/geometry_sha256" in f.claims]
    assert [f.index for f in shape_facts] == [parcel.last_seq]
    assert [f.index for f in facts if "/data/area_mu" in f.claims] == [parcel.last_seq]
    assert f"{parcel.area_mu:.2f}" in html


def test_a_resurveyed_shape_that_overlaps_a_neighbour_is_refused_by_name(
    county: Database, ledger: Ledger, package: Generated, tmp_path: Path
) -> None:
    run(county, ledger, write(package, tmp_path / "v1"))
    onto = copy.deepcopy(package)
    onto.shapes[0] = translate(onto.shapes[0], 15.0)  # half onto the next field
    report = run(county, ledger, write(onto, tmp_path / "v2"), on=DAY_TWO)
    assert not report.stored
    dk = [r for r in report.rejected if r.table == "DK"]
    assert [r.key for r in dk] == [package.dk[0]["DKBM"]]
    assert "overlaps parcel " + package.dk[1]["DKBM"] in dk[0].reason
