"""No public answer carries the demo's personal data: the sample village `dv demo` loads (forty
households with names and mobile numbers, and here identity numbers too, as the county's 确权
registry gives them) is served by the real app, and every public GET route is fetched over it.

Routes are filled from what the demo stored (its parcels, lots, items, devices, ledger
entries); a public route that nothing fills, or that never answers 2xx, fails the test, so a
new route cannot slip past the sweep.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from digital_village.api import docs
from digital_village.app import create_app
from digital_village.cli import demo
from digital_village.cli.main import initialise
from digital_village.config import Settings
from digital_village.db import Database, make_engine
from digital_village.gs1.short_code import short_code
from digital_village.ledger import tiles
from digital_village.web import STATIC_DIR, manage
from tests.security.test_public_privacy import get_routes, readable

BASE = "https://dv.test"


@dataclass
class Demo:
    engine: Engine
    app: FastAPI
    secrets: tuple[str, ...]


def _id_number(serial: int) -> str:
    """A well-formed 居民身份证号码 (GB 11643) of 旌阳区, distinct per serial."""
    first17 = (
        f"510603{1960 + serial % 40:04d}{1 + serial % 12:02d}{1 + serial % 28:02d}{serial:03d}"
    )
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    check = "10X98765432"[sum(int(d) * w for d, w in zip(first17, weights, strict=True)) % 11]
    return first17 + check


@pytest.fixture(scope="module")
def demo_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    folder = tmp_path_factory.mktemp("demo")
    settings = Settings(
        data_dir=folder,
        ledger_origin="demo.digital-village.example/ledger",
        public_base_url=BASE,
        log_format="text",
        log_level="WARNING",
        rate_limit_public_per_minute=10_000_000,
    )
    initialise(settings)
    demo.load_sample_village(settings, demo.default_fixture_dir())
    engine = make_engine(settings.effective_database_url)
    with engine.begin() as connection:
        ids = [row[0] for row in connection.execute(text("SELECT id FROM household ORDER BY id"))]
        for serial, household in enumerate(ids, start=1):
            connection.execute(
                text("UPDATE household SET id_number = :n WHERE id = :id"),
                {"n": _id_number(serial), "id": household},
            )
        people = connection.execute(text("SELECT name, phone, id_number FROM household")).all()
    assert len(people) == 40
    secrets: set[str] = set()
    for name, phone, id_number in people:
        secrets |= {name, phone, f"{phone[:3]}-{phone[3:7]}-{phone[7:]}", id_number}
        secrets.add(f"{phone[:3]} {phone[3:7]} {phone[7:]}")
    app = create_app(settings, database=Database(engine))
    yield Demo(engine=engine, app=app, secrets=tuple(sorted(secrets)))
    engine.dispose()


def _rows(engine: Engine, sql: str) -> list[tuple[str, ...]]:
    with engine.connect() as connection:
        return [tuple(str(v) for v in row) for row in connection.execute(text(sql))]


def _fill(template: str, engine: Engine) -> list[str]:
    """Concrete paths of a public route over the demo's data."""
    products = [gtin for (gtin,) in _rows(engine, "SELECT gtin FROM trace_product")]
    lots = _rows(engine, "SELECT gtin, lot FROM trace_lot")
    units = _rows(
        engine,
        "SELECT l.gtin, l.lot, u.serial FROM trace_unit u JOIN trace_lot l ON l.id = u.lot_id "
        "ORDER BY u.id LIMIT 6",
    )
    # One parcel of each household that holds any (a household's name could show on each).
    parcels = [
        dkbm
        for (dkbm,) in _rows(
            engine,
            "SELECT min(p.dkbm) FROM parcel p JOIN parcel_holding h ON h.parcel_id = p.id "
            "GROUP BY h.contractor_household_id",
        )
    ]
    devices = [d for (d,) in _rows(engine, "SELECT id FROM device")]
    size = int(_rows(engine, "SELECT count(*) FROM ledger_entry")[0][0])
    regions = [
        code for (code,) in _rows(engine, "SELECT code FROM region WHERE length(code) >= 12")
    ]
    certificates = [n for (n,) in _rows(engine, "SELECT number FROM trace_certificate")]
    villages = [code for code in regions if len(code) == 12]
    readings = _rows(
        engine,
        "SELECT device_id, metric_id, time_ms FROM reading WHERE seal_id IS NOT NULL LIMIT 1",
    )

    def resolver(prefix: str) -> list[str]:
        return [
            *(f"{prefix}/{g}" for g in products),
            *(f"{prefix}/{g}/10/{quote(lot, safe='')}" for g, lot in lots),
            *(f"{prefix}/{g}/10/{quote(lot, safe='')}/21/{s}" for g, lot, s in units),
            *(f"{prefix}/{g}/10/{quote(lot, safe='')}?linkType=linkset" for g, lot in lots),
        ]

    special: dict[str, list[str]] = {
        "/static": [f"/static/{f.name}" for f in sorted(STATIC_DIR.iterdir())],
        "/docs-assets": [f"/docs-assets/{f.name}" for f in sorted(docs.ASSETS_DIR.iterdir())],
        "/01/{rest}": resolver("/01"),
        "/gtin/{rest}": resolver("/gtin"),
        "/page/01/{rest}": [u for u in resolver("/page/01") if "linkType" not in u],
        "/api/v1/ledger/entries/{seq}": [f"/api/v1/ledger/entries/{n}" for n in range(size)],
        "/api/v1/ledger/entries/{seq}/proof": [
            f"/api/v1/ledger/entries/{n}/proof" for n in range(0, size, 50)
        ],
        "/api/v1/ledger/checkpoints/{size}": [f"/api/v1/ledger/checkpoints/{size}"],
        "/api/v1/ledger/consistency": [f"/api/v1/ledger/consistency?first=3&second={size}"],
        "/api/v1/ledger/proofs": [
            f"/api/v1/ledger/proofs?indexes={start}-{min(start + 2000, size) - 1}"
            for start in range(0, size, 2000)
        ],
        "/api/v1/maps/{name}": [f"/api/v1/maps/{v}.svg" for v in villages],
        # Entry bundles hold every entry's bytes; hash tiles of the two lowest levels.
        "/ledger/tile/{tile_path}": [
            f"/ledger/{tile.path}"
            for level in (None, 0, 1)
            for tile in tiles.tiles_for_size(size, level=level)
        ],
        "/api/v1/parcels/locate": [],  # filled below from a parcel's bounds
        "/manage/{section}": [f"/manage/{section}" for section in manage.SECTIONS],
        # The landing page's lookups: a bottle's 查询码 and a certificate's number.
        "/q/{code}": [
            *(f"/q/{short_code(g, lot, s)}" for g, lot, s in units),
            *(f"/q/{quote(n, safe='')}" for n in certificates),
        ],
        "/api/v1/regions": ["/api/v1/regions", *(f"/api/v1/regions?parent={v}" for v in villages)],
        "/api/v1/parcels": ["/api/v1/parcels?limit=1000"],
        "/api/v1/parcels/export": [f"/api/v1/parcels/export?region={v}" for v in villages],
    }
    if template == "/api/v1/parcels/locate":
        bounds = _rows(
            engine,
            f"SELECT min_lon, min_lat, max_lon, max_lat FROM parcel WHERE dkbm = '{parcels[0]}'",
        )[0]
        x = (float(bounds[0]) + float(bounds[2])) / 2
        y = (float(bounds[1]) + float(bounds[3])) / 2
        return [f"/api/v1/parcels/locate?x={x}&y={y}"]
    if template in special:
        return special[template]
    query = {
        "readings": "?metric=soil_moisture&limit=100",
        "conditions": "",
        "seals": "",
    }
    suffix = next((q for word, q in query.items() if template.endswith(word)), "")
    if template.endswith("/readings/proof"):
        if not readings:
            return []
        device, metric, time_ms = readings[0]
        from digital_village.iot import shapes

        when = dt.datetime.fromtimestamp(int(time_ms) / 1000, dt.UTC).isoformat()
        name = shapes.METRIC_NAMES[int(metric)]
        return [f"/api/v1/devices/{device}/readings/proof?metric={name}&time={quote(when)}"]
    formats = ["png", "svg", "pdf"] if "{fmt}" in template else [""]
    values: list[dict[str, str]] = [{}]
    if "{serial}" in template:
        values = [{"gtin": g, "lot": lot, "serial": s} for g, lot, s in units]
    elif "{lot}" in template:
        values = [{"gtin": g, "lot": lot} for g, lot in lots]
    elif "{gtin}" in template:
        values = [{"gtin": g} for g in products]
    # Images and PDFs are drawn from the same records as the JSON: two parcels are enough.
    for name, choices in (
        ("dkbm", parcels[:2] if "{fmt}" in template else parcels),
        ("device_id", devices),
        ("code", regions),
        ("number", certificates),
    ):
        if "{" + name + "}" in template:
            values = [{**v, name: c} for v in values for c in choices]
    paths = []
    for value in values:
        for fmt in formats:
            path = template
            for key, item in {**value, "fmt": fmt}.items():
                path = path.replace("{" + key + "}", quote(item, safe=""))
            if "{" not in path:
                paths.append(path + suffix)
    return paths


