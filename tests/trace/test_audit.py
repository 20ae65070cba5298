"""Every ledger-bound table against its entries: the audit and the per-record checks name the
first row that differs, and a changed column type or encoding is a finding, never a traceback.

A small season is recorded through the real services; each test edits one row with plain SQL,
as an insider with a database shell could, then asks `dv ledger verify`'s audit, the record's
own check route, or both. Runs on SQLite and, with DV_TEST_POSTGRES_URL, on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from digital_village import audit
from digital_village.app import create_app
from digital_village.auth.actor import Actor
from digital_village.config import Settings
from digital_village.db import Database
from digital_village.demo import oil_season as seasons
from digital_village.ledger.audit import Problem
from digital_village.trace import product_changes
from tests.ledger.test_tamper import Recorded, recorded  # noqa: F401  (the fixture)


@pytest.fixture
def api(recorded: Recorded, settings: Settings) -> Iterator[TestClient]:  # noqa: F811
    with TestClient(create_app(settings, database=recorded.db)) as client:
        yield client


def sql(db: Database, statement: str, **params: object) -> None:
    with db.transaction() as session:
        session.execute(text(statement), params)


def named(report: audit.AuditReport, subject: str) -> list[Problem]:
    return [problem for problem in report.problems if problem.subject == subject]


def certificate_number(db: Database) -> str:
    with db.session() as session:
        return str(session.execute(text("SELECT number FROM trace_certificate")).scalar_one())


def test_an_honest_season_binds_every_row(recorded: Recorded, api: TestClient) -> None:  # noqa: F811
    report = recorded.audit()
    assert report.ok, report.problems
    counts = report.as_dict()
    assert counts["products"] == 3 and counts["lots"] == 3 and counts["certificates"] == 1
    assert counts["items"] == 2
    assert counts["harvested_parcels"] == 2 and counts["trace_events"] >= 12
    assert counts["recorded_before_effects"] == 0
    assert counts["parcel_holdings"] == 2 and counts["parcel_attributes"] >= 2
    season = recorded.season
    lot = api.get(f"/api/v1/lots/{seasons.BOTTLE}/{season.bottle_lot}/verify").json()
    assert lot == {"gtin": seasons.BOTTLE, "lot": season.bottle_lot, "ok": True, "problems": []}
    number = certificate_number(recorded.db)
    assert api.get(f"/api/v1/certificates/{number}/verify").json()["ok"] is True
    parcel = api.get(f"/api/v1/parcels/{season.parcels[0]}/verify").json()
    assert parcel["ok"] is True and parcel["problems"] == []


def test_an_edited_certificate_origin_is_named_everywhere(
    recorded: Recorded,  # noqa: F811
    api: TestClient,
) -> None:
    number = certificate_number(recorded.db)
    sql(recorded.db, "UPDATE trace_certificate SET origin = '黑龙江五常'")
    (problem,) = named(recorded.audit(), f"certificate:{number}")
    assert (
        "origin is '黑龙江五常' in its row but '旌阳区孝泉镇民安村' in ledger entry" in problem.what
    )
    check = api.get(f"/api/v1/certificates/{number}/verify").json()
    assert check["ok"] is False and check["problems"][0]["index"] == problem.index
    season = recorded.season
    lot = api.get(f"/api/v1/lots/{seasons.BOTTLE}/{season.bottle_lot}/verify").json()
    assert [p["subject"] for p in lot["problems"]] == [f"certificate:{number}"]


@pytest.mark.parametrize(
    ("statement", "subject", "said"),
    [
        (
            f"UPDATE trace_product SET name = '五常大米' WHERE gtin = '{seasons.BOTTLE}'",
            f"product:{seasons.BOTTLE}",
            "name is '五常大米' in its row",
        ),
        (
            f"UPDATE trace_lot SET produced = 600 WHERE gtin = '{seasons.BOTTLE}'",
            "lot",
            "produced is 600.0 in its row",
        ),
        (
            "UPDATE trace_event SET event_time = '2020-01-01 00:00:00' WHERE biz_step LIKE "
            "'%inspecting'",
            "event",
            "eventTime is",
        ),
    ],
)
def test_an_edited_row_of_the_lot_is_named_by_the_audit_and_the_lot_check(
    recorded: Recorded,  # noqa: F811
    api: TestClient,
    statement: str,
    subject: str,
    said: str,
) -> None:
    sql(recorded.db, statement)
    report = recorded.audit()
    assert len(report.problems) == 1, report.problems
    (problem,) = report.problems
    assert problem.subject is not None and problem.subject.startswith(subject)
    assert said in problem.what and "row edited" in problem.what
    season = recorded.season
    lot = api.get(f"/api/v1/lots/{seasons.BOTTLE}/{season.bottle_lot}/verify").json()
    assert lot["ok"] is False
    assert lot["problems"][0] == {
        "index": problem.index,
        "what": problem.what,
        "subject": problem.subject,
    }


def test_an_edited_harvest_holder_is_named(recorded: Recorded, api: TestClient) -> None:  # noqa: F811
    with recorded.db.session() as session:
        other = session.execute(text("SELECT max(id) FROM household")).scalar_one()
    sql(recorded.db, "UPDATE trace_lot_parcel SET household_id = :h", h=other)
    report = recorded.audit()
    assert report.problems and all(p.subject.startswith("harvest:") for p in report.problems)  # type: ignore[union-attr]
    assert "contractor is" in report.problems[0].what
    season = recorded.season
    lot = api.get(f"/api/v1/lots/{seasons.RAPESEED}/{season.rapeseed_lot}/verify").json()
    assert lot["ok"] is False and lot["problems"][0]["subject"].startswith("harvest:")


@pytest.mark.parametrize(
    ("statement", "said"),
    [
        ("UPDATE parcel SET land_use = '0101' WHERE dkbm = :d", "stored land use '0101'"),
        ("UPDATE parcel SET area_mu = 9.5 WHERE dkbm = :d", "stored area (亩) 9.5"),
        ("UPDATE parcel SET area_ha = 9.5 WHERE dkbm = :d", "stored area (ha) 9.5"),
        (
            "UPDATE parcel_attribute SET value = '0101' WHERE name = 'land_use' AND parcel_id = "
            "(SELECT id FROM parcel WHERE dkbm = :d)",
            "land_use period",
        ),
        (
            "UPDATE parcel_holding SET contractor_household_id = (SELECT max(id) FROM household)"
            " WHERE parcel_id = (SELECT id FROM parcel WHERE dkbm = :d)",
            "承包方 is",
        ),
        (
            "DELETE FROM parcel_holding WHERE parcel_id = (SELECT id FROM parcel WHERE dkbm = :d)",
            "have no holding row (row removed)",
        ),
    ],
)
def test_an_edited_parcel_row_is_named_by_the_audit_and_the_parcel_check(
    recorded: Recorded,  # noqa: F811
    api: TestClient,
    statement: str,
    said: str,
) -> None:
    dkbm = recorded.season.parcels[0]
    sql(recorded.db, statement, d=dkbm)
    problems = named(recorded.audit(), f"parcel:{dkbm}")
    assert problems and said in problems[0].what, problems
    check = api.get(f"/api/v1/parcels/{dkbm}/verify").json()
    assert check["ok"] is False and said in check["problem"]
    assert check["problems"][0]["index"] == problems[0].index


def test_a_removed_lot_row_is_named(recorded: Recorded) -> None:  # noqa: F811
    with recorded.db.session() as session:
        lot_id = session.execute(
            text("SELECT id FROM trace_lot WHERE gtin = :g"), {"g": seasons.BOTTLE}
        ).scalar_one()
    with recorded.db.transaction() as session:
        for table in ("trace_containment", "trace_unit", "trace_certificate"):
            column = "unit_id IN (SELECT id FROM trace_unit WHERE lot_id = :l)"
            where = column if table == "trace_containment" else "lot_id = :l"
            session.execute(text(f"DELETE FROM {table} WHERE {where}"), {"l": lot_id})
        for table in ("trace_lot_flow", "trace_event_lot", "trace_lot_edge", "trace_lot_parcel"):
            if table == "trace_lot_edge":
                where = "input_lot_id = :l OR output_lot_id = :l"
            else:
                where = "lot_id = :l"
            session.execute(text(f"DELETE FROM {table} WHERE {where}"), {"l": lot_id})
        session.execute(text("DELETE FROM trace_lot WHERE id = :l"), {"l": lot_id})
    subjects = {p.subject for p in recorded.audit().problems}
    assert f"lot:{seasons.BOTTLE}/{recorded.season.bottle_lot}" in subjects


def test_a_stored_entry_turned_to_text_is_a_finding_at_its_index(
    recorded: Recorded,  # noqa: F811
) -> None:
    with recorded.db.session() as session:
        dialect = session.get_bind().dialect.name
        seq = session.execute(text("SELECT min(ledger_seq) FROM trace_certificate")).scalar_one()
    if dialect == "postgresql":
        sql(
            recorded.db,
            "ALTER TABLE ledger_entry ALTER COLUMN body TYPE text USING convert_from(body, 'UTF8')",
        )
        first = 0
    else:
        sql(recorded.db, "UPDATE ledger_entry SET body = CAST(body AS TEXT) WHERE seq = :s", s=seq)
        first = seq
    report = recorded.audit()
    assert report.problems[0].index == first
    assert "stored as str" in report.problems[0].what
    assert "column's type or encoding was changed" in report.problems[0].what


@pytest.mark.parametrize(
    ("statement", "subject"),
    [
        ("UPDATE parcel SET area_m2 = 'abc' WHERE dkbm = :d", "parcel"),
        ("UPDATE parcel_holding SET valid_from = 'garbage'", "parcel"),
        ("UPDATE trace_lot SET produced_at = 'x', produced = 'many'", "lot"),
        ("UPDATE trace_certificate SET issued_on = 'soon', basis = '{'", "certificate"),
    ],
)
def test_a_value_of_another_type_is_a_finding_not_a_traceback(
    recorded: Recorded,  # noqa: F811
    api: TestClient,
    statement: str,
    subject: str,
) -> None:
    with recorded.db.session() as session:
        if session.get_bind().dialect.name == "postgresql":
            pytest.skip("PostgreSQL keeps every column's type: only SQLite lets a value change it")
    sql(recorded.db, statement, d=recorded.season.parcels[0])
    report = recorded.audit()
    assert any(p.subject and p.subject.startswith(subject) for p in report.problems)
    season = recorded.season
    assert api.get(f"/api/v1/lots/{seasons.BOTTLE}/{season.bottle_lot}/verify").status_code == 200
    assert api.get(f"/api/v1/parcels/{season.parcels[0]}/verify").status_code == 200


def test_the_record_checks_answer_404_for_unknown_records(api: TestClient) -> None:
    assert api.get(f"/api/v1/lots/{seasons.BOTTLE}/NOPE/verify").status_code == 404
    assert api.get("/api/v1/certificates/NOPE/verify").status_code == 404
    assert api.get("/api/v1/parcels/5106031012010199999/verify").status_code == 404


def test_an_item_moved_to_another_lot_is_named(recorded: Recorded, api: TestClient) -> None:  # noqa: F811
    season = recorded.season
    with recorded.db.session() as session:
        other = session.execute(
            text("SELECT id FROM trace_lot WHERE gtin = :g"), {"g": seasons.RAPESEED}
        ).scalar_one()
    serial = season.serials[0]
    sql(recorded.db, "UPDATE trace_unit SET lot_id = :l WHERE serial = :s", l=other, s=serial)
    (problem,) = recorded.audit().problems
    assert problem.subject == f"item:{seasons.BOTTLE}/{serial}"
    assert f"but '{seasons.BOTTLE}/{season.bottle_lot}' in ledger entry" in problem.what
    lot = api.get(f"/api/v1/lots/{seasons.RAPESEED}/{season.rapeseed_lot}/verify").json()
    assert lot["problems"][0]["subject"] == problem.subject


def change_bottle(recorded: Recorded) -> tuple[int, int]:  # noqa: F811
    """The bottle renamed through the service: (its registration's index, its change's)."""
    with recorded.db.transaction() as session:
        registered = session.execute(
            text("SELECT ledger_seq FROM trace_product WHERE gtin = :g"), {"g": seasons.BOTTLE}
        ).scalar_one()
        changed = product_changes.change_product(
            session=session,
            ledger=recorded.ledger,
            actor=Actor.operator(),
            gtin=seasons.BOTTLE,
            name="天府菜油 4.5 L",
            net_quantity=4.5,
            net_unit="LTR",
        )
        return int(registered), changed.ledger_seq


@pytest.mark.parametrize(
    ("statement", "said"),
    [
        ("UPDATE trace_product SET name = '五常大米' WHERE gtin = :g", "name is '五常大米'"),
        (
            "UPDATE trace_product SET name = '天府菜油 5 L', net_quantity = 5, ledger_seq = :r "
            "WHERE gtin = :g",
            "its row names ledger entry {registered} but the newest entry of its chain "
            "product:{gtin} is {changed}",
        ),
    ],
)
def test_a_changed_product_is_bound_to_the_newest_entry_of_its_chain(
    recorded: Recorded,  # noqa: F811
    api: TestClient,
    statement: str,
    said: str,
) -> None:
    registered, changed = change_bottle(recorded)
    report = recorded.audit()
    assert report.ok, report.problems
    season = recorded.season
    lot_url = f"/api/v1/lots/{seasons.BOTTLE}/{season.bottle_lot}/verify"
    assert api.get(lot_url).json()["ok"] is True
    # An insider edits the row, or points it back at the registration (undoing the change).
    sql(recorded.db, statement, g=seasons.BOTTLE, r=registered)
    (problem,) = recorded.audit().problems
    assert problem.subject == f"product:{seasons.BOTTLE}" and problem.index == changed
    assert said.format(registered=registered, gtin=seasons.BOTTLE, changed=changed) in problem.what
    assert "row edited" in problem.what
    lot = api.get(lot_url).json()
    assert lot["ok"] is False
    assert lot["problems"][0] == {
        "index": problem.index,
        "what": problem.what,
        "subject": problem.subject,
    }
