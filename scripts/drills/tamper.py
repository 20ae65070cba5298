"""Drill: rows edited directly in the database, and an old checkpoint served as current.

On a throwaway deployment (the sample village's season: parcels, EPCIS events, sealed days of
soil readings), behind the application's back with plain SQL:

- entry_bytes: the bytes of a harvest event's ledger entry are changed;
- sealed_reading: one soil reading inside a day that was sealed is changed;
- parcel_geometry: the parcel a sealed EPCIS event names as its bizLocation is moved 30 m,
  with its hash column and bounding box rewritten to match;
- parcel_geom (PostgreSQL): only the PostGIS column of another such parcel is moved;
- certificate_origin, product_name, lot_quantity: what a bottle's page shows of its
  承诺达标合格证, product and lot, edited in their rows;
- parcel_land_use, parcel_area: another such parcel's land use and area in 亩;
- entry_column_type (SQLite): an entry's bytes stored as text instead of a blob;

then `dv ledger verify` must name each (the entry's index, the parcel and day of the seal, the
parcel, the certificate, product or lot and the field) without a traceback, and on the running
server the per-record checks (/api/v1/certificates/{number}/verify, /lots/{gtin}/{lot}/verify,
/parcels/{dkbm}/verify) must answer "not ok" for the edited records. Then the newest
checkpoints are deleted and new ones held back (the server's publisher would sign the log's
size again at once), so the server serves an old signed checkpoint as current:

- checkpoint_replay_audit: `dv ledger verify` names it;
- checkpoint_replay_monitor: `dv ledger monitor` that had seen the newest checkpoint alerts;
- checkpoint_replay_first_look: `dv ledger monitor` with no state alerts on its first look.

    python scripts/drills/tamper.py [--postgres URL]

Prints each case and "detected N of M"; the last line is one JSON object. Exit 1 if any case
went undetected (or the untouched deployment failed its audit).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import shapely
from shapely import affinity
from sqlalchemy import Connection, create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import DV, REPO, Deployment


@dataclass
class Case:
    """One tamper: what was changed, and how to tell the audit named it."""

    name: str
    what: str
    named: Callable[[dict[str, Any]], bool]


def _problems(report: dict[str, Any]) -> list[dict[str, Any]]:
    problems: list[dict[str, Any]] = report.get("problems") or []
    return problems


def edit_entry(connection: Connection) -> Case:
    seq, body = connection.execute(
        text(
            "SELECT e.seq, e.body FROM ledger_entry e JOIN trace_event t ON t.ledger_seq = e.seq"
            " WHERE t.biz_step LIKE '%harvesting' ORDER BY e.seq LIMIT 1"
        )
    ).one()
    body = bytes(body)
    forged = body.replace(b'"quantity":', b'"quantity":1', 1)
    assert forged != body, "the harvest entry has no quantity to change"
    connection.execute(
        text("UPDATE ledger_entry SET body = :body WHERE seq = :seq"), {"body": forged, "seq": seq}
    )
    return Case(
        "entry_bytes",
        f"the quantity in harvest entry {seq} multiplied",
        lambda report: any(
            p["index"] == seq and "entry edited" in p["what"] for p in _problems(report)
        ),
    )


def edit_reading(connection: Connection) -> Case:
    row = connection.execute(
        text(
            "SELECT r.device_id, r.metric_id, r.time_ms, r.value, s.parcel_dkbm, s.day, s.part"
            " FROM reading r JOIN reading_seal s ON s.id = r.seal_id"
            " ORDER BY s.id DESC, r.time_ms LIMIT 1"
        )
    ).one()
    connection.execute(
        text(
            "UPDATE reading SET value = value + 0.5"
            " WHERE device_id = :device AND metric_id = :metric AND time_ms = :time"
        ),
        {"device": row.device_id, "metric": row.metric_id, "time": row.time_ms},
    )
    day = row.day if isinstance(row.day, str) else row.day.isoformat()
    subject = f"seal:{row.parcel_dkbm}/{day}/{row.part}"
    return Case(
        "sealed_reading",
        f"device {row.device_id}'s reading at {row.time_ms} ms ({subject}) raised by 0.5",
        lambda report: any(p.get("subject") == subject for p in _problems(report)),
    )


def referenced_parcels(connection: Connection) -> list[str]:
    """Active parcels that sealed EPCIS events name as their bizLocation."""
    locations = connection.scalars(
        text(
            "SELECT DISTINCT biz_location FROM trace_event WHERE biz_location IS NOT NULL"
            " ORDER BY biz_location"
        )
    ).all()
    codes = {location.rsplit("/", 1)[-1] for location in locations}
    active = connection.scalars(
        text("SELECT dkbm FROM parcel WHERE status = 'active' ORDER BY dkbm")
    ).all()
    return [dkbm for dkbm in active if dkbm in codes]


def move_parcel(connection: Connection, dkbm: str) -> Case:
    wkb = bytes(
        connection.scalar(text("SELECT geometry_wkb FROM parcel WHERE dkbm = :d"), {"d": dkbm})
    )
    moved = affinity.translate(shapely.from_wkb(wkb), xoff=0.0003)
    new_wkb = shapely.to_wkb(moved, output_dimension=2, byte_order=1)
    min_lon, min_lat, max_lon, max_lat = moved.bounds
    connection.execute(
        text(
            "UPDATE parcel SET geometry_wkb = :wkb, geometry_sha256 = :sha, min_lon = :a,"
            " min_lat = :b, max_lon = :c, max_lat = :d WHERE dkbm = :dkbm"
        ),
        {
            "wkb": new_wkb,
            "sha": hashlib.sha256(new_wkb).hexdigest(),
            "a": min_lon,
            "b": min_lat,
            "c": max_lon,
            "d": max_lat,
            "dkbm": dkbm,
        },
    )
    return Case(
        "parcel_geometry",
        f"parcel {dkbm} (an event's bizLocation) moved 30 m east, hash and bounds rewritten",
        lambda report: any(
            p.get("subject") == f"parcel:{dkbm}" and "geometry edited" in p["what"]
            for p in _problems(report)
        ),
    )


def move_postgis_geom(connection: Connection, dkbm: str) -> Case:
    connection.execute(
        text("UPDATE parcel SET geom = ST_Translate(geom, 0.0003, 0) WHERE dkbm = :dkbm"),
        {"dkbm": dkbm},
    )
    return Case(
        "parcel_geom",
        f"only the PostGIS column of parcel {dkbm} (an event's bizLocation) moved 30 m east",
        lambda report: any(
            p.get("subject") == f"parcel:{dkbm}" and "geom edited" in p["what"]
            for p in _problems(report)
        ),
    )


def _names(subject: str, said: str) -> Callable[[dict[str, Any]], bool]:
    return lambda report: any(
        p.get("subject") == subject and said in p["what"] for p in _problems(report)
    )


@dataclass(frozen=True)
class Record:
    """An edited record and the route that checks it on its own."""

    case: str
    route: str


def edit_bound_rows(connection: Connection, dkbm: str) -> tuple[list[Case], list[Record]]:
    """Rows of what a bottle's page shows, edited: its certificate's origin, a product's name,
    a lot's size, a parcel's land use and area."""
    number, gtin, lot = connection.execute(
        text(
            "SELECT c.number, l.gtin, l.lot FROM trace_certificate c"
            " JOIN trace_lot l ON l.id = c.lot_id ORDER BY c.id LIMIT 1"
        )
    ).one()
    connection.execute(
        text("UPDATE trace_certificate SET origin = '黑龙江五常' WHERE number = :n"), {"n": number}
    )
    connection.execute(
        text("UPDATE trace_product SET name = '五常大米' WHERE gtin = :g"), {"g": gtin}
    )
    connection.execute(
        text("UPDATE trace_lot SET produced = produced * 10 WHERE gtin = :g AND lot = :l"),
        {"g": gtin, "l": lot},
    )
    connection.execute(
        text(
            "UPDATE parcel SET area_mu = area_mu + 1,"
            " land_use = CASE land_use WHEN '0101' THEN '0103' ELSE '0101' END WHERE dkbm = :d"
        ),
        {"d": dkbm},
    )
    cases = [
        Case(
            "certificate_origin",
            f"certificate {number}'s origin set to 黑龙江五常",
            _names(f"certificate:{number}", "origin is '黑龙江五常' in its row"),
        ),
        Case(
            "product_name",
            f"product {gtin}'s name set to 五常大米",
            _names(f"product:{gtin}", "name is '五常大米' in its row"),
        ),
        Case(
            "lot_quantity",
            f"lot {gtin}/{lot}'s produced quantity multiplied by 10",
            _names(f"lot:{gtin}/{lot}", "produced is"),
        ),
        Case(
            "parcel_land_use",
            f"parcel {dkbm}'s land use changed",
            _names(f"parcel:{dkbm}", "stored land use"),
        ),
        Case(
            "parcel_area",
            f"parcel {dkbm}'s area in 亩 raised by 1",
            _names(f"parcel:{dkbm}", "stored area (亩)"),
        ),
    ]
    records = [
        Record("certificate_check_route", f"/api/v1/certificates/{number}/verify"),
        Record("lot_check_route", f"/api/v1/lots/{gtin}/{lot}/verify"),
        Record("parcel_check_route", f"/api/v1/parcels/{dkbm}/verify"),
    ]
    return cases, records


def text_entry(connection: Connection) -> Case:
    """SQLite: an entry's bytes stored as text (the column's type changed for one value)."""
    seq = connection.scalar(text("SELECT max(seq) / 2 FROM ledger_entry"))
    connection.execute(
        text("UPDATE ledger_entry SET body = CAST(body AS TEXT) WHERE seq = :s"), {"s": seq}
    )
    return Case(
        "entry_column_type",
        f"entry {seq}'s bytes stored as text",
        lambda report: any(
            p["index"] == seq and "stored as str" in p["what"] for p in _problems(report)
        ),
    )


def hold_back(connection: Connection, postgres: bool) -> None:
    """From now on, every checkpoint the server signs is silently not stored."""
    if postgres:
        connection.execute(
            text("CREATE RULE hold_back AS ON INSERT TO ledger_checkpoint DO INSTEAD NOTHING")
        )
    else:
        connection.execute(
            text(
                "CREATE TRIGGER hold_back BEFORE INSERT ON ledger_checkpoint "
                "BEGIN SELECT RAISE(IGNORE); END"
            )
        )


def monitor(deployment: Deployment, state: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DV, "ledger", "monitor", deployment.base, "--state", str(state), "--once", *extra],
        env=deployment.env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def run(deployment: Deployment) -> dict[str, Any]:
    results: list[dict[str, Any]] = []

    def record(name: str, what: str, detected: bool, evidence: str) -> None:
        results.append(
            {"case": name, "tampered": what, "detected": detected, "evidence": evidence[:400]}
        )

    baseline = deployment.audit()
    engine = create_engine(deployment.database_url)
    postgres = engine.dialect.name == "postgresql"
    with engine.begin() as connection:
        parcels = referenced_parcels(connection)
        if len(parcels) < 2:
            raise RuntimeError("the sample season names fewer than two parcels in its events")
        cases = [edit_entry(connection), edit_reading(connection)]
        cases.append(move_parcel(connection, parcels[0]))
        if postgres:
            cases.append(move_postgis_geom(connection, parcels[1]))
        bound, records = edit_bound_rows(connection, parcels[-1])
        cases += bound
        if not postgres:
            cases.append(text_entry(connection))
    report = deployment.audit()
    for case in cases:
        named = [p["what"] for p in _problems(report) if case.named({"problems": [p]})]
        record(case.name, case.what, case.named(report), named[0] if named else "not named")

    deployment.start(workers=1)
    for checked in records:
        answer = deployment.get(checked.route)
        said = answer.text
        record(
            checked.case,
            f"GET {checked.route}",
            answer.status_code == 200 and answer.json().get("ok") is False,
            said,
        )

    # The newest checkpoints deleted: the server now serves an older one as current.
    vkey = deployment.dv("ledger", "key", "show").strip()
    state = deployment.data_dir / "monitor-state"
    before = monitor(deployment, state, "--vkey", vkey)
    if before.returncode != 0:
        raise RuntimeError(f"the monitor failed on the untouched server: {before.stderr}")
    with engine.begin() as connection:
        # The server's publisher would sign the log's size again at once: an insider serving an
        # old checkpoint also holds new ones back (here a rule that drops every new row).
        hold_back(connection, postgres)
        sizes = connection.scalars(
            text("SELECT size FROM ledger_checkpoint ORDER BY size DESC LIMIT 3")
        ).all()
        connection.execute(text("DELETE FROM ledger_checkpoint WHERE size > :s"), {"s": sizes[-1]})
    what = f"checkpoints after size {sizes[-1]} deleted; size {sizes[-1]} served as current"
    report = deployment.audit()
    named = [p["what"] for p in _problems(report) if "served as current" in p["what"]]
    record("checkpoint_replay_audit", what, bool(named), named[0] if named else "not named")
    for name, result in (
        ("checkpoint_replay_monitor", monitor(deployment, state)),
        (
            "checkpoint_replay_first_look",
            monitor(deployment, deployment.data_dir / "fresh-monitor", "--vkey", vkey),
        ),
    ):
        said = (result.stdout + result.stderr).strip()
        record(name, what, result.returncode == 1 and "ALERT" in said, said)
    deployment.stop()
    engine.dispose()

    detected = sum(1 for r in results if r["detected"])
    return {
        "backend": "postgresql" if postgres else "sqlite",
        "untouched_audit_ok": baseline["ok"],
        "untouched_audit": {
            key: baseline.get(key) for key in ("entries", "seals", "sealed_readings", "parcels")
        },
        "cases": results,
        "detected": detected,
        "tried": len(results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--postgres",
        default=os.environ.get("DV_TEST_POSTGRES_URL"),
        help="PostgreSQL server URL (a throwaway database is made on it); default SQLite",
    )
    args = parser.parse_args()
    deployment = Deployment.create(args.postgres)
    try:
        figures = run(deployment)
    finally:
        deployment.destroy()
    for case in figures["cases"]:
        state = "detected" if case["detected"] else "MISSED"
        print(f"{case['case']:>30}: {state} — {case['tampered']}")
        print(f"{'':>32}{case['evidence']}")
    print(f"untouched deployment audit ok: {figures['untouched_audit_ok']}")
    print(f"detected {figures['detected']} of {figures['tried']}")
    figures["ok"] = figures["untouched_audit_ok"] and figures["detected"] == figures["tried"]
    print(json.dumps(figures, ensure_ascii=False))
    sys.exit(0 if figures["ok"] else 1)


if __name__ == "__main__":
    main()