PAGES = ("/01/{rest}", "/gtin/{rest}", "/page/01/{rest}", "/p/{dkbm}", "/labels", "/", "/q/{code}")


def test_no_public_answer_carries_the_demos_personal_data(demo_app: Demo) -> None:
    routes = get_routes(demo_app.app)
    public = sorted(path for path, secured in routes.items() if not secured)
    found: list[tuple[str, list[str]]] = []
    answered: dict[str, int] = {}
    unfilled = []
    fetched = 0
    with TestClient(demo_app.app, base_url=BASE, raise_server_exceptions=False) as client:
        for template in public:
            paths = _fill(template, demo_app.engine)
            if not paths:
                unfilled.append(template)
            variants = (
                [
                    {"Accept": a, "Accept-Language": lang}
                    for a in ("text/html", "application/json")
                    for lang in ("zh-CN", "en")
                ]
                if template in PAGES
                else [{"Accept": "application/json"}]
            )
            for path in paths:
                for headers in variants:
                    response = client.get(path, headers=headers)
                    fetched += 1
                    if response.status_code < 300:
                        answered[template] = answered.get(template, 0) + 1
                    leaked = sorted(
                        {s for form in readable(response) for s in demo_app.secrets if s in form}
                    )
                    if leaked:
                        found.append((path, leaked))
    assert not unfilled, f"public routes the sweep cannot fill from the demo: {unfilled}"
    silent = [t for t in public if not answered.get(t)]
    assert not silent, f"public routes that never answered 2xx over the demo: {silent}"
    assert not found, found
    assert fetched > 2000


def test_the_demos_secrets_are_really_stored(demo_app: Demo) -> None:
    """The sweep would find them if they were served: they are in the database."""
    stored = {
        v
        for row in _rows(demo_app.engine, "SELECT name, phone, id_number FROM household")
        for v in row
    }
    ids = _rows(demo_app.engine, "SELECT DISTINCT id_number FROM household")
    assert len(ids) == 40 and len(stored) > 100  # some households share a name
    assert stored <= set(demo_app.secrets)
    assert all(re.fullmatch(r"\d{17}[\dX]", _id_number(n)) for n in range(1, 41))
